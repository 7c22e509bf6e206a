package runbooks_test

import (
	"testing"

	"github.com/drbook/drbook/runbooks"
)

// TestBigNumbers: integers past 2^53 (a uint64 etcd member id, 2^70) render
// digit for digit and compare exactly, as outputs and as literals.
func TestBigNumbers(t *testing.T) {
	sc := &runbooks.RunScope{Steps: map[string]*runbooks.StepValues{
		"m": {Status: "succeeded", Outputs: map[string]runbooks.Value{
			"id":    {V: "10564617825209086826"},
			"near":  {V: "10564617825209086827"},
			"big":   {V: "1180591620717411303424"}, // 2^70
			"small": {V: "7"},
			"dec":   {V: "2.50"},
			"word":  {V: "abc"},
		}},
	}}
	tests := []struct{ tpl, want string }{
		{"remove {{ steps.m.outputs.id }}", "remove 10564617825209086826"},
		{"{{ steps.m.outputs.big }}", "1180591620717411303424"},
		{"{{ steps.m.outputs.id == steps.m.outputs.near }}", "false"},
		{"{{ steps.m.outputs.id != steps.m.outputs.near }}", "true"},
		{"{{ steps.m.outputs.id < steps.m.outputs.near }}", "true"},
		{"{{ steps.m.outputs.near > steps.m.outputs.id }}", "true"},
		{"{{ steps.m.outputs.id >= steps.m.outputs.near }}", "false"},
		{"{{ steps.m.outputs.id == 10564617825209086826 }}", "true"},
		{"{{ steps.m.outputs.id == 10564617825209086827 }}", "false"},
		{"{{ steps.m.outputs.big == 1180591620717411303424 }}", "true"},
		{"{{ steps.m.outputs.big > 1180591620717411303423 }}", "true"},
		{"{{ steps.m.outputs.big < steps.m.outputs.id }}", "false"},
		{"{{ 1180591620717411303424 }}", "1180591620717411303424"},
		{"{{ -99999999999999999999 < 0 }}", "true"},
		{"{{ steps.m.outputs.small < 10 }}", "true"},
		{"{{ steps.m.outputs.dec == \"2.5\" }}", "true"},
		{"{{ steps.m.outputs.dec > 2 }}", "true"},
		{"{{ steps.m.outputs.word == \"abc\" }}", "true"},
		{"{{ steps.m.outputs.word != 1 }}", "true"},
	}
	for _, tc := range tests {
		t.Run(tc.tpl, func(t *testing.T) {
			got, _, err := runbooks.RenderString(tc.tpl, sc)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, _, err := runbooks.RenderString("{{ steps.m.outputs.word < 1 }}", sc); err == nil {
		t.Error("text that is not a number compared with < gave no error")
	}
}

func TestCompareNumbers(t *testing.T) {
	tests := []struct {
		a, b string
		cmp  int
		ok   bool
	}{
		{"10564617825209086826", "10564617825209086827", -1, true},
		{"18446744073709551615", "18446744073709551615", 0, true},
		{"1180591620717411303424", "1180591620717411303423", 1, true},
		{" 42 ", "42.0", 0, true},
		{"1e3", "1000", 0, true},
		{"-1", "+1", -1, true},
		{"0.1", "1e-1", 0, true},
		{"1e99999", "1", 0, false}, // exponent too large to build
		{"inf", "1", 0, false},
		{"NaN", "NaN", 0, false},
		{"0x10", "16", 0, false},
		{"1_000", "1000", 0, false},
		{"", "0", 0, false},
		{".", "0", 0, false},
		{"1.", "1", 0, true},
		{"12abc", "12", 0, false},
	}
	for _, tc := range tests {
		cmp, ok := runbooks.CompareNumbers(tc.a, tc.b)
		if ok != tc.ok || (ok && cmp != tc.cmp) {
			t.Errorf("CompareNumbers(%q, %q) = %d, %v; want %d, %v", tc.a, tc.b, cmp, ok, tc.cmp, tc.ok)
		}
	}
}
