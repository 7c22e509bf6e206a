package runbooks_test

import (
	"errors"
	"fmt"
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

// attackSeeds are the attack classes every YAML fuzz target starts from:
// alias bombs, nesting bombs in each form the bounds know, a BOM, invalid
// UTF-8, control characters and a second document. head is put in front of
// each so the seeds reach the decoder of the target's kind.
func attackSeeds(f *testing.F, head string) {
	f.Helper()
	bomb := "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	for i := 1; i <= 8; i++ {
		bomb += fmt.Sprintf("a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 9), ", "))
	}
	for _, s := range []string{
		bomb,
		"x: &d " + strings.Repeat("[", 60) + strings.Repeat("]", 60) + "\ny: " + strings.Repeat("[", 10) + "*d" + strings.Repeat("]", 10) + "\n",
		strings.Repeat("[", 4000),
		"x: " + strings.Repeat("{a: ", 200) + "b\n",
		strings.Repeat("- ", 200) + "x\n",
		"x: " + strings.Repeat("!t ", 200) + "y\n",
		"x: " + strings.Repeat("&a ", 200) + "y\n",
		strings.Repeat("? ", 200) + "x\n",
		strings.Repeat("]", 2000),
		"\xef\xbb\xbfx: 1\n",
		"x: \"caf\xe9\"\n",
		"x: \"\x1b]0;title\x07\"\n",
		"x: 1\n---\ny: 2\n",
		"x: 1\n...\ny: 2\n",
		"x: |\n  a {{ b\n  }} c\n",
	} {
		f.Add([]byte(s))
		f.Add([]byte(head + s))
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
	attackSeeds(f, "apiVersion: drbook/v1\nkind: Inventory\nname: x\nnodes:\n  - name: a\n    host: 127.0.0.1\n    vars:\n      v: 1\nvars:\n")
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
	attackSeeds(f, "inputs:\n  seed: node1\n")
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

// FuzzParseDrill: any input gives a drill or file:line:col diagnostics,
// never a panic; an accepted drill names a runbook and, unless it uses the
// lab, has a count, a restore point and a disaster.
func FuzzParseDrill(f *testing.F) {
	seedFiles(f, "../testdata/drills/*/*.yaml", "library/drills/*.yaml")
	attackSeeds(f, "apiVersion: drbook/v1\nkind: Drill\nname: x\nrunbook: library:x\nports: 2\ncount: c\nrestore_point: [r]\ndisaster: [d]\nsetup:\n")
	f.Fuzz(func(t *testing.T, src []byte) {
		dr, err := runbooks.ParseDrill("drill.yaml", src)
		checkDiagnostics(t, "drill.yaml", err)
		if err != nil {
			return
		}
		if dr == nil || dr.Runbook == "" {
			t.Fatalf("drill without a runbook accepted: %+v", dr)
		}
		if dr.Lab == nil && (dr.Count == nil || len(dr.RestorePoint) == 0 || len(dr.Disaster) == 0) {
			t.Fatal("a command drill without count, restore point or disaster accepted")
		}
	})
}
