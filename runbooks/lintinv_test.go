package runbooks_test

import (
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
)

const lintInv = `apiVersion: drbook/v1
kind: Inventory
name: lint
nodes:
  - {name: m1, host: 127.0.0.1, labels: {role: etcd}, vars: {client: "http://m1:2379"}}
  - {name: m2, host: 127.0.0.1, labels: {role: etcd}, vars: {client: "http://m2:2379"}}
  - {name: m3, host: 127.0.0.1, labels: {role: etcd, spare: "yes"}}
  - {name: w1, host: 127.0.0.1}
groups:
  members: [m1, m2]
  everyone: [m1, m2, m3, w1]
`

// TestLintInventoryFields: with an inventory, node fields read through an
// input or through target are checked on every node they can reach.
func TestLintInventoryFields(t *testing.T) {
	inv, err := runbooks.ParseInventory("inv.yaml", []byte(lintInv))
	if err != nil {
		t.Fatal(err)
	}
	reg := fullRegistry(t)
	tests := []struct {
		name, inputs, on, command string
		want                      string // "" when lint passes
	}{
		{"input over its label", "x: {type: node, prompt: X, label: role=etcd}",
			"m1", "{{ nodes[inputs.x].client }}", `node "m3" has no field or var "client" (inputs.x can choose m1, m2, m3)`},
		{"distinct_from a one-node input removes it", "spare: {type: node, prompt: S, label: spare}\n  x: {type: node, prompt: X, label: role=etcd, distinct_from: [spare]}",
			"m1", "{{ nodes[inputs.x].client }}", ""},
		{"input without a label reaches every node", "x: {type: node, prompt: X}",
			"m1", "{{ nodes[inputs.x].client }}", `nodes "m3", "w1" have no field or var "client" (inputs.x can choose m1, m2, m3, w1)`},
		{"nodes input element", "xs: {type: nodes, prompt: X, label: role=etcd}",
			"m1", "{{ nodes[inputs.xs[0]].clinet }}", `nodes[inputs.xs[0]].clinet: nodes "m1", "m2", "m3" have no field or var "clinet"`},
		{"inventory fields always exist", "x: {type: node, prompt: X}",
			"m1", "{{ nodes[inputs.x].host }}:{{ nodes[inputs.x].port }} {{ target.user }}", ""},
		{"target over a group", "x: {type: node, prompt: X}",
			"members", "{{ target.client }}", ""},
		{"target over a larger group", "x: {type: node, prompt: X}",
			"everyone", "{{ target.client }}", `target.client: nodes "m3", "w1" have no field or var "client" (the step runs on m1, m2, m3, w1)`},
		{"target over an input", "x: {type: node, prompt: X, label: spare}",
			`"{{ inputs.x }}"`, "{{ target.client }}", `node "m3" has no field or var "client"`},
		{"target from a string input is known only at run time", "x: {type: string, prompt: X}",
			`"{{ inputs.x }}"`, "{{ target.clinet }}", ""},
		{"labels and vars maps", "x: {type: node, prompt: X, label: role}",
			"m1", "{{ nodes[inputs.x].labels.zone }}", `have no label "zone" (did you mean "role"?)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "apiVersion: drbook/v1\nkind: Runbook\nname: t\ninputs:\n  " + tc.inputs +
				"\nsteps:\n  - id: s\n    run: shell\n    on: " + tc.on + "\n    with: {command: \"echo " + tc.command + "\"}\n"
			_, err := runbooks.LoadRunbook("rb.yaml", []byte(src), reg, inv)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("lint refused it: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v; want it to contain %q", err, tc.want)
			}
			// Without an inventory nothing is checked.
			if _, err := runbooks.LoadRunbook("rb.yaml", []byte(src), reg, nil); err != nil {
				t.Errorf("without an inventory: %v", err)
			}
		})
	}
}
