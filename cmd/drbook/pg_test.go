package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/runbooks/rehearsal"
	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// The shipped PostgreSQL runbooks are rehearsed here against real
// PostgreSQL 15 (Debian's postgresql-15): a primary and a streaming standby
// on loopback ports, run as the unprivileged SSH test user and reached over
// real OpenSSH, with the disaster injected by kill -9.

// pgBinDir is where Debian's postgresql-15 installs its programs.
const pgBinDir = "/usr/lib/postgresql/15/bin"

// pgRows is how many rows are committed (and replicated) before the disaster.
const pgRows = 1000

// requirePostgres skips the test outside CI when PostgreSQL 15 is not
// installed; in CI (env CI set) a missing PostgreSQL fails the test.
func requirePostgres(t *testing.T) {
	t.Helper()
	for _, p := range []string{"initdb", "pg_ctl", "pg_basebackup", "pg_rewind", "pg_controldata", "postgres", "psql"} {
		if _, err := os.Stat(filepath.Join(pgBinDir, p)); err != nil {
			if os.Getenv("CI") == "" {
				t.Skipf("PostgreSQL 15 not installed (%v): apt-get install postgresql-15", err)
			}
			t.Fatalf("PostgreSQL 15 missing in CI (%v): .ci/run must install postgresql", err)
		}
	}
}

// pgNode is one PostgreSQL server of the lab.
type pgNode struct {
	name, data, log string
	port            int
}

// pgLab is a primary (pg1) and a streaming standby (pg2) started over SSH
// as the test user, an inventory describing them and a clients node (app)
// whose primary_file the promote runbook rewrites.
type pgLab struct {
	srv        *sshtest.Server
	ssh        *transport.SSH
	dir        string
	pg1, pg2   pgNode
	inv        string
	clientFile string
}

// freeLoopbackPort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sh runs a command on the lab's node (as the SSH test user) and returns
// its stdout; a non-zero exit fails the test.
func (l *pgLab) sh(t *testing.T, line string) string {
	t.Helper()
	out, code, err := l.try(line)
	if err != nil || code != 0 {
		t.Fatalf("%s: exit %d, %v\n%s", line, code, err, out)
	}
	return out
}

// try runs a command and returns its output (stdout then stderr) and exit status.
func (l *pgLab) try(line string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var so, se bytes.Buffer
	code, err := l.ssh.Run(ctx, transport.Command{Line: line, Stdout: &so, Stderr: &se})
	return so.String() + se.String(), code, err
}

// psql runs one SQL command on a node and returns its unaligned output.
func (l *pgLab) psql(t *testing.T, n pgNode, sql string) string {
	t.Helper()
	return strings.TrimSpace(l.sh(t, fmt.Sprintf("%s/psql -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p %d -d postgres -c %s",
		pgBinDir, n.port, transport.Quote(sql))))
}

