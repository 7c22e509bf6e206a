package steps

import (
	"testing"

	"github.com/drbook/drbook/runbooks"
)

// TestParseOutputsExactNumbers: JSON numbers keep their literal text (no
// float64 on the way), in fields and nested values; key=value lines too.
func TestParseOutputsExactNumbers(t *testing.T) {
	decl := []runbooks.Output{{Name: "ID"}, {Name: "big"}, {Name: "nested"}, {Name: "f"}}
	tests := []struct {
		name, stdout string
		want         map[string]string
	}{
		{"uint64", `{"ID": 10564617825209086826}`, map[string]string{"ID": "10564617825209086826"}},
		{"2^70 and nested", `{"big": 1180591620717411303424, "nested": {"x": 18446744073709551615}, "f": 1.50}`,
			map[string]string{"big": "1180591620717411303424", "nested": `{"x":18446744073709551615}`, "f": "1.50"}},
		{"key=value", "ID=10564617825209086826\nbig=1180591620717411303424\n", map[string]string{"ID": "10564617825209086826", "big": "1180591620717411303424"}},
		{"two objects are not one", `{"ID": 1} {"ID": 2}`, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := ParseOutputs([]byte(tc.stdout), decl)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestWaitCompareExact(t *testing.T) {
	tests := []struct {
		got, want string
		ok        bool
	}{
		{"10564617825209086826", ">= 10564617825209086826", true},
		{"10564617825209086826", "> 10564617825209086826", false},
		{"10564617825209086826", "!= 10564617825209086827", true},
		{"10564617825209086826", "< 10564617825209086827", true},
		{"abc", "!= abd", true},
		{"abc", "> 1", false},
	}
	for _, tc := range tests {
		if got := compare(tc.got, tc.want); got != tc.ok {
			t.Errorf("compare(%q, %q) = %v, want %v", tc.got, tc.want, got, tc.ok)
		}
	}
}
