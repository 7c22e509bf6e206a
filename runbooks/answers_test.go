package runbooks_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
)

const distinctRunbook = `apiVersion: drbook/v1
kind: Runbook
name: distinct
inputs:
  failed: {type: node, prompt: Failed}
  healthy: {type: node, prompt: Healthy, distinct_from: [failed]}
  seed: {type: node, prompt: Seed, default: node1}
  joiners: {type: nodes, prompt: Joiners, min: 1, distinct_from: seed}
steps:
  - id: a
    run: shell
    on: "{{ inputs.healthy }}"
    with: {command: "true"}
`

// TestDistinctFromAnswers: an answers file that gives the same node to two
// inputs that must differ is refused at the answer's line and column.
func TestDistinctFromAnswers(t *testing.T) {
	inv := loadInv(t)
	rb, err := runbooks.LoadRunbook("distinct.yaml", []byte(distinctRunbook), fullRegistry(t), inv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, answers string
		want          []string // substrings of the error; none = accepted
	}{
		{"distinct", "inputs:\n  failed: node3\n  healthy: node1\n  joiners: [node2, node3]\n", nil},
		{"failed is healthy", "inputs:\n  failed: node1\n  healthy: node1\n  joiners: [node2]\n",
			[]string{`a.yaml:3:12: input "healthy": node already chosen: node1 is already chosen for failed; choose another node`}},
		{"seed among joiners", "inputs:\n  failed: node3\n  healthy: node2\n  seed: node2\n  joiners: [node3, node2]\n",
			[]string{`a.yaml:5:12: input "joiners": node already chosen: node2 is already chosen for seed`}},
		{"default seed among joiners", "inputs:\n  failed: node3\n  healthy: node2\n  joiners: all\n",
			[]string{`a.yaml:4:12: input "joiners": node already chosen: node1 is already chosen for seed`}},
		{"plural", "inputs:\n  failed: node3\n  healthy: node2\n  joiners: []\n",
			[]string{`a.yaml:4:12: input "joiners": needs at least 1 node, got 0`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := runbooks.ParseAnswers("a.yaml", []byte(tc.answers))
			if err != nil {
				t.Fatal(err)
			}
			vals, _, err := runbooks.ResolveInputs(rb, inv, a, false)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if vals["healthy"].V != "node1" {
					t.Errorf("healthy = %v", vals["healthy"].V)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %v", vals)
			}
			if strings.Contains(tc.name, "plural") {
				if strings.Contains(err.Error(), "1 nodes") {
					t.Errorf("bad plural: %v", err)
				}
			} else if !errors.Is(err, runbooks.ErrInvalid) {
				t.Errorf("not a Diagnostics error: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestNodeChoicesDistinct(t *testing.T) {
	inv := loadInv(t)
	rb, err := runbooks.LoadRunbook("distinct.yaml", []byte(distinctRunbook), fullRegistry(t), inv)
	if err != nil {
		t.Fatal(err)
	}
	got := runbooks.NodeChoices(rb.Input("joiners"), inv, map[string]any{"seed": "node2", "failed": "node1"})
	if strings.Join(got, ",") != "node1,node3" {
		t.Errorf("joiners offered %v, want node1,node3 (seed left out, failed not a constraint)", got)
	}
	if err := runbooks.CheckDistinct(rb.Input("healthy"), "node3", map[string]any{"failed": "node3"}); !errors.Is(err, runbooks.ErrNotDistinct) {
		t.Errorf("CheckDistinct: %v", err)
	}
}