// newPGLab starts the primary and the standby and loads pgRows rows,
// waiting until the standby has replayed them. hints sets wal_log_hints on
// the primary (neither node has data checksums).
func newPGLab(t *testing.T, hints bool) *pgLab {
	t.Helper()
	requirePostgres(t)
	srv := sshtest.StartOpenSSH(t)
	conn, err := transport.DialSSH(context.Background(), transport.SSHConfig{
		Name: "pg", Host: srv.Host, Port: srv.Port, User: srv.User,
		IdentityFile: srv.IdentityFile, KnownHostsFile: srv.KnownHostsFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	l := &pgLab{srv: srv, ssh: conn, dir: filepath.Join(srv.Dir, "pg")}
	l.sh(t, "mkdir -p "+transport.Quote(l.dir)+"/app && chmod 700 "+transport.Quote(l.dir))
	mk := func(name string) pgNode {
		return pgNode{name: name, data: filepath.Join(l.dir, name), log: filepath.Join(l.dir, name+".log"), port: freeLoopbackPort(t)}
	}
	l.pg1, l.pg2 = mk("pg1"), mk("pg2")
	for l.pg2.port == l.pg1.port {
		l.pg2.port = freeLoopbackPort(t)
	}
	// Registered before anything starts: stops whatever did start.
	t.Cleanup(func() { l.stopAll(t) })

	hint := "off"
	if hints {
		hint = "on"
	}
	q := transport.Quote
	b := pgBinDir
	l.sh(t, fmt.Sprintf("%s/initdb -D %s -A trust --no-sync >/dev/null", b, q(l.pg1.data)))
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nwal_level = replica\nmax_wal_senders = 5\nwal_keep_size = '128MB'\nwal_log_hints = %s\nfsync = off\n",
		l.pg1.port, l.dir, hint)
	l.sh(t, fmt.Sprintf("printf '%%s' %s >> %s/postgresql.conf && echo 'host replication all 127.0.0.1/32 trust' >> %s/pg_hba.conf",
		q(conf), q(l.pg1.data), q(l.pg1.data)))
	l.sh(t, fmt.Sprintf("%s/pg_ctl -D %s -l %s -w -t 60 start >/dev/null", b, q(l.pg1.data), q(l.pg1.log)))
	l.sh(t, fmt.Sprintf("%s/pg_basebackup -h 127.0.0.1 -p %d -D %s -R -X stream", b, l.pg1.port, q(l.pg2.data)))
	// The standby's own port, after the primary's copied line (the last one wins).
	l.sh(t, fmt.Sprintf("echo 'port = %d' >> %s/postgresql.conf", l.pg2.port, q(l.pg2.data)))
	l.sh(t, fmt.Sprintf("%s/pg_ctl -D %s -l %s -w -t 60 start >/dev/null", b, q(l.pg2.data), q(l.pg2.log)))

	l.psql(t, l.pg1, "CREATE TABLE drill (id int PRIMARY KEY, note text NOT NULL)")
	l.psql(t, l.pg1, fmt.Sprintf("INSERT INTO drill SELECT g, md5(g::text) FROM generate_series(1, %d) g", pgRows))
	lsn := l.psql(t, l.pg1, "SELECT pg_current_wal_lsn()")
	l.waitFor(t, "the standby replays the loaded rows", func() bool {
		out, code, _ := l.try(fmt.Sprintf("%s/psql -X -At -h 127.0.0.1 -p %d -d postgres -c %s", b, l.pg2.port,
			q(fmt.Sprintf("SELECT pg_last_wal_replay_lsn() >= '%s'", lsn))))
		return code == 0 && strings.TrimSpace(out) == "t"
	})
	if got := l.psql(t, l.pg2, "SELECT count(*) FROM drill"); got != strconv.Itoa(pgRows) {
		t.Fatalf("standby has %s rows before the disaster, want %d", got, pgRows)
	}

	l.clientFile = filepath.Join(l.dir, "app", "primary.env")
	l.sh(t, fmt.Sprintf("printf 'PGHOST=127.0.0.1\\nPGPORT=%d\\n' > %s", l.pg1.port, q(l.clientFile)))
	var inv strings.Builder
	fmt.Fprintf(&inv, "apiVersion: drbook/v1\nkind: Inventory\nname: pg\nssh:\n  user: %s\n  identity_file: %s\n  known_hosts: %s\nnodes:\n",
		srv.User, srv.IdentityFile, srv.KnownHostsFile)
	for _, n := range []pgNode{l.pg1, l.pg2} {
		fmt.Fprintf(&inv, "  - name: %s\n    host: %s\n    port: %d\n    labels: {role: postgres}\n    vars: {pgbin: %s, pgdata: %s, pghost: 127.0.0.1, pgport: \"%d\", pglog: %s}\n",
			n.name, srv.Host, srv.Port, pgBinDir, n.data, n.port, n.log)
	}
	fmt.Fprintf(&inv, "  - name: app\n    host: %s\n    port: %d\n    labels: {clients: app}\n    vars: {primary_file: %s}\ngroups:\n  postgres: [pg1, pg2]\n",
		srv.Host, srv.Port, l.clientFile)
	l.inv = filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(l.inv, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitFor polls cond every 200 ms for at most a minute.
func (l *pgLab) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// postmasterPID reads the first line of a data directory's postmaster.pid
// (0 when the file is absent).
func postmasterPID(data string) int {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid")) // #nosec G304 -- test: the lab's own data directory
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// crash is the disaster: kill -9 the node's postmaster, then wait until it
// and every server process of the data directory are gone.
func (l *pgLab) crash(t *testing.T, n pgNode) {
	t.Helper()
	pid := postmasterPID(n.data)
	if pid <= 0 || !alive(pid) {
		t.Fatalf("%s: no running postmaster to kill", n.name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s's postmaster %d: %v", n.name, pid, err)
	}
	l.waitFor(t, n.name+"'s postmaster is gone", func() bool { return !alive(pid) })
	l.waitFor(t, n.name+" no longer accepts connections", func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)), time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return true
	})
}

// stopAll stops both servers: pg_ctl stop -m immediate, then SIGKILL to
// any process still holding a data directory. It fails the test if a
// server is left running.
func (l *pgLab) stopAll(t *testing.T) {
	for _, n := range []pgNode{l.pg1, l.pg2} {
		if n.data == "" {
			continue
		}
		if pid := postmasterPID(n.data); pid > 0 && alive(pid) {
			_, _, _ = l.try(fmt.Sprintf("%s/pg_ctl -D %s stop -m immediate -t 20", pgBinDir, transport.Quote(n.data)))
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		sshtest.KillPIDs(sshtest.PIDsWithArg(n.data))
		deadline := time.Now().Add(20 * time.Second)
		for {
			pid := postmasterPID(n.data)
			left := sshtest.PIDsWithArg(n.data)
			if (pid == 0 || !alive(pid)) && len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s still running after cleanup: postmaster %d, processes %v", n.name, pid, left)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// runPG runs a shipped runbook headless with answers; it returns the result
// without judging it.
func (l *pgLab) runPG(t *testing.T, runbook, answers string) result {
	t.Helper()
	dir := t.TempDir()
	ans := filepath.Join(dir, "answers.yaml")
	if err := os.WriteFile(ans, []byte(answers), 0o600); err != nil {
		t.Fatal(err)
	}
	r := drbook(t, nil, "run", "library:"+runbook, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", filepath.Join(dir, "drbook.db"))
	t.Logf("drbook run library:%s: exit %d\n%s%s", runbook, r.code, r.stdout, r.stderr)
	return r
}

const promoteAnswers = "inputs:\n  old_primary: pg1\n  standby: pg2\n  clients: app\n"

const rewindAnswers = "inputs:\n  old_primary: pg1\n  primary: pg2\n"

// TestPostgresPromoteAndRewind loses the primary (kill -9), promotes the
// standby with library:pg-promote-standby, checks that every row committed
// and replicated before the disaster is on the new primary, that the
// timeline changed and that clients were repointed; then it fails back with
// library:pg-rewind-old-primary and checks that the old primary streams
// from the new one, on its own port (its configuration survived the rewind).
func TestPostgresPromoteAndRewind(t *testing.T) {
	l := newPGLab(t, true)
	for _, rb := range []string{"pg-promote-standby", "pg-rewind-old-primary"} {
		if lint := drbook(t, nil, "lint", "library:"+rb, "-i", l.inv); lint.code != 0 {
			t.Fatalf("lint %s: exit %d\n%s%s", rb, lint.code, lint.stdout, lint.stderr)
		}
	}
	tliBefore := l.psql(t, l.pg2, "SELECT timeline_id FROM pg_control_checkpoint()")
	l.crash(t, l.pg1)

	start := time.Now()
	r := l.runPG(t, "pg-promote-standby", promoteAnswers)
	if r.code != 0 {
		t.Fatalf("promote: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("promote runbook took %v", time.Since(start).Round(time.Millisecond))
	if got := l.psql(t, l.pg2, "SELECT pg_is_in_recovery()"); got != "f" {
		t.Fatalf("pg2 still in recovery after the promote runbook: %s", got)
	}
	if got := l.psql(t, l.pg2, "SELECT count(*) || ' ' || sum(id) FROM drill"); got != fmt.Sprintf("%d %d", pgRows, pgRows*(pgRows+1)/2) {
		t.Errorf("new primary holds %q (count, sum of ids), want every replicated row: %d %d", got, pgRows, pgRows*(pgRows+1)/2)
	}
	tliAfter := l.psql(t, l.pg2, "SELECT timeline_id FROM pg_control_checkpoint()")
	before, _ := strconv.Atoi(tliBefore)
	after, _ := strconv.Atoi(tliAfter)
	if after <= before {
		t.Errorf("timeline %s after promotion, was %s: it did not change", tliAfter, tliBefore)
	}
	if b, err := os.ReadFile(l.clientFile); err != nil || string(b) != fmt.Sprintf("PGHOST=127.0.0.1\nPGPORT=%d\n", l.pg2.port) {
		t.Errorf("clients' file = %q (%v), want the new primary's address", b, err)
	}
	fence, err := os.ReadFile(filepath.Join(l.pg1.data, "drbook.fenced"))
	if err != nil || !strings.Contains(string(fence), "pg2 was promoted") {
		t.Errorf("old primary not fenced: %q %v", fence, err)
	}
	if _, err := os.Stat(filepath.Join(l.pg1.data, "standby.signal")); err != nil {
		t.Errorf("old primary has no standby.signal: a restart would make it a primary again: %v", err)
	}
	l.psql(t, l.pg2, "INSERT INTO drill VALUES (1000001, 'after failover')")

	start = time.Now()
	r = l.runPG(t, "pg-rewind-old-primary", rewindAnswers)
	if r.code != 0 {
		t.Fatalf("rewind: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("fail-back runbook took %v", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"servers diverged at WAL location", "restored postgresql.conf", "restored postgresql.auto.conf"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("fail-back output lacks %q:\n%s", want, r.stdout)
		}
	}
	// pg1 answers on its own port: its postgresql.conf came back after the
	// rewind copied pg2's (which names pg2's port).
	if got := l.psql(t, l.pg1, "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("pg1 after fail-back: in recovery = %s, want t (a standby)", got)
	}
	if got := l.psql(t, l.pg1, "SHOW port"); got != strconv.Itoa(l.pg1.port) {
		t.Errorf("pg1 runs on port %s, want its own %d", got, l.pg1.port)
	}
	l.psql(t, l.pg2, "INSERT INTO drill VALUES (1000002, 'after fail-back')")
	lsn := l.psql(t, l.pg2, "SELECT pg_current_wal_lsn()")
	l.waitFor(t, "pg1 replays the new primary's latest write", func() bool {
		return l.psql(t, l.pg1, fmt.Sprintf("SELECT pg_last_wal_replay_lsn() >= '%s'", lsn)) == "t"
	})
	if got := l.psql(t, l.pg1, "SELECT count(*) FROM drill"); got != strconv.Itoa(pgRows+2) {
		t.Errorf("pg1 has %s rows after fail-back, want %d", got, pgRows+2)
	}
	if got := l.psql(t, l.pg2, "SELECT application_name || ':' || state FROM pg_stat_replication"); got != "pg1:streaming" {
		t.Errorf("pg_stat_replication on pg2 = %q, want pg1:streaming", got)
	}
	if _, err := os.Stat(filepath.Join(l.pg1.data, "drbook.fenced")); !os.IsNotExist(err) {
		t.Errorf("fence marker left after fail-back: %v", err)
	}
}

// TestPostgresPromoteRefusesUnfencedPrimary: the primary still runs and
// accepts writes; the promote runbook refuses before its first danger step
// (the fence), and nothing changed: the primary runs, the standby is
// still in recovery, the clients' file still names the primary. With
// stop_old_primary: true the fence stops the live primary, then promotes.
func TestPostgresPromoteRefusesUnfencedPrimary(t *testing.T) {
	l := newPGLab(t, true)
	r := l.runPG(t, "pg-promote-standby", promoteAnswers)
	if r.code == 0 {
		t.Fatalf("promote with a live primary succeeded:\n%s", r.stdout)
	}
	out := r.stdout + r.stderr
	if !strings.Contains(out, "REFUSED: the old primary 127.0.0.1:"+strconv.Itoa(l.pg1.port)+" still accepts writes") {
		t.Errorf("no refusal naming the live primary:\n%s", out)
	}
	for _, step := range []string{"▶ fence ", "▶ promote ", "▶ repoint "} {
		if strings.Contains(out, step) {
			t.Errorf("step %q ran after the refusal:\n%s", step, out)
		}
	}
	if !strings.Contains(out, "▶ not-writable ") {
		t.Errorf("the refusing step is not in the output:\n%s", out)
	}
	if got := l.psql(t, l.pg1, "SELECT pg_is_in_recovery()"); got != "f" {
		t.Errorf("pg1 in recovery = %s, want f (untouched)", got)
	}
	if got := l.psql(t, l.pg2, "SELECT pg_is_in_recovery()"); got != "t" {
		t.Errorf("pg2 in recovery = %s, want t (not promoted)", got)
	}
	if _, err := os.Stat(filepath.Join(l.pg1.data, "drbook.fenced")); !os.IsNotExist(err) {
		t.Errorf("pg1 was fenced: %v", err)
	}
	if b, _ := os.ReadFile(l.clientFile); !strings.Contains(string(b), strconv.Itoa(l.pg1.port)) {
		t.Errorf("clients were repointed: %q", b)
	}

	// A live primary that answers but refuses the check's login is not
	// taken for a dead one: the runbook refuses, it does not guess.
	l.sh(t, fmt.Sprintf("sed -i '1i host all all 127.0.0.1/32 reject' %s/pg_hba.conf && %s/pg_ctl -D %s reload >/dev/null",
		transport.Quote(l.pg1.data), pgBinDir, transport.Quote(l.pg1.data)))
	l.waitFor(t, "pg1 rejects logins from 127.0.0.1", func() bool {
		_, code, _ := l.try(fmt.Sprintf("%s/psql -X -At -h 127.0.0.1 -p %d -d postgres -c 'SELECT 1'", pgBinDir, l.pg1.port))
		return code != 0
	})
	r = l.runPG(t, "pg-promote-standby", promoteAnswers)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "but its role cannot be checked") || strings.Contains(r.stdout, "▶ fence ") {
		t.Errorf("a primary that answers but cannot be checked: exit %d, want a refusal before the fence:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Told that the live primary is cut off from its clients, the runbook
	// stops it in the fence step, checks again, and promotes.
	r = l.runPG(t, "pg-promote-standby", promoteAnswers+"  stop_old_primary: true\n")
	if r.code != 0 {
		t.Fatalf("promote with stop_old_primary: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if pid := postmasterPID(l.pg1.data); pid > 0 && alive(pid) {
		t.Errorf("the old primary still runs (pid %d) after the fence", pid)
	}
	if _, err := os.Stat(filepath.Join(l.pg1.data, "standby.signal")); err != nil {
		t.Errorf("old primary not fenced with standby.signal: %v", err)
	}
	if got := l.psql(t, l.pg2, "SELECT pg_is_in_recovery()::text || ' ' || count(*) FROM drill"); got != fmt.Sprintf("false %d", pgRows) {
		t.Errorf("pg2 after promotion: %q, want \"false %d\"", got, pgRows)
	}
}

// TestPostgresRewindRefusesWithoutWalLogHints: the old primary ran without
// wal_log_hints and without data checksums; after a real failover the
// fail-back runbook refuses before anything touches the old primary's data
// (no crash recovery, no configuration saved, no rewind).
func TestPostgresRewindRefusesWithoutWalLogHints(t *testing.T) {
	l := newPGLab(t, false)
	l.crash(t, l.pg1)
	if r := l.runPG(t, "pg-promote-standby", promoteAnswers); r.code != 0 {
		t.Fatalf("promote: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	confBefore, err := os.ReadFile(filepath.Join(l.pg1.data, "postgresql.conf"))
	if err != nil {
		t.Fatal(err)
	}
	r := l.runPG(t, "pg-rewind-old-primary", rewindAnswers)
	if r.code == 0 {
		t.Fatalf("fail-back without wal_log_hints succeeded:\n%s", r.stdout)
	}
	out := r.stdout + r.stderr
	if !strings.Contains(out, "neither data checksums nor wal_log_hints=on") {
		t.Errorf("no refusal naming wal_log_hints:\n%s", out)
	}
	if !strings.Contains(out, "▶ target ") {
		t.Errorf("the refusing step is not in the output:\n%s", out)
	}
	for _, step := range []string{"▶ recover ", "▶ dryrun ", "▶ saveconf ", "▶ rewind "} {
		if strings.Contains(out, step) {
			t.Errorf("step %q ran after the refusal:\n%s", step, out)
		}
	}
	state := l.sh(t, fmt.Sprintf("LC_ALL=C %s/pg_controldata -D %s | sed -n 's/^Database cluster state: *//p'", pgBinDir, transport.Quote(l.pg1.data)))
	if strings.TrimSpace(state) != "in production" {
		t.Errorf("old primary's cluster state = %q, want untouched (in production, as the crash left it)", state)
	}
	if after, _ := os.ReadFile(filepath.Join(l.pg1.data, "postgresql.conf")); !bytes.Equal(after, confBefore) {
		t.Error("old primary's postgresql.conf changed")
	}
	if m, _ := filepath.Glob(l.pg1.data + ".drbook-conf-*"); len(m) > 0 {
		t.Errorf("configuration saved (a step after the refusal ran): %v", m)
	}
}

// pgDrillInventory writes the inventory the shipped PostgreSQL drills take
// with -i (docs/postgresql.md): pg1, pg2 and app on the test's sshd, with
// the drill's directory and ports in their vars (expanded by rehearse).
func pgDrillInventory(t *testing.T, srv *sshtest.Server) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: drbook/v1\nkind: Inventory\nname: pg-drill\nssh:\n  user: %s\n  identity_file: %s\n  known_hosts: %s\nnodes:\n",
		srv.User, srv.IdentityFile, srv.KnownHostsFile)
	for i, n := range []string{"pg1", "pg2"} {
		fmt.Fprintf(&b, "  - name: %s\n    host: %s\n    port: %d\n    labels: {role: postgres}\n"+
			"    vars: {pgbin: %s, pgdata: \"${DRILL_DIR}/pg/%s\", pghost: 127.0.0.1, pgport: \"${DRILL_PORT_%d}\", pglog: \"${DRILL_DIR}/pg/%s.log\"}\n",
			n, srv.Host, srv.Port, pgBinDir, n, i, n)
	}
	fmt.Fprintf(&b, "  - name: app\n    host: %s\n    port: %d\n    labels: {clients: app}\n    vars: {primary_file: \"${DRILL_DIR}/pg/app/primary.env\"}\n",
		srv.Host, srv.Port)
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(inv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return inv
}

// rehearsePG runs a shipped PostgreSQL drill over real OpenSSH and returns
// its report; the drill must pass, its report files must agree with the
// JSON, and no process of the drill may be left running.
func rehearsePG(t *testing.T, drill string) rehearsal.Report {
	t.Helper()
	requirePostgres(t)
	srv := sshtest.StartOpenSSH(t)
	inv := pgDrillInventory(t, srv)
	work := filepath.Join(srv.Dir, "drill")
	if err := os.Mkdir(work, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	// Whatever happens, no postgres of this drill outlives the test.
	t.Cleanup(func() { sshtest.KillPIDs(agentProcesses(t, work)) })
	db := filepath.Join(t.TempDir(), "drbook.db")
	reports := filepath.Join(t.TempDir(), "report")
	r := drbook(t, nil, "rehearse", "--drill", "library:"+drill, "-i", inv, "--dir", work, "--db", db,
		"--report-dir", reports, "--ports", "30000-32000", "--output", "json")
	t.Logf("rehearse %s: exit %d\n%s", drill, r.code, r.stderr)
	if r.code != 0 {
		if runs := drbook(t, nil, "runs", "--db", db); runs.code == 0 {
			for _, line := range strings.Split(runs.stdout, "\n") {
				if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "r2") {
					rp := drbook(t, nil, "replay", f[0], "--db", db)
					t.Logf("the recovery run %s:\n%s%s", f[0], rp.stdout, rp.stderr)
				}
			}
		}
		t.Fatalf("rehearse %s: exit %d\n%s\n%s", drill, r.code, r.stdout, r.stderr)
	}
	rep := rehearsalReport(t, r.stdout, reports)
	md, _ := os.ReadFile(filepath.Join(reports, "report.md"))
	if !strings.Contains(string(md), fmt.Sprintf("| RPO (items lost) | %d |", rep.RPOKeys)) || !strings.Contains(string(md), rep.RTO.String()) {
		t.Errorf("report.md disagrees with the JSON:\n%s", md)
	}
	if pids := agentProcesses(t, work); len(pids) > 0 {
		t.Errorf("drill processes left running: %v", pids)
	}
	if rto := time.Duration(rep.RTO); rto <= 0 || rto > 2*time.Minute || !splitAddsUp(rep) {
		t.Errorf("RTO %v (machine %v + operator %v)", rep.RTO, rep.Machine, rep.Human)
	}
	t.Logf("%s: RTO %v, RPO %d rows, %d rows before the disaster, %d after the recovery", drill, rep.RTO, rep.RPOKeys, rep.KeysBefore, rep.KeysAfter)
	list := drbook(t, nil, "runbooks", "--db", db, "--output", "json")
	var doc jsonapi.RunbookList
	if err := json.Unmarshal([]byte(list.stdout), &doc); err != nil {
		t.Fatalf("drbook runbooks --output json: %v\n%s%s", err, list.stdout, list.stderr)
	}
	shown := false
	for _, i := range doc.Runbooks {
		if i.Name == rep.Runbook {
			shown = i.LastRehearsalRun == rep.RunID && strings.Contains(i.LastResult, "succeeded")
			if !shown {
				t.Errorf("drbook runbooks shows %s last rehearsed by %q (%q), want %s succeeded", i.Name, i.LastRehearsalRun, i.LastResult, rep.RunID)
			}
		}
	}
	if !shown {
		t.Errorf("drbook runbooks does not show the rehearsal of %s:\n%s", rep.Runbook, list.stdout)
	}
	return rep
}

// TestPostgresDrillPrimaryLoss rehearses library:pg-primary-loss: the 37
// rows committed after the replication link was cut are exactly the RPO,
// and the promoted standby holds the restore point's rows (same digest).
func TestPostgresDrillPrimaryLoss(t *testing.T) {
	rep := rehearsePG(t, "pg-primary-loss")
	if rep.KeysAtBackup != 1000 || rep.KeysAfterBackup != 37 || rep.KeysBefore != 1037 || rep.KeysAfter != 1000 || rep.RPOKeys != 37 {
		t.Errorf("rows: %d at the restore point, %d after it, %d before the disaster, %d after the recovery, RPO %d; want 1000, 37, 1037, 1000, 37",
			rep.KeysAtBackup, rep.KeysAfterBackup, rep.KeysBefore, rep.KeysAfter, rep.RPOKeys)
	}
	if rep.DigestAfter == "" || rep.DigestAfter != rep.DigestAtBackup || rep.DigestBefore == rep.DigestAtBackup {
		t.Errorf("digests: restore point %q, before %q, after %q", rep.DigestAtBackup, rep.DigestBefore, rep.DigestAfter)
	}
	if rep.Runbook != "pg-promote-standby" || rep.Verdict != "" {
		t.Errorf("report: runbook %q verdict %q", rep.Runbook, rep.Verdict)
	}
}

// TestPostgresDrillFailback rehearses library:pg-failback-rewind: pg_rewind
// discards exactly the 37 rows only the old primary had, the rewound node
// holds the restore point's rows (same digest), and it replays new writes
// of the new primary (the drill's health check).
func TestPostgresDrillFailback(t *testing.T) {
	rep := rehearsePG(t, "pg-failback-rewind")
	if rep.KeysAtBackup != 1000 || rep.KeysAfterBackup != 37 || rep.KeysBefore != 1037 || rep.KeysAfter != 1000 || rep.RPOKeys != 37 {
		t.Errorf("rows on pg1: %d at the restore point, %d after it, %d before the disaster, %d after the recovery, RPO %d; want 1000, 37, 1037, 1000, 37",
			rep.KeysAtBackup, rep.KeysAfterBackup, rep.KeysBefore, rep.KeysAfter, rep.RPOKeys)
	}
	if rep.DigestAfter == "" || rep.DigestAfter != rep.DigestAtBackup || rep.DigestBefore == rep.DigestAtBackup {
		t.Errorf("digests: restore point %q, before %q, after %q", rep.DigestAtBackup, rep.DigestBefore, rep.DigestAfter)
	}
	if rep.Runbook != "pg-rewind-old-primary" || rep.Verdict != "" {
		t.Errorf("report: runbook %q verdict %q", rep.Runbook, rep.Verdict)
	}
}

// TestPostgresPromoteOldPrimaryHostGone: the old primary's whole host is
// gone (its SSH port answers nothing). The fence step fails, the run goes
// on to the operator's confirmation that the node was fenced by other means
// (given headless by --yes), checks again that nothing answers as a
// primary, and promotes.
func TestPostgresPromoteOldPrimaryHostGone(t *testing.T) {
	l := newPGLab(t, true)
	l.crash(t, l.pg1)
	b, err := os.ReadFile(l.inv)
	if err != nil {
		t.Fatal(err)
	}
	dead := freeLoopbackPort(t) // nothing listens there
	old := fmt.Sprintf("  - name: pg1\n    host: %s\n    port: %d\n", l.srv.Host, l.srv.Port)
	if !strings.Contains(string(b), old) {
		t.Fatalf("inventory lacks %q", old)
	}
	gone := strings.Replace(string(b), old, fmt.Sprintf("  - name: pg1\n    host: %s\n    port: %d\n", l.srv.Host, dead), 1)
	if err := os.WriteFile(l.inv, []byte(gone), 0o600); err != nil {
		t.Fatal(err)
	}
	r := l.runPG(t, "pg-promote-standby", promoteAnswers)
	if r.code != 0 {
		t.Fatalf("promote with the old primary's host gone: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"fence on pg1 failed", "drbook could not reach or stop pg1", "fence-by-hand succeeded", "promote on pg2 succeeded"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if got := l.psql(t, l.pg2, "SELECT pg_is_in_recovery()::text || ' ' || count(*) FROM drill"); got != fmt.Sprintf("false %d", pgRows) {
		t.Errorf("pg2 after promotion: %q, want \"false %d\"", got, pgRows)
	}
}

// TestPostgresRewindRefusesWithoutSourceWAL: after the failover the new
// primary recycled the WAL segments from the divergence point on (no
// wal_keep_size, several segment switches and checkpoints): the fail-back
// runbook refuses before its danger step, and the old primary's
// configuration is not even saved.
func TestPostgresRewindRefusesWithoutSourceWAL(t *testing.T) {
	l := newPGLab(t, true)
	l.crash(t, l.pg1)
	if r := l.runPG(t, "pg-promote-standby", promoteAnswers); r.code != 0 {
		t.Fatalf("promote: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	l.psql(t, l.pg2, "ALTER SYSTEM SET wal_keep_size = 0")
	l.psql(t, l.pg2, "SELECT pg_reload_conf()")
	first := l.psql(t, l.pg2, "SELECT min(name) FROM pg_ls_waldir() WHERE length(name) = 24")
	for i := range 6 {
		l.psql(t, l.pg2, fmt.Sprintf("INSERT INTO drill VALUES (%d, 'churn')", 2000000+i))
		l.psql(t, l.pg2, "SELECT pg_switch_wal()")
		l.psql(t, l.pg2, "CHECKPOINT")
	}
	if now := l.psql(t, l.pg2, "SELECT min(name) FROM pg_ls_waldir() WHERE length(name) = 24"); now <= first {
		t.Fatalf("the new primary still holds its oldest WAL segment %s (now %s): the test cannot remove it", first, now)
	}
	r := l.runPG(t, "pg-rewind-old-primary", rewindAnswers)
	if r.code == 0 {
		t.Fatalf("fail-back without the source's WAL succeeded:\n%s", r.stdout)
	}
	out := r.stdout + r.stderr
	if !strings.Contains(out, "REFUSED: the new primary no longer holds WAL segment") {
		t.Errorf("no refusal naming the missing WAL:\n%s", out)
	}
	if !strings.Contains(out, "▶ wal ") {
		t.Errorf("the refusing step is not in the output:\n%s", out)
	}
	for _, step := range []string{"▶ saveconf ", "▶ rewind "} {
		if strings.Contains(out, step) {
			t.Errorf("step %q ran after the refusal:\n%s", step, out)
		}
	}
	if m, _ := filepath.Glob(l.pg1.data + ".drbook-conf-*"); len(m) > 0 {
		t.Errorf("configuration saved (a step after the refusal ran): %v", m)
	}
}

// TestPostgresPromoteKilledAndResumed: the runner is killed (SIGKILL) right
// after the promote step's start checkpoint, before its command ran. On
// resume, the step's check: asks the standby whether it was promoted (it
// was not), so the step runs; the run then finishes with a new timeline and
// clients repointed.
func TestPostgresPromoteKilledAndResumed(t *testing.T) {
	l := newPGLab(t, true)
	l.crash(t, l.pg1)
	dir := t.TempDir()
	ans := filepath.Join(dir, "answers.yaml")
	if err := os.WriteFile(ans, []byte(promoteAnswers), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "drbook.db")
	r := drbook(t, []string{envFaultCrash + "=step.started:promote:after:pg2"}, "run", "library:pg-promote-standby",
		"-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", db)
	if r.code != -1 {
		t.Fatalf("runner exit %d, want killed (-1)\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := l.psql(t, l.pg2, "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("pg2 promoted before the kill (in recovery = %s): the fault hit too late", got)
	}
	id := onlyRunID(t, db)
	res := drbook(t, nil, "resume", id, "--yes", "--db", db)
	t.Logf("resume: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	if res.code != 0 {
		t.Fatalf("resume: exit %d", res.code)
	}
	if !strings.Contains(res.stdout, "check did not pass") || !strings.Contains(res.stdout, "promote on pg2 succeeded") {
		t.Errorf("resume did not decide the interrupted promote by its check and run it:\n%s", res.stdout)
	}
	if got := l.psql(t, l.pg2, "SELECT pg_is_in_recovery()::text || ' ' || count(*) FROM drill"); got != fmt.Sprintf("false %d", pgRows) {
		t.Errorf("pg2 after the resumed run: %q, want \"false %d\"", got, pgRows)
	}
	if b, err := os.ReadFile(l.clientFile); err != nil || !strings.Contains(string(b), fmt.Sprintf("PGPORT=%d\n", l.pg2.port)) {
		t.Errorf("clients' file after the resumed run = %q (%v)", b, err)
	}
	if v := drbook(t, nil, "replay", id, "--verify", "--db", db); v.code != 0 {
		t.Errorf("replay --verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}
