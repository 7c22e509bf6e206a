package clustertest

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drbook/drbook/nodeagent"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// shape lists the JSON paths of v ("a.b[].c"), sorted, one per line.
func shape(v any) []string {
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 {
				out = append(out, prefix+"{}")
			}
			for k, val := range x {
				walk(prefix+"."+k, val)
			}
		case []any:
			if len(x) == 0 {
				out = append(out, prefix+"[]")
			}
			for _, val := range x {
				walk(prefix+"[]", val)
			}
		default:
			out = append(out, prefix)
		}
	}
	walk("", v)
	slices.Sort(out)
	return slices.Compact(out)
}

// TestCLIContract pins the JSON shape of every verb's output (golden file)
// and the exit codes of usage mistakes, refusals, missing things and an
// absent agent.
func TestCLIContract(t *testing.T) {
	c := newCluster(t, 2)
	n1, n2 := c.nodes[0], c.nodes[1]
	pass := writeSecret(t, "contract passphrase")
	bfile := filepath.Join(t.TempDir(), "c.drbk")
	var cr []nodeagent.CreateResult
	n1.mustJSON(&cr, "keys", "create", "--id", "contract-key", "--name", "n", "--group", "g")
	mf := filepath.Join(t.TempDir(), "m.json")
	os.WriteFile(mf, []byte(n1.run(nil, "keys", "manifest").stdout), 0o600)

	verbs := []struct {
		name string
		n    *node
		args []string
	}{
		{"status", n1, []string{"status"}},
		{"token create", n1, []string{"token", "create", "--ttl", "1h"}},
		{"token list", n1, []string{"token", "list"}},
		{"keys create", n1, []string{"keys", "create"}},
		{"keys get", n2, []string{"keys", "get", "contract-key", "--material"}},
		{"keys list", n2, []string{"keys", "list"}},
		{"keys count", n2, []string{"keys", "count"}},
		{"keys load", n2, []string{"keys", "load", "--count", "10"}},
		{"keys manifest", n1, []string{"keys", "manifest"}},
		{"keys verify", n1, []string{"keys", "verify", "--manifest", mf, "--stale"}},
		{"backup create", n1, []string{"backup", "create", "--out", bfile, "--key-file", pass}},
		{"backup create default dir", n1, []string{"backup", "create", "--key-file", pass}},
		{"backup list", n1, []string{"backup", "list"}},
		{"cluster create (again)", n1, []string{"cluster", "create"}},
		{"cluster remove (gone)", n1, []string{"cluster", "remove", "--node", "nobody"}},
		{"cluster force-new (refused)", n2, []string{"cluster", "force-new"}},
		{"keys delete", n1, []string{"keys", "delete", "contract-key"}},
	}
	var golden strings.Builder
	for _, v := range verbs {
		r := v.n.run(nil, v.args...)
		var val any
		if err := json.Unmarshal([]byte(r.stdout), &val); err != nil {
			t.Fatalf("%s: stdout is not JSON (exit %d): %q %s", v.name, r.code, r.stdout, r.stderr)
		}
		fmt.Fprintf(&golden, "## %s (exit %d)\n%s\n\n", v.name, r.code, strings.Join(shape(val), "\n"))
	}
	gf := filepath.Join("testdata", "cli_json_shapes.golden")
	if *update {
		if err := os.WriteFile(gf, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(gf)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(want) != golden.String() {
		t.Fatalf("CLI JSON contract changed; diff testdata/cli_json_shapes.golden against:\n%s", golden.String())
	}

	stopped := newNode(t, "stopped")
	stopped.stop()
	codes := []struct {
		name string
		n    *node
		code int
		args []string
	}{
		{"unknown verb", n1, nodeagent.ExitUsage, []string{"frobnicate"}},
		{"bad output", n1, nodeagent.ExitUsage, []string{"--output", "yaml", "status"}},
		{"missing arg", n1, nodeagent.ExitUsage, []string{"keys", "get"}},
		{"reset without --delete-data", n1, nodeagent.ExitUsage, []string{"cluster", "reset"}},
		{"join without token", n2, nodeagent.ExitUsage, []string{"cluster", "join", "--peer", n1.api}},
		{"duplicate key id", n1, nodeagent.ExitError, []string{"keys", "create", "--id", "dup", "--name", "x"}},
		{"missing key", n2, nodeagent.ExitNotFound, []string{"keys", "get", "no-such-key"}},
		{"delete missing key", n2, nodeagent.ExitNotFound, []string{"keys", "delete", "no-such-key"}},
		{"missing backup", n1, nodeagent.ExitNotFound, []string{"backup", "delete", "bk-none"}},
		{"agent not running", stopped, nodeagent.ExitNotRunning, []string{"status"}},
		{"restore onto a cluster with keys", n1, nodeagent.ExitRefused, []string{"restore", bfile, "--key-file", pass}},
	}
	var dup []nodeagent.CreateResult
	n1.mustJSON(&dup, "keys", "create", "--id", "dup")
	for _, tc := range codes {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.n.run(nil, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			var w struct {
				Error    string `json:"error"`
				ExitCode int    `json:"exit_code"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || w.Error == "" || w.ExitCode != tc.code {
				t.Fatalf("error JSON %q: %v", r.stdout, err)
			}
		})
	}
}
