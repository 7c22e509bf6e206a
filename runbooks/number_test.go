package runbooks_test

import (
	"fmt"
	"math/big"
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

// TestPartial: a plan renders what the answers fix and leaves the rest as
// written.
func TestPartial(t *testing.T) {
	sc := &runbooks.RunScope{
		Inputs: map[string]runbooks.Value{
			"failed":  {V: "node2"},
			"joiners": {V: []string{"node2", "node3"}},
			"pass":    {V: "s3cret", Secret: true},
		},
		Steps: map[string]*runbooks.StepValues{},
	}
	roots := runbooks.StaticRoots
	tests := []struct {
		tpl     string
		want    any
		pending []string
	}{
		{"remove {{ steps.m.outputs.id }} of {{ inputs.failed }} 2>&1", "remove {{ steps.m.outputs.id }} of node2 2>&1", []string{"{{ steps.m.outputs.id }}"}},
		{"{{inputs.joiners}}", []string{"node2", "node3"}, nil},
		{"{{ inputs.joiners | join(\",\") }}", "node2,node3", nil},
		{"PASS={{ inputs.pass }}", "PASS=***", nil},
		{"{{ target.name }}", "{{ target.name }}", []string{"{{ target.name }}"}},
		{"{{ inputs.nope }} x", "{{ inputs.nope }} x", []string{"{{ inputs.nope }}"}},
		{"{{ steps.m.outputs.id == 10564617825209086826 }}", "{{ steps.m.outputs.id == 10564617825209086826 }}", []string{"{{ steps.m.outputs.id == 10564617825209086826 }}"}},
	}
	for _, tc := range tests {
		tpl, err := runbooks.ParseTemplate(tc.tpl)
		if err != nil {
			t.Fatal(err)
		}
		got, pending := tpl.Partial(sc, "***", roots...)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || fmt.Sprintf("%T", got) != fmt.Sprintf("%T", tc.want) || fmt.Sprint(pending) != fmt.Sprint(tc.pending) {
			t.Errorf("Partial(%q) = %#v, %q; want %#v, %q", tc.tpl, got, pending, tc.want, tc.pending)
		}
	}
}

// FuzzCompareNumbers: CompareNumbers never panics, is antisymmetric, and
// agrees with math/big on integers.
func FuzzCompareNumbers(f *testing.F) {
	for _, s := range [][2]string{{"10564617825209086826", "10564617825209086827"}, {"1e3", "1000"}, {"-0", "0.0"}, {"1e99999", "2"}, {"${#x}", "{% if %}"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		c1, ok1 := runbooks.CompareNumbers(a, b)
		c2, ok2 := runbooks.CompareNumbers(b, a)
		if ok1 != ok2 || (ok1 && c1 != -c2) {
			t.Fatalf("CompareNumbers(%q,%q)=%d,%v but reversed %d,%v", a, b, c1, ok1, c2, ok2)
		}
		x, okx := new(big.Int).SetString(a, 10)
		y, oky := new(big.Int).SetString(b, 10)
		if okx && oky && len(a) < 100 && len(b) < 100 && (a[0] != '+' && b[0] != '+') {
			if !ok1 || c1 != x.Cmp(y) {
				t.Fatalf("CompareNumbers(%q,%q)=%d,%v, math/big says %d", a, b, c1, ok1, x.Cmp(y))
			}
		}
		// Templates built from the text never panic, whole or partial.
		tpl, err := runbooks.ParseTemplate("{{ " + a + " }} " + b)
		if err == nil {
			sc := &runbooks.RunScope{Inputs: map[string]runbooks.Value{}, Steps: map[string]*runbooks.StepValues{}}
			_, _ = tpl.Eval(sc)
			_, _ = tpl.Partial(sc, "*", runbooks.StaticRoots...)
		}
	})
}
