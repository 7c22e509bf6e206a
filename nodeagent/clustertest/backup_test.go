package clustertest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent"
)

func writeSecret(t *testing.T, s string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestBackupTotalLossRestore: back up, kill every node and delete every
// data dir, bootstrap a fresh node, refuse damaged backups and a wrong
// passphrase with state unchanged, restore, join two more: same keys.
func TestBackupTotalLossRestore(t *testing.T) {
	c := newCluster(t, 3)
	l := c.leader(10 * time.Second)
	var lr nodeagent.LoadResult
	l.mustJSON(&lr, "keys", "load", "--count", "3000")
	before := l.manifest(false)

	pass := writeSecret(t, "correct horse battery staple")
	out := filepath.Join(t.TempDir(), "full.drbk")
	var bres nodeagent.BackupResult
	c.nodes[1].mustJSON(&bres, "backup", "create", "--out", out, "--key-file", pass)
	if bres.Keys != 3000 || !bres.Consistent || !bres.Recorded {
		t.Fatalf("backup: %+v", bres)
	}
	st := l.status()
	if st.LastBackup == nil || st.LastBackup.ID != bres.ID {
		t.Fatalf("last backup not recorded: %+v", st.LastBackup)
	}
	// A backup in DATA/backups with the passphrase from the environment.
	var b2 nodeagent.BackupResult
	l.expectCode(nodeagent.ExitUsage, "passphrase", nil, "backup", "create")
	r := l.expectCode(0, "", []string{"DRBOOK_BACKUP_PASSPHRASE=another one"}, "backup", "create")
	_ = r
	var list []nodeagent.BackupEntry
	l.mustJSON(&list, "backup", "list")
	if len(list) != 1 || list[0].Keys != 3000 {
		t.Fatalf("backup list: %+v", list)
	}
	// Retention: with --keep 2, the third backup prunes the oldest.
	for i := 0; i < 2; i++ {
		l.expectCode(0, "", []string{"DRBOOK_BACKUP_PASSPHRASE=another one"}, "backup", "create", "--keep", "2")
	}
	l.mustJSON(&list, "backup", "list")
	if len(list) != 2 {
		t.Fatalf("retention kept %d backups, want 2", len(list))
	}
	l.mustJSON(&b2, "backup", "delete", list[0].ID)
	l.expectCode(nodeagent.ExitNotFound, "not found", nil, "backup", "delete", list[0].ID)

	// Total loss.
	for _, n := range c.nodes {
		n.kill()
		if err := os.RemoveAll(n.dir); err != nil {
			t.Fatal(err)
		}
	}

	fresh := newNode(t, "fresh1")
	// Restore before bootstrap is refused.
	fresh.expectCode(nodeagent.ExitRefused, "restore-fresh-cluster", nil, "restore", out, "--key-file", pass)
	var br nodeagent.BootstrapResult
	fresh.mustJSON(&br, "cluster", "create")
	empty := fresh.manifest(false)

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.drbk")
	os.WriteFile(truncated, data[:len(data)*2/3], 0o600)
	flipped := filepath.Join(dir, "flipped.drbk")
	fl := append([]byte(nil), data...)
	fl[len(fl)/2] ^= 0x40
	os.WriteFile(flipped, fl, 0o600)
	wrong := writeSecret(t, "wrong passphrase")
	for _, tc := range []struct {
		name, file, key string
	}{
		{"wrong passphrase", out, wrong},
		{"truncated", truncated, pass},
		{"bit flip", flipped, pass},
	} {
		r := fresh.expectCode(nodeagent.ExitRefused, "restore-verified-backup", nil, "restore", tc.file, "--key-file", tc.key)
		t.Logf("%s: %s", tc.name, r.stderr)
		if got := fresh.manifest(false); got.Digest != empty.Digest {
			t.Fatalf("%s: refused restore changed state", tc.name)
		}
	}
	fresh.expectCode(nodeagent.ExitNotFound, "not found", nil, "restore", filepath.Join(dir, "missing.drbk"), "--key-file", pass)

	start := time.Now()
	var rr nodeagent.RestoreResult
	fresh.mustJSON(&rr, "restore", out, "--key-file", pass)
	if !rr.Changed || rr.Keys != 3000 {
		t.Fatalf("restore: %+v", rr)
	}
	t.Logf("restore of 3000 keys took %s", time.Since(start).Round(time.Millisecond))
	if got := fresh.manifest(false); got.Digest != before.Digest {
		t.Fatalf("restored keys differ: %+v", nodeagent.CompareManifests(before, got))
	}
	// A second restore is a no-op (resume), a restore onto keys is refused.
	fresh.mustJSON(&rr, "restore", out, "--key-file", pass)
	if rr.Changed {
		t.Fatal("second restore changed something")
	}

	c2 := &cluster{t: t, nodes: []*node{fresh}}
	c2.add("fresh2", fresh)
	n3 := c2.add("fresh3", fresh)
	for _, n := range c2.nodes {
		if got := n.manifest(false); got.Digest != before.Digest {
			t.Fatalf("node %s keys differ after restore and join", n.id)
		}
	}
	// keys verify against the manifest taken before the loss.
	mf := filepath.Join(t.TempDir(), "manifest.json")
	m := n3.run(nil, "keys", "manifest")
	os.WriteFile(mf, []byte(m.stdout), 0o600)
	var vr nodeagent.VerifyResult
	n3.mustJSON(&vr, "keys", "verify", "--manifest", mf)
	if !vr.OK {
		t.Fatalf("verify: %+v", vr)
	}
	var cr []nodeagent.CreateResult
	fresh.mustJSON(&cr, "keys", "create", "--name", "extra")
	r = n3.expectCode(nodeagent.ExitError, "differ", nil, "keys", "verify", "--manifest", mf)
	if err := jsonUnmarshal(r.stdout, &vr); err != nil || vr.OK || len(vr.Extra) != 1 {
		t.Fatalf("verify after extra key: %+v %v", vr, err)
	}
	// Restore onto a cluster that has keys and members is refused.
	fresh.expectCode(nodeagent.ExitRefused, "restore-fresh-cluster", nil, "restore", out, "--key-file", pass)
}
