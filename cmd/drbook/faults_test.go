package main

// The fault matrix (FAULTS.md): each test drives the real drbook binary over
// real SSH against real SQLite files and injects one fault; its name states
// the expected outcome.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent/labssh"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// faultRunbook has a step with a check: (effect), one without (blind), and a
// gate the test can hold a step at (effect waits for effect.go when
// effect.hold exists).
const faultRunbook = `apiVersion: drbook/v1
kind: Runbook
name: faults
title: Fault matrix runbook
steps:
  - id: first
    run: shell
    on: all
    with: {command: 'echo x >> "$NODE_DIR/first.count"; echo first {{ target.name }}'}
  - id: effect
    title: A step whose effect a check can see
    run: shell
    on: node1
    with: {command: 'echo x >> "$NODE_DIR/effect.count"; echo effect started; if [ -f "$NODE_DIR/effect.hold" ]; then i=0; while [ ! -f "$NODE_DIR/effect.go" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; fi; touch "$NODE_DIR/effect.done"; echo effect done'}
    check: 'test -f "$NODE_DIR/effect.done"'
  - id: blind
    title: A step without a check
    run: shell
    on: node2
    with: {command: 'echo x >> "$NODE_DIR/blind.count"; echo blind'}
  - id: last
    run: shell
    on: all
    with: {command: 'echo x >> "$NODE_DIR/last.count"; echo last'}
`

// evRow is one recorded event as the chain holds it.
type evRow struct {
	Seq                int64
	Type, Step, Target string
	Hash               string
	Data               string
}

