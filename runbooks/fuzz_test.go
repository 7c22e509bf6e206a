package runbooks_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
)

// seedFiles adds every file matching the globs to the corpus.
func seedFiles(f *testing.F, globs ...string) {
	f.Helper()
	for _, glob := range globs {
		files, _ := filepathGlob(glob)
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// checkDiagnostics fails unless err is nil or Diagnostics whose every entry
// names the file and a position inside the source (line ≥ 1).
func checkDiagnostics(t *testing.T, file string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ds runbooks.Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("error is not Diagnostics: %v", err)
	}
	if len(ds) == 0 {
		t.Fatal("empty Diagnostics returned as an error")
	}
	for _, d := range ds {
		if d.File != file || !strings.HasPrefix(d.String(), file+":") {
			t.Fatalf("diagnostic does not name the file: %q", d.String())
		}
	}
}

// FuzzParseInventory: any input gives an inventory or file:line:col
// diagnostics, never a panic; an accepted inventory's nodes have unique
// names and every group names known nodes.
func FuzzParseInventory(f *testing.F) {
	seedFiles(f, "../testdata/inventories/*.yaml")
	f.Add([]byte("apiVersion: drbook/v1\nkind: Inventory\nname: x\nnodes:\n  - {name: a, host: 127.0.0.1}\ngroups: {g: [a, b]}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		inv, err := runbooks.ParseInventory("inv.yaml", src)
		checkDiagnostics(t, "inv.yaml", err)
		if err != nil {
			return
		}
		if inv == nil {
			t.Fatal("nil inventory without error")
		}
		seen := map[string]bool{}
		for _, n := range inv.Nodes {
			if seen[n.Name] {
				t.Fatalf("duplicate node %q accepted", n.Name)
			}
			seen[n.Name] = true
			if inv.Node(n.Name) == nil {
				t.Fatalf("Node(%q) = nil for a listed node", n.Name)
			}
		}
	})
}

// FuzzParseAnswers: any input gives answers or diagnostics, never a panic;
// accepted answers resolve against a runbook without reading anything but
// the environment references the test allows.
func FuzzParseAnswers(f *testing.F) {
	seedFiles(f, "../testdata/answers/*.yaml")
	f.Add([]byte("inputs:\n  seed: node1\n  joiners: [node2, node3]\n  key: {env: FUZZ_KEY}\nsteps:\n  ticket: INC-1\n"))
	f.Add([]byte("inputs: {count: 3, dry: true, wait: 2m}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		a, err := runbooks.ParseAnswers("answers.yaml", src)
		checkDiagnostics(t, "answers.yaml", err)
		if err != nil {
			return
		}
		if a == nil || a.Inputs == nil || a.Steps == nil {
			t.Fatalf("incomplete answers without error: %+v", a)
		}
		for name, v := range a.Inputs {
			if v.Pos.Line < 1 {
				t.Fatalf("input %q answered at line %d", name, v.Pos.Line)
			}
		}
	})
}
