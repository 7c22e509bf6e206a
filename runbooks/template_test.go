package runbooks_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
)

func testScope(t *testing.T) *runbooks.RunScope {
	inv := loadInv(t)
	return &runbooks.RunScope{
		RunID: "r1", Runbook: "rb", Mode: "headless",
		Inputs: map[string]runbooks.Value{
			"seed":    {V: "node1"},
			"joiners": {V: []string{"node2", "node3"}},
			"key":     {V: "hunter2-secret", Secret: true},
			"count":   {V: int64(3)},
			"dry":     {V: false},
			"label":   {V: "it's a $test"},
		},
		Steps: map[string]*runbooks.StepValues{
			"token": {Status: "succeeded", Outputs: map[string]runbooks.Value{"token": {V: "tok-123", Secret: true}}},
			"fan": {Status: "succeeded", Targets: map[string]map[string]runbooks.Value{
				"node2": {"id": {V: "b"}}, "node3": {"id": {V: "c"}},
			}},
		},
		Inventory: inv,
		Target:    inv.Node("node2"),
	}
}

func TestTemplateEval(t *testing.T) {
	sc := testScope(t)
	tests := []struct {
		tpl, want string
		secret    bool
	}{
		{"plain text", "plain text", false},
		{"{{ inputs.seed }}", "node1", false},
		{"seed={{inputs.seed}}!", "seed=node1!", false},
		{"{{ inputs.joiners | join(\",\") }}", "node2,node3", false},
		{"{{ inputs.joiners }}", "node2 node3", false},
		{"{{ inputs.joiners | length }}", "2", false},
		{"{{ steps.token.outputs.token }}", "tok-123", true},
		{"{{ steps.fan.targets.node3.outputs.id }}", "c", false},
		{"{{ nodes.node1.host }}:{{ nodes.node1.api }}", "127.0.0.1:127.0.0.1:7001", false},
		{"{{ nodes[inputs.seed].api }}", "127.0.0.1:7001", false},
		{"{{ target.name }}", "node2", false},
		{"{{ run.id }}", "r1", false},
		{"{{ inputs.count >= 3 and not inputs.dry }}", "true", false},
		{"{{ inputs.count == 4 or inputs.seed == \"node1\" }}", "true", false},
		{"{{ inputs.label | quote }}", `'it'\''s a $test'`, false},
		{"{{ inputs.missing | default(\"x\") }}", "x", false},
		{"key={{ inputs.key | upper }}", "key=HUNTER2-SECRET", true},
	}
	for _, tc := range tests {
		t.Run(tc.tpl, func(t *testing.T) {
			got, secret, err := runbooks.RenderString(tc.tpl, sc)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if got != tc.want || secret != tc.secret {
				t.Errorf("got %q (secret %v), want %q (secret %v)", got, secret, tc.want, tc.secret)
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	sc := testScope(t)
	for _, tpl := range []string{
		"{{ inputs.nope }}", "{{ steps.fan.outputs.id }}", "{{ nodes.node9.host }}", "{{ nodes.node1.nothing }}",
		"{{ inputs.seed", "{{ inputs.seed | frobnicate }}", "{{ }}", "{{ inputs.count < \"a\" }}", "{{ steps.token }}",
	} {
		if _, _, err := runbooks.RenderString(tpl, sc); !errors.Is(err, runbooks.ErrTemplate) {
			t.Errorf("%q: want a template error, got %v", tpl, err)
		}
	}
}

// TestQuoteRoundTrip proves the quote filter survives a real shell.
func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", "a b\tc\nd", "$(rm -rf /)", "`x`", `"q"`, `back\slash`, "ünï"} {
		out, err := exec.Command("sh", "-c", "printf %s "+runbooks.ShellQuote(s)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != s {
			t.Errorf("quote(%q) through sh gave %q", s, out)
		}
	}
}

func FuzzLoadRunbook(f *testing.F) {
	for _, glob := range []string{"../testdata/runbooks/valid/*.yaml", "../testdata/runbooks/broken/*.yaml"} {
		files, _ := filepathGlob(glob)
		for _, p := range files {
			b, _ := os.ReadFile(p)
			f.Add(b)
		}
	}
	attackSeeds(f, "apiVersion: drbook/v1\nkind: Runbook\nname: x\nsteps:\n  - id: a\n    run: shell\n    on: node1\n    with:\n      command: echo\n      env:\n")
	reg := steps.NewRegistry()
	f.Fuzz(func(t *testing.T, src []byte) {
		rb, err := runbooks.LoadRunbook("fuzz.yaml", src, reg, nil)
		if err == nil && rb == nil {
			t.Fatal("nil runbook without error")
		}
		var ds runbooks.Diagnostics
		if err != nil && !errors.As(err, &ds) {
			t.Fatalf("error is not Diagnostics: %v", err)
		}
	})
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{{ inputs.seed }}", "a {{ nodes[inputs.seed].api | quote }} b", "{{ (inputs.count > 2) and not inputs.dry }}", "{{", "inputs.seed == \"node1\" or not (inputs.count < 3)", "'{{ inputs.seed | quote }}'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc := &runbooks.RunScope{Inputs: map[string]runbooks.Value{"seed": {V: "node1"}, "count": {V: int64(1)}}, Steps: map[string]*runbooks.StepValues{}}
		if _, err := runbooks.CheckGuard(s, typer); err == nil {
			if ok, err := runbooks.EvalGuard(s, sc); ok && err != nil {
				t.Fatalf("guard %q: true with an error %v", s, err)
			}
		}
		tpl, err := runbooks.ParseTemplate(s)
		if err != nil {
			return
		}
		_ = tpl.Refs()
		_ = tpl.QuotedInQuotes()
		_, _ = tpl.Type(typer)
		_, _ = tpl.Eval(sc)
	})
}

// typer types refs as the test scope's inputs are typed.
func typer(r runbooks.Ref) runbooks.Type {
	if len(r.Path) < 2 {
		return runbooks.TypeUnknown
	}
	switch r.Path[0] + "." + r.Path[1] {
	case "inputs.dry":
		return runbooks.TypeBool
	case "inputs.count":
		return runbooks.TypeInt
	case "inputs.joiners":
		if len(r.Path) > 2 {
			return runbooks.TypeString
		}
		return runbooks.TypeList
	case "inputs.seed", "inputs.key", "inputs.label":
		return runbooks.TypeString
	}
	if r.Path[0] == "steps" {
		return runbooks.TypeText
	}
	return runbooks.TypeUnknown
}

func TestGuards(t *testing.T) {
	sc := testScope(t)
	tests := []struct {
		guard string
		lint  string // substring of the lint error; "" = accepted
		want  bool   // value at run time, when accepted
	}{
		{"inputs.dry", "", false},
		{"{{ inputs.dry }}", "", false},
		{"  not inputs.dry  ", "", true},
		{"true", "", true},
		{"inputs.count >= 3 and not inputs.dry", "", true},
		{"{{ inputs.joiners | length > 1 }}", "", true},
		{`steps.token.outputs.token == "tok-123"`, "", true},
		{`inputs.seed == "node1" or inputs.dry`, "", true},
		{"inputs.joiners[0] == inputs.seed", "", false},
		{"yes please", "is not an expression", false},
		{"inputs.seed", "is a string", false},
		{"{{ inputs.count }}", "is an integer", false},
		{"inputs.joiners", "is a list", false},
		{"steps.token.outputs.token", "is a text", false},
		{"drill: {{ inputs.dry }}", "one expression, not text", false},
		{"{{ inputs.dry }} ", "", false},
		{"", "empty guard", false},
		{`inputs.dry == "yes"`, "compares a boolean with a string", false},
		{`inputs.count != "three"`, "compares an integer with a string", false},
		{`inputs.seed < "z"`, "needs numbers", false},
		{"inputs.dry and inputs.seed", "and needs booleans", false},
		{"not inputs.count", "not needs a boolean", false},
		{"inputs.joiners == inputs.seed", "compares a list with a string", false},
	}
	for _, tc := range tests {
		t.Run(tc.guard, func(t *testing.T) {
			_, err := runbooks.CheckGuard(tc.guard, typer)
			if tc.lint != "" {
				if err == nil || !strings.Contains(err.Error(), tc.lint) || !errors.Is(err, runbooks.ErrTemplate) {
					t.Fatalf("lint: got %v, want an error with %q", err, tc.lint)
				}
				return
			}
			if err != nil {
				t.Fatalf("lint refused a boolean guard: %v", err)
			}
			got, err := runbooks.EvalGuard(tc.guard, sc)
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGuardRunTime: at run time a guard that is not a boolean is an error,
// never true, whatever lint said (a runbook loaded without validation).
func TestGuardRunTime(t *testing.T) {
	sc := testScope(t)
	for _, g := range []string{
		"inputs.seed", "{{ inputs.joiners }}", "{{ inputs.count }}", "inputs.seed and inputs.dry",
		"not inputs.seed", "inputs.dry or inputs.count", "yes please", "inputs.key",
	} {
		ok, err := runbooks.EvalGuard(g, sc)
		if err == nil || ok {
			t.Errorf("%q: got %v, %v; want an error", g, ok, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error shows a secret: %v", g, err)
		}
	}
}

func TestQuotedInQuotes(t *testing.T) {
	tests := []struct {
		cmd  string
		want int
	}{
		{`test -f {{ inputs.p | quote }}`, 0},
		{`test -f "{{ inputs.p | quote }}"`, 1},
		{`cat '{{ inputs.p | quote }}'`, 1},
		{`echo "it's" {{ inputs.p | quote }}`, 0},
		{`echo 'say "hi"' {{ inputs.p | quote }}`, 0},
		{`echo \" {{ inputs.p | quote }}`, 0},
		{`echo "a \" {{ inputs.p | quote }}"`, 1},
		{`echo "{{ inputs.p }}"`, 0},
		{`echo "{{ inputs.p | quote | upper }}"`, 0},
		{`x="{{ inputs.a | quote }}" y={{ inputs.b | quote }} z='{{ inputs.c | quote }}'`, 2},
	}
	for _, tc := range tests {
		tpl, err := runbooks.ParseTemplate(tc.cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got := tpl.QuotedInQuotes(); len(got) != tc.want {
			t.Errorf("%s: %d warnings %q, want %d", tc.cmd, len(got), got, tc.want)
		}
	}
}

// TestJinjaStatementsRefused: {% … %} and {# … #} are refused as Jinja
// syntax; shell text that merely looks alike is not.
func TestJinjaStatementsRefused(t *testing.T) {
	tests := []struct {
		text    string
		refused bool
	}{
		{"{% if inputs.drill %}echo{% endif %}", true},
		{"{%- for n in inputs.joiners -%}{{ n }}{%- endfor %}", true},
		{"{# note #} echo", true},
		{"echo {{ inputs.seed }} {# trailing #}", true},
		{`n=(a b); echo ${#n[@]} '#}'`, false},
		{"date +%s; printf '{%s}' x", false},
		{"echo {{ inputs.seed }}", false},
	}
	for _, tc := range tests {
		_, err := runbooks.ParseTemplate(tc.text)
		if got := errors.Is(err, runbooks.ErrStatement); got != tc.refused {
			t.Errorf("ParseTemplate(%q): refused=%v, want %v (err %v)", tc.text, got, tc.refused, err)
		}
	}
	if _, err := runbooks.ParseGuard("{% if inputs.drill %}true{% endif %}"); !errors.Is(err, runbooks.ErrStatement) {
		t.Errorf("guard with a statement: %v", err)
	}
}