// openRO opens the database file read-only, beside the runner.
func openRO(t *testing.T, db string) *sql.DB {
	t.Helper()
	d, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// recordedEvents reads a run's events straight from the database file.
func recordedEvents(t *testing.T, db, id string) []evRow {
	t.Helper()
	d, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT seq, type, step_id, target, hash, CAST(data AS TEXT) FROM events WHERE run_id = ? ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []evRow
	for rows.Next() {
		var e evRow
		if err := rows.Scan(&e.Seq, &e.Type, &e.Step, &e.Target, &e.Hash, &e.Data); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertPrefix fails unless after starts with every event of before,
// unchanged: no recorded event was lost or rewritten.
func assertPrefix(t *testing.T, before, after []evRow) int {
	t.Helper()
	if len(after) < len(before) {
		t.Fatalf("events lost: %d recorded before, %d after", len(before), len(after))
	}
	lost := 0
	for i := range before {
		if before[i] != after[i] {
			lost++
			t.Errorf("event %d changed or lost: %+v → %+v", before[i].Seq, before[i], after[i])
		}
	}
	return lost
}

// lastRunID returns the id of the only run in the database.
func onlyRunID(t *testing.T, db string) string {
	t.Helper()
	d, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var ids []string
	rows, err := d.Query(`SELECT id FROM runs`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	if len(ids) != 1 {
		t.Fatalf("%d runs recorded, want 1: %v", len(ids), ids)
	}
	return ids[0]
}

func verifyRecord(t *testing.T, db, id string) {
	t.Helper()
	if v := drbook(t, nil, "replay", id, "--verify", "--db", db); v.code != 0 {
		t.Fatalf("replay --verify %s: exit %d\n%s%s", id, v.code, v.stdout, v.stderr)
	}
}

func (l *sshLab) counts(t *testing.T) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, n := range []string{"node1", "node2", "node3"} {
		for _, s := range []string{"first", "effect", "blind", "last"} {
			if c := l.counter(t, n, s); c > 0 {
				m[n+"/"+s] = c
			}
		}
	}
	return m
}

func (l *sshLab) touch(t *testing.T, node, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.srv.Dir, node, name), nil, 0o666); err != nil {
		t.Fatal(err)
	}
}

// completeCounts is what one full run leaves: every step once.
var completeCounts = map[string]int{
	"node1/first": 1, "node2/first": 1, "node3/first": 1, "node1/effect": 1, "node2/blind": 1,
	"node1/last": 1, "node2/last": 1, "node3/last": 1,
}

func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// startRun starts drbook run in the background and returns once a line
// containing waitFor has been printed.
func startRun(t *testing.T, l *sshLab, rb string, env []string, waitFor string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(drbookBin, "run", rb, "-i", l.inv, "--headless", "--yes", "--db", l.db)
	cmd.Env = append(append(os.Environ(), env...), "NO_COLOR=1")
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(3*time.Minute, func() { _ = cmd.Process.Kill() })
	t.Cleanup(func() { timer.Stop(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	var out bytes.Buffer
	found := false
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), waitFor) {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("the run never printed %q:\n%s\n%s", waitFor, out.String(), errBuf.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return cmd, &errBuf
}

// TestFaultRunnerKilledAtEachCheckpoint_ResumeNeverRerunsCompletedStep_NoEventLost
// kills the runner (SIGKILL) at each checkpoint boundary of a step — before
// its start checkpoint, after it (the command not yet run), while the
// command runs, after the command but before its end checkpoint, after the
// end checkpoint, and before the run's end — then resumes.
func TestFaultRunnerKilledAtEachCheckpoint_ResumeNeverRerunsCompletedStep_NoEventLost(t *testing.T) {
	tests := []struct {
		name  string
		crash string // DRBOOK_FAULT_CRASH; "" = SIGKILL from outside while effect runs
		// want: how often effect ran in the end (2 = it was cut short and the
		// check decided to run it again).
		effect   int
		decision string // what resume prints about the interrupted step
		skip     bool   // headless resume first stops (no check:), then --skip
	}{
		{name: "before-start-checkpoint", crash: "step.started:effect:before", effect: 1},
		{name: "after-start-checkpoint", crash: "step.started:effect:after", effect: 1, decision: "check did not pass"},
		{name: "during-the-command", effect: 2, decision: "check did not pass"},
		{name: "after-command-before-end-checkpoint-with-check", crash: "step.finished:effect:before", effect: 1, decision: "check exited 0"},
		{name: "after-command-before-end-checkpoint-no-check", crash: "step.finished:blind:before", effect: 1, skip: true},
		{name: "after-end-checkpoint", crash: "step.finished:effect:after", effect: 1},
		{name: "before-run-finished", crash: "run.finished::before", effect: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, sshtest.StartOpenSSH(t), 3)
			rb := l.write(t, "faults.yaml", faultRunbook)
			var code int
			if tt.crash != "" {
				r := drbook(t, []string{envFaultCrash + "=" + tt.crash}, "run", rb, "-i", l.inv, "--headless", "--yes", "--db", l.db)
				code = r.code
			} else {
				l.touch(t, "node1", "effect.hold")
				cmd, _ := startRun(t, l, rb, nil, "effect started")
				_ = cmd.Process.Signal(syscall.SIGKILL)
				_ = cmd.Wait()
				code = cmd.ProcessState.ExitCode()
				// The killed runner's command is gone with its session (or
				// will find no one to report to); let it end.
				l.touch(t, "node1", "effect.go")
				waitForFile(t, filepath.Join(l.srv.Dir, "node1", "effect.done"))
				_ = os.Remove(filepath.Join(l.srv.Dir, "node1", "effect.done"))
				_ = os.Remove(filepath.Join(l.srv.Dir, "node1", "effect.hold"))
			}
			if code != -1 {
				t.Fatalf("runner exit %d, want killed by SIGKILL (-1)", code)
			}
			id := onlyRunID(t, l.db)
			before := recordedEvents(t, l.db, id)
			if len(before) == 0 {
				t.Fatal("nothing recorded before the crash")
			}
			verifyRecord(t, l.db, id)

			r := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
			if tt.skip {
				if r.code != exitNeedsPerson || !strings.Contains(r.stdout+r.stderr, "--skip blind") {
					t.Fatalf("resume of a step without check: exit %d, want %d naming --skip blind\n%s%s", r.code, exitNeedsPerson, r.stdout, r.stderr)
				}
				r = drbook(t, nil, "resume", id, "--yes", "--skip", "blind", "--reason", "blind.count shows it ran", "--db", l.db)
			}
			if r.code != 0 {
				t.Fatalf("resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if tt.decision != "" && !strings.Contains(r.stdout, tt.decision) {
				t.Errorf("resume did not say %q:\n%s", tt.decision, r.stdout)
			}
			after := recordedEvents(t, l.db, id)
			assertPrefix(t, before, after)
			verifyRecord(t, l.db, id)
			want := map[string]int{}
			for k, v := range completeCounts {
				want[k] = v
			}
			want["node1/effect"] = tt.effect
			if got := l.counts(t); !sameCounts(got, want) {
				t.Errorf("steps ran %v, want %v", got, want)
			}
		})
	}
}

func waitForFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	t.Fatalf("%s never appeared", p)
}

// TestFaultSSHDroppedMidStep_Interrupted_NeverSucceeded_ResumeDecidesByCheck
// drops the SSH connection while a step runs: OpenSSH's session process on
// the node is killed, or the (lab) server closes the connection. The step
// execution is recorded interrupted with an unknown outcome — never
// succeeded — the run stops resumable (exit 130), and resume decides by the
// step's check: whether to run it again.
func TestFaultSSHDroppedMidStep_Interrupted_NeverSucceeded_ResumeDecidesByCheck(t *testing.T) {
	servers := map[string]func(testing.TB) *sshtest.Server{"openssh-session-killed": sshtest.StartPrivateOpenSSH, "lab-server-closes": sshtest.StartLab}
	for name, start := range servers {
		for _, tookEffect := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/took-effect=%v", name, tookEffect), func(t *testing.T) {
				srv := start(t)
				l := newLab(t, srv, 3)
				rb := l.write(t, "faults.yaml", faultRunbook)
				l.touch(t, "node1", "effect.hold")
				cmd, stderr := startRun(t, l, rb, nil, "effect started")
				if n := srv.KillConnections(t); n < 1 {
					t.Fatalf("no connection to kill")
				}
				_ = cmd.Wait()
				if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
					t.Fatalf("exit %d, want %d\n%s", code, exitInterrupted, stderr)
				}
				if !strings.Contains(stderr.String(), "outcome unknown") || !strings.Contains(stderr.String(), "drbook resume") {
					t.Errorf("the stop does not say the outcome is unknown and how to resume:\n%s", stderr)
				}
				id := onlyRunID(t, l.db)
				evs := recordedEvents(t, l.db, id)
				found := false
				for _, e := range evs {
					if e.Type == "step.finished" && e.Step == "effect" {
						found = true
						if !strings.Contains(e.Data, `"status":"interrupted"`) {
							t.Errorf("effect recorded as %s, want interrupted", e.Data)
						}
					}
				}
				if !found {
					t.Errorf("no end recorded for the cut-short execution")
				}
				// The node-side command may still be waiting; end it.
				l.touch(t, "node1", "effect.go")
				time.Sleep(300 * time.Millisecond) // give an orphaned command time to finish (then clean up after it)
				_ = os.Remove(filepath.Join(l.srv.Dir, "node1", "effect.hold"))
				_ = os.Remove(filepath.Join(l.srv.Dir, "node1", "effect.done"))
				if tookEffect {
					l.touch(t, "node1", "effect.done")
				}
				r := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
				if r.code != 0 {
					t.Fatalf("resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
				}
				want, runs := "check did not pass", 2
				if tookEffect {
					want, runs = "check exited 0", 1
				}
				if !strings.Contains(r.stdout, want) {
					t.Errorf("resume did not decide by the check (%q):\n%s", want, r.stdout)
				}
				if got := l.counter(t, "node1", "effect"); got != runs {
					t.Errorf("effect ran %d times, want %d", got, runs)
				}
				assertPrefix(t, evs, recordedEvents(t, l.db, id))
				verifyRecord(t, l.db, id)
			})
		}
	}
}

