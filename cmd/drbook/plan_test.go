package main

import (
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
)

var updatePlan = flag.Bool("update-plan", false, "rewrite testdata/plan/*.golden")

// TestPlanGolden: drbook plan reads like the run. Commands are text (2>&1,
// a multi-line command line by line), templates are rendered as far as the
// answers allow with what depends on earlier steps left as {{ … }}, guards
// the answers fix say "runs" or "skipped", a step on several nodes shows
// its command per node, and the secret answer never shows. The JSON form
// has the same content with snake_case keys.
func TestPlanGolden(t *testing.T) {
	const dir = "../../testdata/plan/"
	env := []string{"PLAN_TEST_PASSPHRASE=plan-secret-value", "NO_COLOR=1"}
	for _, tc := range []struct{ golden, output string }{
		{"replace-member.golden", ""},
		{"replace-member.json.golden", "json"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			args := []string{"plan", dir + "replace-member.yaml", "-i", "../../testdata/inventories/three.yaml", "--answers", dir + "replace-member.answers.yaml"}
			if tc.output != "" {
				args = append(args, "--output", tc.output)
			}
			r := drbook(t, env, args...)
			if r.code != 0 {
				t.Fatalf("plan exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stdout, "plan-secret-value") {
				t.Errorf("the secret answer is in the plan:\n%s", r.stdout)
			}
			if *updatePlan {
				if err := os.WriteFile(dir+tc.golden, []byte(r.stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(dir + tc.golden)
			if err != nil {
				t.Fatalf("%v (run with -update-plan)", err)
			}
			if r.stdout != string(want) {
				t.Errorf("plan differs from %s\n--- got\n%s--- want\n%s", tc.golden, r.stdout, want)
			}
			if tc.output == "json" {
				var doc struct {
					Steps []map[string]any `json:"steps"`
				}
				if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
					t.Fatal(err)
				}
				for _, s := range doc.Steps {
					for k := range s {
						if k != strings.ToLower(k) {
							t.Errorf("JSON key %q is not snake_case", k)
						}
					}
				}
				if strings.Contains(r.stdout, `\u003e`) {
					t.Error("JSON plan escapes > as \\u003e")
				}
			}
		})
	}
}
