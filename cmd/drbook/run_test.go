package main

import (
	"bufio"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/drbook/drbook/steps/transport/sshtest"
)

// TestRunOverSSH runs a recovery-shaped runbook headless over real OpenSSH
// against three node aliases, then replays and verifies the record.
func TestRunOverSSH(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	rb := l.write(t, "recovery.yaml", recoveryRunbook)
	ans := l.write(t, "answers.yaml", answers("node1"))
	env := []string{"E2E_PASSPHRASE=" + secretValue}
	logFile := filepath.Join(l.dir, "debug.log")

	r := drbook(t, env, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db, "--log-file", logFile)
	if r.code != 0 {
		t.Fatalf("run exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	id := runID(t, r.stdout)
	for _, want := range []string{"restore ok with ••••••", "joined node2 via 127.0.0.1:7001", "succeeded " + id} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	for node, want := range map[string]map[string]int{
		"node1": {"prepare": 1, "token": 1, "restore": 1, "join": 0, "slow": 1},
		"node2": {"prepare": 1, "join": 1, "token": 0},
		"node3": {"prepare": 1, "join": 1},
	} {
		for step, n := range want {
			if got := l.counter(t, node, step); got != n {
				t.Errorf("%s ran %d times on %s, want %d", step, got, node, n)
			}
		}
	}

	rep := drbook(t, nil, "replay", id, "--verify", "--db", l.db)
	if rep.code != 0 {
		t.Fatalf("replay --verify exit %d\n%s\n%s", rep.code, rep.stdout, rep.stderr)
	}
	for _, step := range []string{"prepare", "token", "restore", "join", "slow", "verify"} {
		if !strings.Contains(rep.stdout, step) {
			t.Errorf("replay lacks step %s:\n%s", step, rep.stdout)
		}
	}

	// The secret appears nowhere: not in the database files, the log, the
	// output or any replay format.
	assertNoSecret(t, "run output", []byte(r.stdout+r.stderr))
	for _, f := range []string{"", "json", "markdown"} {
		args := []string{"replay", id, "--db", l.db}
		if f != "" {
			args = append(args, "--format", f)
		}
		out := drbook(t, nil, args...)
		assertNoSecret(t, "replay "+f, []byte(out.stdout))
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(l.db + suffix); err == nil {
			assertNoSecret(t, "database"+suffix, b)
		}
	}
	if b, err := os.ReadFile(logFile); err == nil {
		assertNoSecret(t, "log file", b)
	}
	// The token output was secret: its value (tok-<digits>) never shows
	// either; the command that made it (tok-$(date ...)) does.
	if regexp.MustCompile(`tok-[0-9]`).MatchString(rep.stdout) {
		t.Errorf("secret output token shown in replay:\n%s", rep.stdout)
	}
}

func assertNoSecret(t *testing.T, where string, b []byte) {
	t.Helper()
	if strings.Contains(string(b), secretValue) {
		t.Errorf("secret value found in %s", where)
	}
}

// TestKillAndResume kills the runner with SIGKILL during a long step; resume
// finishes the run and no completed step runs twice.
func TestKillAndResume(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	cmd, id := startUntilSlow(t, l)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(l.srv.Dir, "node1", "slow.done")); err == nil {
		t.Fatalf("slow.done exists right after the kill: the killed command went on")
	}
	slowDone(t, l)

	runs := drbook(t, nil, "runs", "--db", l.db)
	if !strings.Contains(runs.stdout, id) || !strings.Contains(runs.stdout, "running") {
		t.Errorf("runs does not list %s as running:\n%s", id, runs.stdout)
	}
	r := drbook(t, []string{"E2E_PASSPHRASE=" + secretValue}, "resume", id, "--yes", "--db", l.db)
	if r.code != 0 {
		t.Fatalf("resume exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "check did not pass") {
		t.Errorf("resume did not decide the interrupted step by its check:\n%s", r.stdout)
	}
	for node, want := range map[string]map[string]int{
		"node1": {"prepare": 1, "token": 1, "restore": 1, "slow": 2, "verify": 1},
		"node2": {"prepare": 1, "join": 1, "verify": 1},
		"node3": {"prepare": 1, "join": 1, "verify": 1},
	} {
		for step, n := range want {
			if got := l.counter(t, node, step); got != n {
				t.Errorf("%s ran %d times on %s, want %d", step, got, node, n)
			}
		}
	}
	if rep := drbook(t, nil, "replay", id, "--verify", "--db", l.db); rep.code != 0 {
		t.Fatalf("replay --verify after resume: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
}

// TestTamperedRecord changes one byte of one recorded event: verification
// fails and names its sequence number.
func TestTamperedRecord(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	rb := l.write(t, "recovery.yaml", recoveryRunbook)
	ans := l.write(t, "answers.yaml", answers("node1"))
	r := drbook(t, []string{"E2E_PASSPHRASE=" + secretValue}, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db)
	if r.code != 0 {
		t.Fatalf("run: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id := runID(t, r.stdout)
	db, err := sql.Open("sqlite3", l.db)
	if err != nil {
		t.Fatal(err)
	}
	// Flip one byte of a step.finished event's payload ("joined" → "joinee").
	res, err := db.Exec(`UPDATE events SET data = CAST(replace(CAST(data AS TEXT), 'joined node2', 'joinee node2') AS BLOB)
		WHERE run_id = ? AND seq = (SELECT min(seq) FROM events WHERE run_id = ? AND CAST(data AS TEXT) LIKE '%joined node2%')`, id, id)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampered %d rows, want 1", n)
	}
	var seq int64
	if err := db.QueryRow(`SELECT seq FROM events WHERE run_id = ? AND CAST(data AS TEXT) LIKE '%joinee node2%'`, id).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rep := drbook(t, nil, "replay", id, "--verify", "--db", l.db)
	if rep.code != exitUnverified {
		t.Fatalf("replay --verify of a tampered record: exit %d, want %d\n%s%s", rep.code, exitUnverified, rep.stdout, rep.stderr)
	}
	if want := "event " + itoa(seq); !strings.Contains(rep.stdout+rep.stderr, want) {
		t.Errorf("verification does not name %q:\n%s%s", want, rep.stdout, rep.stderr)
	}
}

func itoa(n int64) string { return strconvFormat(n) }

// TestUnknownHostKey: a node whose host key is not in known_hosts is refused
// with its fingerprint, and nothing runs anywhere.
func TestUnknownHostKey(t *testing.T) {
	srv := sshtest.StartOpenSSH(t)
	l := newLab(t, srv, 3)
	empty := filepath.Join(l.dir, "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inv, _ := os.ReadFile(l.inv)
	if err := os.WriteFile(l.inv, []byte(strings.Replace(string(inv), srv.KnownHostsFile, empty, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	rb := l.write(t, "recovery.yaml", recoveryRunbook)
	ans := l.write(t, "answers.yaml", answers("node1"))
	r := drbook(t, []string{"E2E_PASSPHRASE=" + secretValue}, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db)
	if r.code != exitHostKey {
		t.Fatalf("exit %d, want %d\n%s%s", r.code, exitHostKey, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "SHA256:") || !strings.Contains(r.stderr, fmt.Sprintf("]:%d", srv.Port)) {
		t.Errorf("refusal does not name the host and fingerprint:\n%s", r.stderr)
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		if c := l.counter(t, n, "prepare"); c != 0 {
			t.Errorf("prepare ran %d times on %s despite the refused host key", c, n)
		}
	}
}

// TestLintBroken: every broken runbook is reported with file:line:col, exit
// 1, and neither lint nor a refused run writes a database.
func TestLintBroken(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/runbooks/broken/*.yaml")
	if len(files) == 0 {
		t.Fatal("no broken runbooks")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "drbook.db")
	for _, f := range files {
		r := drbook(t, nil, "lint", f, "-i", "../../testdata/inventories/three.yaml", "--db", db)
		if r.code != 1 {
			t.Errorf("%s: lint exit %d, want 1", f, r.code)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) == 0 || lines[0] == "" {
			t.Errorf("%s: no problems printed", f)
		}
		for _, line := range lines {
			if !strings.HasPrefix(line, f+":") || strings.Count(line, ":") < 3 {
				t.Errorf("%s: not file:line:col: %q", f, line)
			}
		}
		run := drbook(t, nil, "run", f, "-i", "../../testdata/inventories/three.yaml", "--headless", "--db", db)
		if run.code != exitInvalid {
			t.Errorf("%s: run exit %d, want %d", f, run.code, exitInvalid)
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("a database was written for broken runbooks: %v", err)
	}
	ok := drbook(t, nil, "lint", "../../testdata/runbooks/valid/five-steps.yaml", "-i", "../../testdata/inventories/three.yaml")
	if ok.code != 0 {
		t.Errorf("valid runbook: exit %d\n%s", ok.code, ok.stdout)
	}
}

// TestTrust adds a node's host key only with the matching fingerprint, after
// which a run reaches it.
func TestTrust(t *testing.T) {
	srv := sshtest.StartOpenSSH(t)
	l := newLab(t, srv, 1)
	fresh := filepath.Join(l.dir, "fresh_known_hosts")
	inv, _ := os.ReadFile(l.inv)
	if err := os.WriteFile(l.inv, []byte(strings.Replace(string(inv), srv.KnownHostsFile, fresh, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := drbook(t, nil, "trust", "-i", l.inv, "--fingerprint", "SHA256:not-this-one")
	if bad.code == 0 || !strings.Contains(bad.stdout, "does not match") {
		t.Fatalf("a wrong fingerprint was accepted: %d\n%s", bad.code, bad.stdout)
	}
	fp := ssh.FingerprintSHA256(srv.HostKey)
	ok := drbook(t, nil, "trust", "-i", l.inv, "--fingerprint", fp)
	if ok.code != 0 || !strings.Contains(ok.stdout, "added") {
		t.Fatalf("trust: %d\n%s%s", ok.code, ok.stdout, ok.stderr)
	}
	again := drbook(t, nil, "trust", "-i", l.inv, "--fingerprint", fp)
	if again.code != 0 || !strings.Contains(again.stdout, "already trusted") {
		t.Fatalf("second trust: %d\n%s", again.code, again.stdout)
	}
	rb := l.write(t, "one.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: one\nsteps:\n  - id: a\n    run: shell\n    on: node1\n    with: {command: 'echo reached'}\n")
	r := drbook(t, nil, "run", rb, "-i", l.inv, "--headless", "--db", l.db)
	if r.code != 0 || !strings.Contains(r.stdout, "reached") {
		t.Fatalf("run after trust: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestSIGTERMInterrupts: SIGTERM during a step marks it interrupted (not
// failed), exits 130, and the run resumes to success.
func TestSIGTERMInterrupts(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	cmd, id := startUntilSlow(t, l)
	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d (%v), want %d", code, err, exitInterrupted)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("SIGTERM took %s to stop the run", d)
	}
	db, err := sql.Open("sqlite3", l.db)
	if err != nil {
		t.Fatal(err)
	}
	var status string
	if err := db.QueryRow(`SELECT CAST(data AS TEXT) FROM events WHERE run_id = ? AND type = 'step.finished' AND step_id = 'slow'`, id).Scan(&status); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if !strings.Contains(status, `"status":"interrupted"`) {
		t.Errorf("slow recorded as %s, want interrupted", status)
	}
	slowDone(t, l)
	if r := drbook(t, []string{"E2E_PASSPHRASE=" + secretValue}, "resume", id, "--yes", "--db", l.db); r.code != 0 {
		t.Fatalf("resume: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestRunLocked: while a runner drives a run, a second one is refused with
// the run's status and the holder's host and pid; so is drbook abort.
func TestRunLocked(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	cmd, id := startUntilSlow(t, l)
	r := drbook(t, []string{"E2E_PASSPHRASE=" + secretValue}, "resume", id, "--yes", "--db", l.db)
	if r.code != exitLocked {
		t.Fatalf("second runner: exit %d, want %d\n%s%s", r.code, exitLocked, r.stdout, r.stderr)
	}
	host, _ := os.Hostname()
	if !strings.Contains(r.stderr, host) || !strings.Contains(r.stderr, strconv.Itoa(cmd.Process.Pid)) || !strings.Contains(r.stderr, "(running)") {
		t.Errorf("refusal does not name the status, host %s and pid %d:\n%s", host, cmd.Process.Pid, r.stderr)
	}
	if r := drbook(t, nil, "abort", id, "--reason", "test", "--db", l.db); r.code != exitLocked || !strings.Contains(r.stderr, strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("abort of a run another runner drives: exit %d, want %d\n%s", r.code, exitLocked, r.stderr)
	}
}

// startUntilSlow starts a headless run of the recovery runbook whose slow
// step sleeps 30 s on node1, and returns once that step has started.
func startUntilSlow(t *testing.T, l *sshLab) (*exec.Cmd, string) {
	t.Helper()
	rb := l.write(t, "recovery.yaml", recoveryRunbook)
	ans := l.write(t, "answers.yaml", answers("node1"))
	if err := os.WriteFile(filepath.Join(l.srv.Dir, "node1", "slow.secs"), []byte("30\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(drbookBin, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db)
	cmd.Env = append(os.Environ(), "E2E_PASSPHRASE="+secretValue, "NO_COLOR=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	t.Cleanup(func() { timer.Stop(); cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	id := ""
	for sc.Scan() {
		line := sc.Text()
		if id == "" && strings.HasPrefix(line, "run ") {
			id = strings.TrimSuffix(strings.Fields(line)[1], ":")
		}
		if strings.Contains(line, "slow started") {
			break
		}
	}
	if id == "" {
		t.Fatal("the run never reached the slow step")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return cmd, id
}

// slowDone makes the slow step quick from now on.
func slowDone(t *testing.T, l *sshLab) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.srv.Dir, "node1", "slow.secs"), []byte("0\n"), 0o666); err != nil {
		t.Fatal(err)
	}
}
