package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestThreatSecretFilesOwnerOnly_RunnerAndAgents walks a lab of real agents
// (data directories, keys, tokens, API keys, CA) and a runner's database
// directory after a run: every file that is not public by nature (public
// keys, certificates, known_hosts, logs) is readable by its owner only.
func TestThreatSecretFilesOwnerOnly_RunnerAndAgents(t *testing.T) {
	l, inv := startLab(t, 2, 2)
	dir := t.TempDir()
	db := filepath.Join(dir, "state", "drbook.db")
	rb := l.Dir + "/modes.yaml"
	writeFile(t, rb, "apiVersion: drbook/v1\nkind: Runbook\nname: modes\nsteps:\n  - id: s\n    run: agent.status\n    on: node1\n")
	if r := drbook(t, nil, "run", rb, "-i", inv, "--headless", "--db", db); r.code != 0 {
		t.Fatalf("run: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	public := func(name string) bool {
		for _, s := range []string{".pub", "known_hosts", ".log", "cert.pem", "ca.pem", ".yaml", ".json", ".sock", "lab.pid"} {
			if strings.HasSuffix(name, s) {
				return true
			}
		}
		return false
	}
	checked := 0
	for _, root := range []string{l.Dir, filepath.Dir(db)} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if public(d.Name()) {
				return nil
			}
			checked++
			if info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is mode %v: group or others can read it", p, info.Mode().Perm())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 5 {
		t.Errorf("only %d files checked", checked)
	}
	t.Logf("%d non-public files checked, all owner-only", checked)
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
