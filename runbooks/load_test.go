package runbooks_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/agent"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fullRegistry has the built-in and agent step kinds, as drbook uses.
func fullRegistry(t *testing.T) *steps.Registry {
	t.Helper()
	reg := steps.NewRegistry()
	if err := agent.Register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

func loadInv(t *testing.T) *runbooks.Inventory {
	t.Helper()
	path := "../testdata/inventories/three.yaml"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := runbooks.ParseInventory(path, src)
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	return inv
}

// TestBrokenRunbooks lints every broken runbook and compares all its
// diagnostics (file:line:col: message) with a golden file.
func TestBrokenRunbooks(t *testing.T) {
	inv := loadInv(t)
	reg := fullRegistry(t)
	files, err := filepath.Glob("../testdata/runbooks/broken/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no broken runbooks: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rel := "testdata/runbooks/broken/" + filepath.Base(f)
			_, err = runbooks.LoadRunbook(rel, src, reg, inv)
			if err == nil {
				t.Fatal("a broken runbook loaded without error")
			}
			var ds runbooks.Diagnostics
			if !errors.As(err, &ds) || !errors.Is(err, runbooks.ErrInvalid) {
				t.Fatalf("error is not Diagnostics: %T %v", err, err)
			}
			for _, d := range ds {
				if d.Pos.Line == 0 || d.Pos.Col == 0 {
					t.Errorf("diagnostic without line:col: %s", d)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("golden file: %v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

// TestWarningRunbooks lints runbooks that load but deserve warnings and
// compares the warnings (file:line:col: warning: message) with a golden file.
func TestWarningRunbooks(t *testing.T) {
	inv := loadInv(t)
	reg := fullRegistry(t)
	files, err := filepath.Glob("../testdata/runbooks/warnings/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no warning runbooks: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rel := "testdata/runbooks/warnings/" + filepath.Base(f)
			rb, err := runbooks.LoadRunbook(rel, src, reg, inv)
			if err != nil {
				t.Fatalf("warnings alone must not refuse a runbook: %v", err)
			}
			if len(rb.Warnings) == 0 {
				t.Fatal("no warning")
			}
			for _, d := range rb.Warnings {
				if !d.IsWarning() || d.Pos.Line == 0 || d.Pos.Col == 0 {
					t.Errorf("not a warning at line:col: %s", d)
				}
			}
			got := rb.Warnings.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("golden file: %v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("warnings differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

func TestValidRunbooks(t *testing.T) {
	inv := loadInv(t)
	reg := steps.NewRegistry()
	files, _ := filepath.Glob("../testdata/runbooks/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no valid runbooks")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runbooks.LoadRunbook(f, src, reg, inv); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestMissingRequiredInput(t *testing.T) {
	inv := loadInv(t)
	src, _ := os.ReadFile("../testdata/runbooks/valid/five-steps.yaml")
	rb, err := runbooks.LoadRunbook("five-steps.yaml", src, steps.NewRegistry(), inv)
	if err != nil {
		t.Fatal(err)
	}
	asrc, _ := os.ReadFile("../testdata/answers/missing-seed.yaml")
	ans, err := runbooks.ParseAnswers("answers.yaml", asrc)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = runbooks.ResolveInputs(rb, inv, ans, false)
	if err == nil {
		t.Fatal("missing inputs accepted")
	}
	want := []string{
		`answers.yaml:3:11: answer for unknown input "colour"`,
		`five-steps.yaml:6:3: missing required input "seed" (node)`,
		`five-steps.yaml:7:3: missing required input "others" (nodes)`,
		`five-steps.yaml:8:3: missing required input "passphrase" (secret)`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), `"label"`) {
		t.Errorf("label has a default and must not be reported:\n%v", err)
	}
}

func filepathGlob(p string) ([]string, error) { return filepath.Glob(p) }
