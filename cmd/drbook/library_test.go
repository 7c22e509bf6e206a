package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent/lab"
	"github.com/drbook/drbook/runbooks/library"
)

// startLab starts a lab of n real agents, the first size of them one cluster,
// and writes its inventory; everything is stopped when the test ends, and
// the test fails if a process or port is left behind. The lab lives in a
// short directory: the agents' unix sockets must fit in 108 bytes, and
// t.TempDir() holds long test names.
func startLab(t *testing.T, n, size int) (*lab.Lab, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "dbkf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Dir: filepath.Join(dir, "lab"), Nodes: n, AgentBin: agentBin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(context.Background()); err != nil {
			t.Errorf("lab down: %v", err)
		}
		for _, st := range l.Status() {
			if st.Alive || st.SSH || st.API {
				t.Errorf("lab down left %s behind: %+v", st.Name, st)
			}
		}
	})
	if size > 0 {
		if err := l.Bootstrap(ctx, size); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := writeLabInventory(l)
	if err != nil {
		t.Fatal(err)
	}
	return l, inv
}

func agentJSON(t *testing.T, l *lab.Lab, node string, env []string, args ...string) map[string]any {
	t.Helper()
	var out map[string]any
	if err := l.Agent(context.Background(), node, env, &out, args...); err != nil {
		t.Fatal(err)
	}
	return out
}

// runLibrary runs a shipped runbook headless over the lab's SSH endpoints
// and checks that it succeeds and that its record verifies.
func runLibrary(t *testing.T, name, inv, answers string, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	ans := filepath.Join(dir, "answers.yaml")
	if err := os.WriteFile(ans, []byte(answers), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "drbook.db")
	r := drbook(t, env, "run", name, "-i", inv, "--answers", ans, "--headless", "--yes", "--db", db)
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s\n%s", name, r.code, r.stdout, r.stderr)
	}
	id := runID(t, r.stdout)
	if v := drbook(t, nil, "replay", id, "--verify", "--db", db); v.code != 0 {
		t.Fatalf("%s: replay --verify exit %d\n%s%s", name, v.code, v.stdout, v.stderr)
	}
	return r.stdout
}

const labPassphrase = "lab-drill-passphrase-42"

func TestLibraryTotalClusterRecovery(t *testing.T) {
	l, inv := startLab(t, 3, 3)
	agentJSON(t, l, "node1", nil, "keys", "load", "--count", "500")
	backup := filepath.Join(l.Vault, "b.drbkbak")
	agentJSON(t, l, "node1", []string{"DRBOOK_BACKUP_PASSPHRASE=" + labPassphrase}, "backup", "create", "--out", backup)
	manifest := filepath.Join(l.Vault, "manifest.json")
	writeManifest(t, l, "node1", manifest)
	if _, err := l.Disaster(context.Background(), lab.TotalLoss, nil, true); err != nil {
		t.Fatal(err)
	}
	out := runLibrary(t, "total-cluster-recovery", inv, fmt.Sprintf(
		"inputs:\n  seed: node1\n  joiners: [node2, node3]\n  backup: %s\n  passphrase: {env: LAB_PASS}\n  manifest: %s\n", backup, manifest),
		"LAB_PASS="+labPassphrase)
	if !strings.Contains(out, "ok=true") {
		t.Errorf("keys not verified:\n%s", out)
	}
}

func writeManifest(t *testing.T, l *lab.Lab, node, path string) {
	t.Helper()
	n, _ := l.Node(node)
	cmd := fmt.Sprintf("%s keys manifest --data %s --output json > %s", l.AgentBin, n.DataDir, path)
	if out, err := execShell(cmd); err != nil {
		t.Fatalf("manifest: %v %s", err, out)
	}
}

func TestLibraryReplaceFailedNode(t *testing.T) {
	l, inv := startLab(t, 3, 3)
	agentJSON(t, l, "node1", nil, "keys", "load", "--count", "200")
	if _, err := l.Disaster(context.Background(), lab.NodeLoss, []string{"node3"}, true); err != nil {
		t.Fatal(err)
	}
	runLibrary(t, "replace-failed-node", inv, "inputs:\n  failed: node3\n  healthy: node1\n")
	st := agentJSON(t, l, "node3", nil, "status")
	if st["voters"] != 3.0 || st["keys"] != 200.0 {
		t.Errorf("after replacement: voters %v keys %v", st["voters"], st["keys"])
	}
}