// TestFaultHostKeyChangedBetweenSteps_Refused_NothingRunsThere restarts
// node2's SSH server with a new host key while the run is in step effect on
// node1: the next step on node2 is refused (exit 7) and runs nothing.
func TestFaultHostKeyChangedBetweenSteps_Refused_NothingRunsThere(t *testing.T) {
	dir := t.TempDir()
	scratch, err := os.MkdirTemp("", "drbook-hostkey-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scratch) })
	client := filepath.Join(dir, "id_ed25519")
	pub, err := sshtest.WriteKey(client)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub
	authorized := filepath.Join(dir, "authorized_keys")
	if b, err := os.ReadFile(client + ".pub"); err != nil || os.WriteFile(authorized, b, 0o600) != nil {
		t.Fatal("authorized_keys", err)
	}
	listen := func(addr, hostKey string) *labssh.Server {
		ctx, cancel := context.WithCancel(context.Background())
		srv, err := labssh.Listen(ctx, labssh.Config{Addr: addr, HostKeyFile: filepath.Join(dir, hostKey), AuthorizedKeysFile: authorized})
		if err != nil {
			cancel()
			t.Fatalf("listen %s: %v", addr, err)
		}
		t.Cleanup(func() { cancel(); _ = srv.Close() })
		return srv
	}
	s1 := listen("127.0.0.1:0", "host1")
	s2 := listen("127.0.0.1:0", "host2-old")
	known := filepath.Join(dir, "known_hosts")
	var kh strings.Builder
	for _, s := range []*labssh.Server{s1, s2} {
		if err := sshtest.WriteKnownHosts(known+".tmp", s.Addr(), s.HostKey()); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(known + ".tmp")
		kh.Write(b)
	}
	if err := os.WriteFile(known, []byte(kh.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	var inv strings.Builder
	fmt.Fprintf(&inv, "apiVersion: drbook/v1\nkind: Inventory\nname: hk\nssh:\n  user: %s\n  identity_file: %s\n  known_hosts: %s\nnodes:\n", user, client, known)
	for i, s := range []*labssh.Server{s1, s2} {
		host, port, _ := net.SplitHostPort(s.Addr())
		node := fmt.Sprintf("node%d", i+1)
		if err := os.MkdirAll(filepath.Join(scratch, node), 0o777); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&inv, "  - name: %s\n    host: %s\n    port: %s\n    env: {NODE_DIR: %s}\n", node, host, port, filepath.Join(scratch, node))
	}
	inv.WriteString("groups:\n  all: [node1, node2]\n")
	l := &sshLab{srv: &sshtest.Server{Dir: scratch}, dir: dir, db: filepath.Join(dir, "drbook.db"), inv: filepath.Join(dir, "inventory.yaml")}
	if err := os.WriteFile(l.inv, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	rb := l.write(t, "faults.yaml", faultRunbook)
	l.touch(t, "node1", "effect.hold")
	cmd, stderr := startRun(t, l, rb, nil, "effect started")
	// node2 is now served with a different host key on the same address.
	addr2 := s2.Addr()
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s2new := listen(addr2, "host2-new")
	if bytes.Equal(s2new.HostKey().Marshal(), s2.HostKey().Marshal()) {
		t.Fatal("the new server kept the old host key")
	}
	l.touch(t, "node1", "effect.go")
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitHostKey {
		t.Fatalf("exit %d, want %d\n%s", code, exitHostKey, stderr)
	}
	if !strings.Contains(stderr.String(), "host key differs") || !strings.Contains(stderr.String(), "node2") {
		t.Errorf("the refusal does not name node2 and the changed key:\n%s", stderr)
	}
	if n := l.counter(t, "node2", "blind"); n != 0 {
		t.Errorf("blind ran %d times on node2 after its host key changed", n)
	}
	if n := l.counter(t, "node2", "last") + l.counter(t, "node1", "last"); n != 0 {
		t.Errorf("the run went on after the refusal (last ran %d times)", n)
	}
	if n := l.counter(t, "node2", "first"); n != 1 {
		t.Errorf("first ran %d times on node2 before the change, want 1", n)
	}
	verifyRecord(t, l.db, onlyRunID(t, l.db))
}

// fileSum is the SHA-256 of a file (of nothing if it does not exist).
func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// mountTmpfs mounts a tmpfs of the given size on a new directory (root only;
// CI runs as root) and unmounts it when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("mounting a tmpfs needs root (CI runs as root)")
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func remount(t *testing.T, dir string, flags uintptr, data string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|flags, data); err != nil {
		t.Fatalf("remount %s (%s): %v", dir, data, err)
	}
}

// TestFaultSQLiteLockedMidRun_ClearError_NoPartialWrite_ChainVerifies holds
// SQLite's write lock from another process while a step runs: the runner
// cannot write the step's end, stops with a clear error, writes nothing
// partial, the chain verifies up to the last good event, and resume (the
// lock gone) decides the step by its check.
func TestFaultSQLiteLockedMidRun_ClearError_NoPartialWrite_ChainVerifies(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	rb := l.write(t, "faults.yaml", faultRunbook)
	l.touch(t, "node1", "effect.hold")
	cmd, stderr := startRun(t, l, rb, nil, "effect started")
	id := onlyRunID(t, l.db)

	// Another process (sqlite3 CLI semantics: a write transaction) holds the lock.
	holder := exec.Command("sh", "-c", "exec "+os.Args[0]+" -test.run=TestHelperHoldDBLock")
	holder.Env = append(os.Environ(), "DRBOOK_FAULT_HOLD_DB="+l.db)
	hout, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	if line, _ := bufio.NewReader(hout).ReadString('\n'); !strings.Contains(line, "locked") {
		t.Fatalf("lock holder: %q", line)
	}
	// Read once the lock is held: until then the runner may checkpoint the
	// step's output so far (step.output), which is no partial write.
	before := recordedEvents(t, l.db, id)
	l.touch(t, "node1", "effect.go")
	t0 := time.Now()
	_ = cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code == 0 {
		t.Fatalf("the run succeeded without writing its record")
	}
	t.Logf("the run stopped %s after the step could end (exit %d)", time.Since(t0).Round(time.Millisecond), code)
	if !strings.Contains(stderr.String(), "locked by another process") {
		t.Errorf("no clear error (exit %d, after %s):\n%s", code, time.Since(t0).Round(time.Millisecond), stderr)
	}
	_ = holder.Process.Kill()
	_ = holder.Wait()
	after := recordedEvents(t, l.db, id)
	if len(after) != len(before) {
		t.Errorf("%d events written while the database was locked", len(after)-len(before))
	}
	assertPrefix(t, before, after)
	verifyRecord(t, l.db, id)
	r := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
	if r.code != 0 || !strings.Contains(r.stdout, "check exited 0") {
		t.Fatalf("resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := l.counts(t); !sameCounts(got, completeCounts) {
		t.Errorf("steps ran %v, want %v", got, completeCounts)
	}
	assertPrefix(t, before, recordedEvents(t, l.db, id))
}

// TestHelperHoldDBLock is not a test: run as a child process by
// TestFaultSQLiteLockedMidRun it holds the database's write lock until killed.
func TestHelperHoldDBLock(t *testing.T) {
	p := os.Getenv("DRBOOK_FAULT_HOLD_DB")
	if p == "" {
		return // only as a helper process
	}
	d, err := sql.Open("sqlite3", p+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := d.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("locked")
	select {}
}

// TestFaultSQLiteReadOnly_ClearError_NothingWritten_ChainVerifies makes the
// file system holding the database read-only: a new run is refused with a
// clear error before anything runs, the file is untouched, and once
// writable again the earlier run still verifies.
func TestFaultSQLiteReadOnly_ClearError_NothingWritten_ChainVerifies(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	fs := mountTmpfs(t, "16m")
	l.db = filepath.Join(fs, "drbook.db")
	rb := l.write(t, "faults.yaml", faultRunbook)
	if r := drbook(t, nil, "run", rb, "-i", l.inv, "--headless", "--yes", "--db", l.db); r.code != 0 {
		t.Fatalf("first run: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id := onlyRunID(t, l.db)
	sum := fileSum(t, l.db)
	remount(t, fs, syscall.MS_RDONLY, "")
	r := drbook(t, nil, "run", rb, "-i", l.inv, "--headless", "--yes", "--db", l.db)
	if r.code == 0 || !strings.Contains(r.stderr, "read-only") {
		t.Fatalf("run on a read-only database: exit %d, want a clear read-only error\n%s%s", r.code, r.stdout, r.stderr)
	}
	if fileSum(t, l.db) != sum {
		t.Error("the database changed on a read-only file system")
	}
	if got := l.counts(t); !sameCounts(got, completeCounts) {
		t.Errorf("steps ran %v after the refusal, want only the first run's %v", got, completeCounts)
	}
	remount(t, fs, 0, "")
	verifyRecord(t, l.db, id)
}

// TestFaultSQLiteDiskFull_ClearError_NoPartialWrite_ChainVerifies runs a
// step whose output log does not fit on a small tmpfs: the end checkpoint
// fails with a clear disk-full error and is not half-written, the chain
// verifies up to the last good event, and with room again resume settles
// the step by its check.
func TestFaultSQLiteDiskFull_ClearError_NoPartialWrite_ChainVerifies(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	fs := mountTmpfs(t, "1m")
	l.db = filepath.Join(fs, "drbook.db")
	big := strings.Replace(faultRunbook, `echo effect done'}`,
		`head -c 3000000 /dev/zero | tr "\\0" "y" | fold -w 100; echo effect done'}`, 1)
	if big == faultRunbook {
		t.Fatal("runbook not changed")
	}
	rb := l.write(t, "faults.yaml", big)
	r := drbook(t, nil, "run", rb, "-i", l.inv, "--headless", "--yes", "--db", l.db)
	if r.code == 0 || !strings.Contains(r.stderr, "disk full") {
		t.Fatalf("run on a full disk: exit %d, want a clear disk-full error\n%s", r.code, r.stderr)
	}
	id := onlyRunID(t, l.db)
	before := recordedEvents(t, l.db, id)
	for _, e := range before {
		if e.Type == "step.finished" && e.Step == "effect" {
			t.Errorf("the oversized end checkpoint was written: %.100s", e.Data)
		}
	}
	verifyRecord(t, l.db, id)
	remount(t, fs, 0, "size=64m")
	res := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
	if res.code != 0 || !strings.Contains(res.stdout, "check exited 0") {
		t.Fatalf("resume with room again: exit %d\n%.2000s\n%s", res.code, res.stdout, res.stderr)
	}
	assertPrefix(t, before, recordedEvents(t, l.db, id))
	verifyRecord(t, l.db, id)
	if got := l.counts(t); !sameCounts(got, completeCounts) {
		t.Errorf("steps ran %v, want %v", got, completeCounts)
	}
}

// TestFaultSQLiteDamaged_ClearError_NoWrite_ChainVerifiesToLastGoodEvent
// damages the database two ways: a torn write at the end of the WAL (the
// runner was killed, then the last frames were garbled), after which the
// chain verifies up to the last good event and the run resumes; and a
// garbled file header, which every command refuses with a clear error
// without writing to the file.
func TestFaultSQLiteDamaged_ClearError_NoWrite_ChainVerifiesToLastGoodEvent(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	rb := l.write(t, "faults.yaml", faultRunbook)
	r := drbook(t, []string{envFaultCrash + "=step.finished:last:before:node3"}, "run", rb, "-i", l.inv, "--headless", "--yes", "--db", l.db)
	if r.code != -1 {
		t.Fatalf("runner not killed: %d\n%s", r.code, r.stderr)
	}
	id := onlyRunID(t, l.db)
	before := recordedEvents(t, l.db, id)
	wal := l.db + "-wal"
	b, err := os.ReadFile(wal)
	if err != nil || len(b) < 8192 {
		t.Fatalf("no WAL to damage (%d bytes): %v", len(b), err)
	}
	for i := len(b) - 600; i < len(b); i++ { // the last frame's tail: a torn write
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(wal, b, 0o600); err != nil {
		t.Fatal(err)
	}
	after := recordedEvents(t, l.db, id)
	if len(after) >= len(before) || len(after) == 0 {
		t.Fatalf("the torn frame did not drop the last event (%d → %d events)", len(before), len(after))
	}
	assertPrefix(t, after, before) // what is left is exactly the start of the record
	verifyRecord(t, l.db, id)
	t.Logf("torn WAL: %d events before, %d good events after", len(before), len(after))
	// last has no check: and its start may or may not be in the record.
	res := drbook(t, nil, "resume", id, "--yes", "--redo", "last", "--db", l.db)
	if res.code != 0 {
		t.Fatalf("resume after the torn write: %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	verifyRecord(t, l.db, id)

	// A garbled header: a clear error, and the file is not written to.
	for _, sfx := range []string{"-wal", "-shm"} {
		_ = os.Remove(l.db + sfx)
	}
	if r := drbook(t, nil, "runs", "--db", l.db); r.code != 0 {
		t.Fatalf("runs: %d %s", r.code, r.stderr) // checkpoints the WAL away
	}
	f, err := os.OpenFile(l.db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("this is not SQLite"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum := fileSum(t, l.db)
	for _, args := range [][]string{{"replay", id, "--verify"}, {"runs"}, {"run", rb, "-i", l.inv, "--headless", "--yes"}} {
		r := drbook(t, nil, append(args, "--db", l.db)...)
		if r.code == 0 || !strings.Contains(r.stderr, "corrupt") {
			t.Errorf("%s on a damaged database: exit %d, want a clear corrupt-database error\n%s", args[0], r.code, r.stderr)
		}
	}
	if fileSum(t, l.db) != sum {
		t.Error("a command wrote to the damaged database")
	}
}
