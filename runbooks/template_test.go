package runbooks_test

import (
	"errors"
	"os"
	"os/exec"
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
	for _, s := range []string{"{{ inputs.seed }}", "a {{ nodes[inputs.seed].api | quote }} b", "{{ (inputs.count > 2) and not inputs.dry }}", "{{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc := &runbooks.RunScope{Inputs: map[string]runbooks.Value{"seed": {V: "node1"}, "count": {V: int64(1)}}, Steps: map[string]*runbooks.StepValues{}}
		tpl, err := runbooks.ParseTemplate(s)
		if err != nil {
			return
		}
		_ = tpl.Refs()
		_, _ = tpl.Eval(sc)
	})
}