func TestLibraryQuorumLostRecovery(t *testing.T) {
	l, inv := startLab(t, 3, 3)
	agentJSON(t, l, "node1", nil, "keys", "load", "--count", "300")
	manifest := filepath.Join(l.Vault, "manifest.json")
	writeManifest(t, l, "node1", manifest)
	if _, err := l.Disaster(context.Background(), lab.QuorumLoss, []string{"node2", "node3"}, true); err != nil {
		t.Fatal(err)
	}
	out := runLibrary(t, "quorum-lost-recovery", inv, fmt.Sprintf(
		"inputs:\n  candidates: [node1, node2, node3]\n  replaced: [node2, node3]\n  manifest: %s\n", manifest))
	if !strings.Contains(out, "survivor: node1") || !strings.Contains(out, "ok=true") {
		t.Errorf("unexpected recovery:\n%s", out)
	}
}

func TestLibraryDRNodeStandby(t *testing.T) {
	l, inv := startLab(t, 4, 3)
	agentJSON(t, l, "node1", nil, "keys", "load", "--count", "100")
	out := runLibrary(t, "dr-node-standby", inv, "inputs:\n  member: node1\n  dr: node4\n  passphrase: {env: LAB_PASS}\n", "LAB_PASS="+labPassphrase)
	if !strings.Contains(out, "backup kept") {
		t.Errorf("no backup kept:\n%s", out)
	}
	st := agentJSON(t, l, "node1", nil, "status")
	if st["voters"] != 3.0 {
		t.Errorf("the DR node is still in the cluster: %v voters", st["voters"])
	}
}

func TestLibraryBackupRotation(t *testing.T) {
	l, inv := startLab(t, 4, 3)
	agentJSON(t, l, "node1", nil, "keys", "load", "--count", "150")
	runLibrary(t, "backup-rotation", inv, "inputs:\n  member: node1\n  scratch: node4\n  passphrase: {env: LAB_PASS}\n", "LAB_PASS="+labPassphrase)
	st := agentJSON(t, l, "node4", nil, "status")
	if st["keys"] != 150.0 {
		t.Errorf("scratch restore holds %v keys, want 150", st["keys"])
	}
}

func TestLibraryPostFailoverChecklist(t *testing.T) {
	_, inv := startLab(t, 1, 1)
	out := runLibrary(t, "post-failover-checklist", inv,
		"inputs:\n  region: eu-dr\nsteps:\n  custom-url: https://kms.dr.example\n  ticket: CHG-1234\n")
	if !strings.Contains(out, "https://kms.dr.example") {
		t.Errorf("answers not in the run:\n%s", out)
	}
}

// TestLibraryCoverage makes sure every shipped runbook has an end-to-end test
// above, or in etcd_test.go for the etcd runbooks.
func TestLibraryCoverage(t *testing.T) {
	var src []byte
	for _, f := range []string{"library_test.go", "etcd_test.go"} {
		b, err := os.ReadFile(f) // #nosec G304 -- this package's own test sources
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	for _, n := range library.Names() {
		if !strings.Contains(string(src), `"`+n+`"`) {
			t.Errorf("shipped runbook %s has no end-to-end test", n)
		}
	}
}

// TestDemoHeadless runs the README's demo path without a TTY: the lab is
// left running (no terminal to ask), then stopped with lab down.
func TestDemoHeadless(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	db := filepath.Join(t.TempDir(), "drbook.db")
	r := drbook(t, nil, "demo", "--headless", "--dir", dir, "--db", db, "--keys", "500")
	if r.code != 0 || !strings.Contains(r.stdout, "ok=true") {
		t.Fatalf("demo: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "drbook lab down --dir "+dir) {
		t.Errorf("demo does not say how to stop the lab:\n%s", r.stderr)
	}
	down := drbook(t, nil, "lab", "down", "--dir", dir)
	if down.code != 0 {
		t.Fatalf("lab down: %d %s", down.code, down.stderr)
	}
	if pids := agentProcesses(t, dir); len(pids) > 0 {
		t.Errorf("lab down left processes: %v", pids)
	}
}

// The PostgreSQL runbooks "pg-promote-standby" and "pg-rewind-old-primary"
// are tested end to end against real PostgreSQL 15 in pg_test.go.
