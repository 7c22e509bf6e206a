package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks/rehearsal"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// The etcd tests run real etcd 3.4 members (Debian's etcd-server) on
// loopback as the SSH test user, reach them over real OpenSSH, inject a
// disaster and recover with the shipped etcd runbooks, headless.

// requireEtcd fails the test in CI (env CI set) when etcd or etcdctl is
// missing, and skips it elsewhere.
func requireEtcd(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"etcd", "etcdctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: CI installs etcd-server and etcd-client (.ci/run): %v", bin, err)
			}
			t.Skipf("%s not installed (apt-get install etcd-server etcd-client); CI runs this test", bin)
		}
	}
}

// freeTCPPorts returns n distinct ports that were free on 127.0.0.1 a
// moment ago (all listeners are held until every port is chosen).
func freeTCPPorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

type etcdMember struct {
	name, peerURL, clientURL, dataDir string
}

// etcdLab is a three-member etcd cluster on loopback, an inventory that
// reaches every member over one real sshd, and a record database.
type etcdLab struct {
	*sshLab
	base    string
	token   string
	members []etcdMember
	cred    *syscall.Credential
}

func newEtcdLab(t *testing.T) *etcdLab { return newEtcdLabN(t, 3) }

// newEtcdLabN is an etcd lab of n members m1..mn.
func newEtcdLabN(t *testing.T, n int) *etcdLab {
	t.Helper()
	requireEtcd(t)
	srv := sshtest.StartOpenSSH(t)
	base, err := os.MkdirTemp(srv.Dir, "etcd-")
	if err != nil {
		t.Fatal(err)
	}
	// #nosec G302 -- the members run as the SSH login user, who must create data dirs here
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	e := &etcdLab{sshLab: &sshLab{srv: srv, dir: t.TempDir()}, base: base, token: "drbook-" + filepath.Base(base)}
	e.db = filepath.Join(e.dir, "state", "drbook.db")
	if os.Geteuid() == 0 {
		u, err := user.Lookup(srv.User)
		if err != nil {
			t.Fatalf("lookup %s: %v", srv.User, err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		e.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	t.Cleanup(func() {
		// Every etcd of this test, started here or by a runbook over SSH,
		// has the test's unique base directory in its command line.
		pids := sshtest.PIDsWithArg(base)
		sshtest.KillPIDs(pids)
		deadline := time.Now().Add(10 * time.Second)
		for len(sshtest.PIDsWithArg(base)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if left := sshtest.PIDsWithArg(base); len(left) > 0 {
			t.Errorf("etcd processes left running: %v", left)
		}
		_ = os.RemoveAll(base)
	})
	ports := freeTCPPorts(t, 2*n)
	var inv strings.Builder
	fmt.Fprintf(&inv, "apiVersion: drbook/v1\nkind: Inventory\nname: etcd-test\nssh:\n  user: %s\n  identity_file: %s\n  known_hosts: %s\nnodes:\n",
		srv.User, srv.IdentityFile, srv.KnownHostsFile)
	var names []string
	for i := range n {
		m := etcdMember{
			name:      fmt.Sprintf("m%d", i+1),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			dataDir:   filepath.Join(base, fmt.Sprintf("m%d.etcd", i+1)),
		}
		e.members = append(e.members, m)
		names = append(names, m.name)
		fmt.Fprintf(&inv, "  - name: %s\n    host: %s\n    port: %d\n    vars: {peer_url: %q, client_url: %q, data_dir: %q}\n",
			m.name, srv.Host, srv.Port, m.peerURL, m.clientURL, m.dataDir)
	}
	fmt.Fprintf(&inv, "groups:\n  etcd: [%s]\n", strings.Join(names, ", "))
	e.inv = e.write(t, "inventory.yaml", inv.String())
	return e
}

func (e *etcdLab) member(name string) etcdMember {
	for _, m := range e.members {
		if m.name == name {
			return m
		}
	}
	panic("no member " + name)
}

func (e *etcdLab) initialCluster() string {
	var parts []string
	for _, m := range e.members {
		parts = append(parts, m.name+"="+m.peerURL)
	}
	return strings.Join(parts, ",")
}

// start starts the members of a new cluster as the SSH login user and
// waits (bounded) until the cluster is healthy.
func (e *etcdLab) start(t *testing.T) {
	t.Helper()
	for _, m := range e.members {
		e.startMember(t, m)
	}
	e.waitHealthy(t, e.endpoints())
}

// startMember starts one member's etcd as the SSH login user (with its
// data dir in place, the --initial-cluster flags are ignored).
func (e *etcdLab) startMember(t *testing.T, m etcdMember) {
	t.Helper()
	log, err := os.OpenFile(m.dataDir+".test.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// #nosec G204 -- test: etcd with the lab's own flags
	cmd := exec.Command("etcd", "--name", m.name, "--data-dir", m.dataDir,
		"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
		"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
		"--initial-cluster", e.initialCluster(), "--initial-cluster-token", e.token,
		"--initial-cluster-state", "new")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: e.cred}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd %s: %v", m.name, err)
	}
	_ = log.Close()
	go cmd.Wait() //nolint:errcheck // reaped; stopped by PID in cleanup
}

func (e *etcdLab) endpoints() string {
	var eps []string
	for _, m := range e.members {
		eps = append(eps, m.clientURL)
	}
	return strings.Join(eps, ",")
}

func (e *etcdLab) waitHealthy(t *testing.T, endpoints string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var out []byte
	var err error
	for time.Now().Before(deadline) {
		out, err = etcdctlRun(endpoints, "endpoint", "health")
		if err == nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("etcd cluster %s not healthy within 60s: %v\n%s", endpoints, err, out)
}

func etcdctlRun(endpoints string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// #nosec G204 -- test: etcdctl against the lab's own endpoints
	cmd := exec.CommandContext(ctx, "etcdctl", append([]string{"--endpoints", endpoints, "--command-timeout=10s"}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	return cmd.CombinedOutput()
}

func (e *etcdLab) etcdctl(t *testing.T, endpoints string, args ...string) string {
	t.Helper()
	out, err := etcdctlRun(endpoints, args...)
	if err != nil {
		t.Fatalf("etcdctl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// putKeys writes keys prefix000..prefix(n-1) through the whole cluster.
func (e *etcdLab) putKeys(t *testing.T, prefix string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		e.put(t, e.endpoints(), fmt.Sprintf("%s%03d", prefix, i), fmt.Sprintf("value-%d", i))
	}
}

// put writes one key, retrying for at most 30 s: right after a member is
// killed the cluster may be electing a leader ("request timed out,
// possibly due to previous leader failure"), and a put is idempotent.
func (e *etcdLab) put(t *testing.T, endpoints, key, value string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := etcdctlRun(endpoints, "put", key, value)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcdctl put %s: %v\n%s", key, err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// countKeys counts the keys under prefix on one member, serializable (from
// that member's own copy of the data).
func (e *etcdLab) countKeys(t *testing.T, member, prefix string) int {
	t.Helper()
	out := e.etcdctl(t, e.member(member).clientURL, "get", prefix, "--prefix", "--keys-only", "--consistency=s", "-w", "json")
	var r struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("etcdctl get -w json: %v\n%s", err, out)
	}
	return r.Count
}

// memberList returns name → "hexid learner" of the cluster's members.
func (e *etcdLab) memberList(t *testing.T, endpoint string) map[string]string {
	t.Helper()
	out := e.etcdctl(t, endpoint, "member", "list")
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, ", ")
		if len(f) != 6 {
			t.Fatalf("member list line %q", line)
		}
		got[f[2]] = f[0] + " learner=" + f[5]
	}
	return got
}

// kill stops a member's etcd (SIGKILL, by the PIDs whose command line has
// its data dir) and, with wipe, deletes its data dir.
func (e *etcdLab) kill(t *testing.T, name string, wipe bool) {
	t.Helper()
	m := e.member(name)
	pids := sshtest.PIDsWithArg(m.dataDir + "\x00")
	if len(pids) == 0 {
		t.Fatalf("no etcd running for %s", name)
	}
	sshtest.KillPIDs(pids)
	deadline := time.Now().Add(10 * time.Second)
	for len(sshtest.PIDsWithArg(m.dataDir+"\x00")) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if wipe {
		if err := os.RemoveAll(m.dataDir); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *etcdLab) run(t *testing.T, runbook, answers string) result {
	t.Helper()
	ans := e.write(t, "answers-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".yaml", answers)
	start := time.Now()
	r := drbook(t, nil, "run", "library:"+runbook, "-i", e.inv, "--answers", ans, "--headless", "--yes", "--db", e.db)
	t.Logf("%s: exit %d in %s", runbook, r.code, time.Since(start).Round(time.Millisecond))
	return r
}

func TestEtcdRunbooksLint(t *testing.T) {
	e := &etcdLab{sshLab: &sshLab{dir: t.TempDir()}}
	inv := e.write(t, "inv.yaml", `apiVersion: drbook/v1
kind: Inventory
name: lint
nodes:
  - {name: m1, host: 10.0.0.1, vars: {peer_url: "http://10.0.0.1:2380", client_url: "http://10.0.0.1:2379", data_dir: /var/lib/etcd/default}}
  - {name: m2, host: 10.0.0.2, vars: {peer_url: "http://10.0.0.2:2380", client_url: "http://10.0.0.2:2379", data_dir: /var/lib/etcd/default}}
  - {name: m3, host: 10.0.0.3, vars: {peer_url: "http://10.0.0.3:2380", client_url: "http://10.0.0.3:2379", data_dir: /var/lib/etcd/default}}
groups:
  etcd: [m1, m2, m3]
`)
	for _, rb := range []string{"etcd-replace-member", "etcd-restore-snapshot", "etcd-quorum-loss"} {
		r := drbook(t, nil, "lint", "library:"+rb, "-i", inv)
		if r.code != 0 || strings.Contains(r.stdout+r.stderr, "warning") {
			t.Errorf("lint %s: exit %d\n%s%s", rb, r.code, r.stdout, r.stderr)
		}
	}
}

// TestEtcdReplaceFailedMember: m2 is killed and its data dir deleted; the
// replace runbook removes it, adds it back as a learner, starts it and
// promotes it. Every key written before the failure is on the new m2.
func TestEtcdReplaceFailedMember(t *testing.T) {
	e := newEtcdLab(t)
	e.start(t)
	e.putKeys(t, "drill/", 0, 40)
	before := e.memberList(t, e.member("m1").clientURL)
	e.kill(t, "m2", true)

	r := e.run(t, "etcd-replace-member", "inputs:\n  failed: m2\n  healthy: m1\n")
	if r.code != 0 {
		t.Fatalf("replace: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	after := e.memberList(t, e.member("m1").clientURL)
	if len(after) != 3 {
		t.Fatalf("members after replace: %v", after)
	}
	for name, v := range after {
		if !strings.HasSuffix(v, "learner=false") {
			t.Errorf("%s is still a learner: %v", name, after)
		}
	}
	if after["m2"] == before["m2"] {
		t.Errorf("m2 kept its member id %s: it was not removed and added back", before["m2"])
	}
	if after["m1"] != before["m1"] || after["m3"] != before["m3"] {
		t.Errorf("healthy members changed: before %v after %v", before, after)
	}
	if got := e.countKeys(t, "m2", "drill/"); got != 40 {
		t.Errorf("new m2 holds %d keys under drill/, want 40", got)
	}
	e.waitHealthy(t, e.endpoints())
}

// TestEtcdReplaceRefusesUnhealthyCluster: with m3 down, replacing m2 could
// lose the quorum: the runbook refuses at its precondition step, before any
// danger step (m2 is still a member, still running, its data in place).
func TestEtcdReplaceRefusesUnhealthyCluster(t *testing.T) {
	e := newEtcdLab(t)
	e.start(t)
	e.putKeys(t, "drill/", 0, 5)
	before := e.memberList(t, e.member("m1").clientURL)
	e.kill(t, "m3", false)

	r := e.run(t, "etcd-replace-member", "inputs:\n  failed: m2\n  healthy: m1\n")
	if r.code == 0 {
		t.Fatalf("replace with m3 down succeeded:\n%s%s", r.stdout, r.stderr)
	}
	out := r.stdout + r.stderr
	want := "refusing: member at " + e.member("m3").clientURL + " is unhealthy"
	if !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if after := e.memberList(t, e.member("m1").clientURL); after["m2"] != before["m2"] {
		t.Errorf("m2 changed although the runbook refused: before %v after %v", before, after)
	}
	if _, err := os.Stat(filepath.Join(e.member("m2").dataDir, "member")); err != nil {
		t.Errorf("m2's data dir was touched: %v", err)
	}
	if len(sshtest.PIDsWithArg(e.member("m2").dataDir+"\x00")) == 0 {
		t.Errorf("m2's etcd was stopped although the runbook refused")
	}
	if got := e.countKeys(t, "m2", "drill/"); got != 5 {
		t.Errorf("m2 holds %d keys, want 5", got)
	}
}

// TestEtcdRestoreFromSnapshot: 30 keys are in a snapshot, 7 more are
// written after it, then every member is killed and its data deleted. The
// restore runbook brings all three back from the snapshot: exactly the 30
// keys are there (the 7 later ones are the data lost, the RPO).
func TestEtcdRestoreFromSnapshot(t *testing.T) {
	e := newEtcdLab(t)
	e.start(t)
	e.putKeys(t, "drill/", 0, 30)
	snap := filepath.Join(e.base, "snapshot.db")
	e.etcdctl(t, e.member("m1").clientURL, "snapshot", "save", snap)
	// #nosec G302 -- the runbook reads the snapshot as the SSH login user
	if err := os.Chmod(snap, 0o644); err != nil {
		t.Fatal(err)
	}
	e.putKeys(t, "drill/", 30, 7)
	if got := e.countKeys(t, "m1", "drill/"); got != 37 {
		t.Fatalf("before the loss: %d keys, want 37", got)
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		e.kill(t, m, true)
	}

	r := e.run(t, "etcd-restore-snapshot", fmt.Sprintf("inputs:\n  snapshot: %s\n  token: %s\n", snap, e.token))
	if r.code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.waitHealthy(t, e.endpoints())
	for _, m := range []string{"m1", "m2", "m3"} {
		if got := e.countKeys(t, m, "drill/"); got != 30 {
			t.Errorf("%s holds %d keys after the restore, want 30 (the snapshot's)", m, got)
		}
	}
	if out := e.etcdctl(t, e.endpoints(), "get", "drill/030"); strings.TrimSpace(out) != "" {
		t.Errorf("a key written after the snapshot survived: %q", out)
	}
	if got := e.memberList(t, e.member("m1").clientURL); len(got) != 3 {
		t.Errorf("members after restore: %v", got)
	}
	// The cluster takes writes again.
	e.putKeys(t, "after/", 0, 1)
}

// TestEtcdRestoreRefusesRunningMember: with the cluster still running, the
// restore runbook refuses before any danger step: nothing is moved.
func TestEtcdRestoreRefusesRunningMember(t *testing.T) {
	e := newEtcdLab(t)
	e.start(t)
	e.putKeys(t, "drill/", 0, 3)
	snap := filepath.Join(e.base, "snapshot.db")
	e.etcdctl(t, e.member("m1").clientURL, "snapshot", "save", snap)
	// #nosec G302 -- the runbook reads the snapshot as the SSH login user
	if err := os.Chmod(snap, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, "etcd-restore-snapshot", fmt.Sprintf("inputs:\n  snapshot: %s\n  token: %s\n", snap, e.token))
	if r.code == 0 {
		t.Fatalf("restore over a running cluster succeeded:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout+r.stderr, "is still running: a restore is for a cluster that is lost") {
		t.Errorf("no clear refusal:\n%s%s", r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "DANGER") {
		t.Errorf("a danger step was reached:\n%s", r.stdout)
	}
	e.waitHealthy(t, e.endpoints())
	if got := e.countKeys(t, "m3", "drill/"); got != 3 {
		t.Errorf("m3 holds %d keys, want 3", got)
	}
}

// TestEtcdQuorumLoss: two of three members are killed (m3's data deleted
// too); the cluster has no leader. The quorum-loss runbook forces a new
// cluster on m1 and re-adds m2 and m3: every committed key is on all three.
func TestEtcdQuorumLoss(t *testing.T) {
	e := newEtcdLab(t)
	e.start(t)
	e.putKeys(t, "drill/", 0, 25)
	e.kill(t, "m2", false)
	e.kill(t, "m3", true)

	r := e.run(t, "etcd-quorum-loss", "inputs:\n  survivor: m1\n  others: [m2, m3]\n")
	if r.code != 0 {
		t.Fatalf("quorum loss: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.waitHealthy(t, e.endpoints())
	list := e.memberList(t, e.member("m1").clientURL)
	if len(list) != 3 {
		t.Fatalf("members after recovery: %v", list)
	}
	for name, v := range list {
		if !strings.HasSuffix(v, "learner=false") {
			t.Errorf("%s is still a learner: %v", name, list)
		}
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		if got := e.countKeys(t, m, "drill/"); got != 25 {
			t.Errorf("%s holds %d keys, want 25 (nothing committed may be lost)", m, got)
		}
	}
	e.putKeys(t, "after/", 0, 1)
}

// TestEtcdQuorumLossRefusesHealthyCluster: with the quorum intact, forcing
// a new cluster would throw members away: the runbook refuses first.
func TestEtcdQuorumLossRefusesHealthyCluster(t *testing.T) {
	e := newEtcdLab(t)
	e.start(t)
	e.kill(t, "m3", false)
	r := e.run(t, "etcd-quorum-loss", "inputs:\n  survivor: m1\n  others: [m2, m3]\n")
	if r.code == 0 {
		t.Fatalf("quorum-loss recovery on a cluster with a quorum succeeded:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout+r.stderr, "sees a leader (") {
		t.Errorf("no clear refusal:\n%s%s", r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "DANGER") {
		t.Errorf("a danger step was reached:\n%s", r.stdout)
	}
	if got := e.memberList(t, e.member("m1").clientURL); len(got) != 3 {
		t.Errorf("members changed: %v", got)
	}
}

// etcdDrillInventory is the loopback inventory the shipped etcd drills
// expect (docs/etcd.md): ports and data dirs come from the drill.
func etcdDrillInventory(srv *sshtest.Server) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: drbook/v1\nkind: Inventory\nname: etcd-drill\nssh:\n  user: %s\n  identity_file: %s\n  known_hosts: %s\nnodes:\n",
		srv.User, srv.IdentityFile, srv.KnownHostsFile)
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "  - name: m%d\n    host: %s\n    port: %d\n    vars:\n      peer_url: \"http://127.0.0.1:${DRILL_PORT_%d}\"\n      client_url: \"http://127.0.0.1:${DRILL_PORT_%d}\"\n      data_dir: \"${DRILL_DIR}/m%d.etcd\"\n",
			i, srv.Host, srv.Port, 2*i-2, 2*i-1, i)
	}
	b.WriteString("groups:\n  etcd: [m1, m2, m3]\n")
	return b.String()
}

// TestEtcdDrills runs each shipped etcd drill through drbook rehearse
// --drill over real OpenSSH: a real etcd 3.4 cluster, the disaster, the
// shipped runbook, and the report. The RPO is exact: 0 where nothing may be
// lost, the 12 keys written after the snapshot for the total loss.
func TestEtcdDrills(t *testing.T) {
	requireEtcd(t)
	for _, tc := range []struct {
		drill, runbook      string
		atRP, before, after int
		rpo                 int
	}{
		{"etcd-node-loss", "etcd-replace-member", 100, 112, 112, 0},
		{"etcd-total-loss", "etcd-restore-snapshot", 100, 112, 100, 12},
		{"etcd-quorum-loss", "etcd-quorum-loss", 100, 112, 112, 0},
	} {
		t.Run(tc.drill, func(t *testing.T) {
			srv := sshtest.StartOpenSSH(t)
			inv := filepath.Join(t.TempDir(), "inventory.yaml")
			if err := os.WriteFile(inv, []byte(etcdDrillInventory(srv)), 0o600); err != nil {
				t.Fatal(err)
			}
			work, err := os.MkdirTemp(srv.Dir, "etcd-drill-")
			if err != nil {
				t.Fatal(err)
			}
			// #nosec G302 -- the drill's members run as the SSH login user
			if err := os.Chmod(work, 0o777); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if pids := sshtest.PIDsWithArg(work); len(pids) > 0 {
					sshtest.KillPIDs(pids)
					t.Errorf("processes of the drill left running: %v", pids)
				}
				_ = os.RemoveAll(work)
			})
			db := filepath.Join(t.TempDir(), "drbook.db")
			reports := filepath.Join(t.TempDir(), "report")
			start := time.Now()
			r := drbook(t, nil, "rehearse", "--drill", "library:"+tc.drill, "-i", inv, "--dir", work,
				"--db", db, "--report-dir", reports, "--ports", "32000-32767", "--output", "json")
			t.Logf("%s: exit %d in %s", tc.drill, r.code, time.Since(start).Round(time.Millisecond))
			if r.code != 0 {
				t.Fatalf("rehearse exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			rep := rehearsalReport(t, r.stdout, reports)
			if rep.KeysAtBackup != tc.atRP || rep.KeysBefore != tc.before || rep.KeysAfter != tc.after || rep.RPOKeys != tc.rpo {
				t.Errorf("keys: %d at the snapshot, %d before the disaster, %d after the recovery, RPO %d; want %d, %d, %d, %d",
					rep.KeysAtBackup, rep.KeysBefore, rep.KeysAfter, rep.RPOKeys, tc.atRP, tc.before, tc.after, tc.rpo)
			}
			if rep.Runbook != tc.runbook || rep.Verdict != "" || rep.RTO <= 0 || !splitAddsUp(rep) {
				t.Errorf("report: runbook %q verdict %q RTO %v (machine %v + operator %v)", rep.Runbook, rep.Verdict, rep.RTO, rep.Machine, rep.Human)
			}
			t.Logf("%s: RTO %v, RPO %d keys", tc.drill, rep.RTO, rep.RPOKeys)
			var onDisk rehearsal.Report
			b, err := os.ReadFile(filepath.Join(reports, "report.json")) // #nosec G304 -- the report this test asked for
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &onDisk); err != nil || onDisk.RunID != rep.RunID || onDisk.RPOKeys != rep.RPOKeys || onDisk.RTO != rep.RTO {
				t.Errorf("report.json disagrees: %v %+v", err, onDisk)
			}
			list := drbook(t, nil, "runbooks", "--db", db)
			if !strings.Contains(list.stdout, tc.runbook) || !strings.Contains(list.stdout, "succeeded") {
				t.Errorf("drbook runbooks does not show the rehearsal of %s:\n%s", tc.runbook, list.stdout)
			}
			if pids := sshtest.PIDsWithArg(work); len(pids) > 0 {
				t.Errorf("etcd left running after the drill: %v", pids)
			}
		})
	}
}

// TestEtcdQuorumLossRefusesLaggingSurvivor: in a five-member cluster, m3
// is killed, 10 more keys are committed by the other four, then m2, m4 and
// m5 are killed and, once m1 has no leader, m3 is started again: m1 and m3
// are left without a quorum, and m3 lacks committed writes. Rebuilding on
// m3 would lose them. etcd 3.4 serves no client request on a member that
// restarted until it has rejoined a quorum, so m3's applied index cannot be
// read: the runbook refuses at its first check, before any danger step,
// and nothing is changed.
func TestEtcdQuorumLossRefusesLaggingSurvivor(t *testing.T) {
	e := newEtcdLabN(t, 5)
	e.start(t)
	e.putKeys(t, "drill/", 0, 5)
	e.kill(t, "m3", false)
	live := strings.Join([]string{e.member("m1").clientURL, e.member("m2").clientURL, e.member("m4").clientURL, e.member("m5").clientURL}, ",")
	for i := 5; i < 15; i++ {
		e.put(t, live, fmt.Sprintf("drill/%03d", i), "v")
	}
	for _, m := range []string{"m2", "m4", "m5"} {
		e.kill(t, m, false)
	}
	// Wait until m1 has stepped down (no leader), so that it sends m3
	// nothing when m3 comes back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := etcdctlRun(e.member("m1").clientURL, "endpoint", "status", "-w", "json")
		if strings.Contains(string(out), "raftAppliedIndex") && !strings.Contains(string(out), `"leader":`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m1 still has a leader after 30s:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.startMember(t, e.member("m3"))

	r := e.run(t, "etcd-quorum-loss", "inputs:\n  survivor: m3\n  others: [m1, m2, m4, m5]\n")
	if r.code == 0 {
		t.Fatalf("rebuilding on the lagging m3 succeeded:\n%s", r.stdout)
	}
	out := r.stdout + r.stderr
	if !strings.Contains(out, "refusing: the survivor m3 does not answer") {
		t.Errorf("no clear refusal:\n%s", out)
	}
	if strings.Contains(r.stdout, "DANGER") {
		t.Errorf("a danger step was reached:\n%s", r.stdout)
	}
	for _, m := range []string{"m1", "m3"} {
		if len(sshtest.PIDsWithArg(e.member(m).dataDir+"\x00")) == 0 {
			t.Errorf("%s's etcd was stopped although the runbook refused", m)
		}
	}
	if got := e.countKeys(t, "m1", "drill/"); got != 15 {
		t.Errorf("m1 holds %d keys, want 15", got)
	}
}
