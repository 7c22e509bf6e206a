package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/jsonapi"
)

// localLab is a checkpoint database and an inventory of one local node, for
// tests that need no SSH.
type localLab struct{ dir, db, inv string }

func newLocalLab(t *testing.T) *localLab {
	t.Helper()
	l := &localLab{dir: t.TempDir()}
	l.db = filepath.Join(l.dir, "state", "drbook.db")
	l.inv = l.write(t, "inventory.yaml", "apiVersion: drbook/v1\nkind: Inventory\nnodes:\n  - name: node1\n    transport: local\n")
	return l
}

func (l *localLab) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(l.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type runRow struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	SealedSecrets bool   `json:"sealed_secrets"`
}

func (l *localLab) runs(t *testing.T) []runRow {
	t.Helper()
	r := drbook(t, nil, "--db", l.db, "runs", "-o", "json")
	if r.code != 0 {
		t.Fatalf("drbook runs: %d %s", r.code, r.stderr)
	}
	var doc struct {
		Schema string   `json:"schema"`
		Runs   []runRow `json:"runs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Schema != jsonapi.Schema {
		t.Fatalf("runs -o json: %v (schema %q)\n%s", err, doc.Schema, r.stdout)
	}
	return doc.Runs
}

// TestExitCodeTable drives the built binary through the documented exit
// codes that need no node: usage errors are 2, the TUI without a terminal
// is 2 with a hint to run headless.
func TestExitCodeTable(t *testing.T) {
	l := newLocalLab(t)
	rb := l.write(t, "rb.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: one\ntitle: One\nsteps:\n  - id: a\n    run: shell\n    on: node1\n    with: {command: 'true'}\n")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown flag", []string{"runs", "--bogus"}, exitUsage, "unknown flag"},
		{"unknown root flag", []string{"--bogus"}, exitUsage, "unknown flag"},
		{"missing argument", []string{"run"}, exitUsage, "accepts 1 arg"},
		{"extra argument", []string{"runs", "extra"}, exitUsage, "extra"},
		{"unknown command", []string{"nosuchcommand"}, exitUsage, "unknown command"},
		{"required flag", []string{"run", rb, "--headless"}, exitUsage, `"inventory" not set`},
		{"bad flag value", []string{"runs", "--limit", "many"}, exitUsage, "invalid argument"},
		{"bad output format", []string{"-o", "yaml", "runs"}, exitUsage, "--output"},
		{"abort without reason", []string{"abort", "r1"}, exitUsage, "--reason"},
		{"resume --skip without --reason", []string{"resume", "r1", "--skip", "a"}, exitUsage, "--reason"},
		{"TUI without a terminal", []string{}, exitUsage, "--headless"},
		{"run in the TUI without a terminal", []string{"run", rb, "-i", l.inv}, exitUsage, "--headless"},
		{"headless run succeeds", []string{"run", rb, "-i", l.inv, "--headless"}, exitOK, ""},
		{"unknown run", []string{"replay", "r-none"}, exitFailed, "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := drbook(t, nil, append([]string{"--db", l.db}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("drbook %v: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.stderr)
			}
			if tc.name == "TUI without a terminal" && strings.Contains(r.stderr, "/dev/tty") {
				t.Errorf("raw library error: %q", r.stderr)
			}
		})
	}
}

// TestHeadlessStdoutClosed: `drbook run ... --headless | head -1` — really
// through a shell pipe — records the run interrupted (never left running)
// and exits 130, both when the output closes while drbook prints and while
// a step is silent.
func TestHeadlessStdoutClosed(t *testing.T) {
	tests := []struct {
		name, command, reader string
	}{
		{"closed while printing", `for i in $(seq 1 200); do echo line $i; done; sleep 30`, "head -1"},
		{"closed while a step is silent", `sleep 30`, "(sleep 1; exit 0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLocalLab(t)
			rb := l.write(t, "rb.yaml", fmt.Sprintf("apiVersion: drbook/v1\nkind: Runbook\nname: chatty\ntitle: Chatty\nsteps:\n  - id: talk\n    run: shell\n    on: node1\n    timeout: 5m\n    with: {command: '%s'}\n  - id: after\n    run: shell\n    on: node1\n    with: {command: 'echo after'}\n", tc.command))
			codeFile := filepath.Join(l.dir, "code")
			script := fmt.Sprintf(`{ %q --db %q run %q -i %q --headless --yes 2>%q; echo $? > %q; } | %s`,
				drbookBin, l.db, rb, l.inv, filepath.Join(l.dir, "stderr"), codeFile, tc.reader)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			t0 := time.Now()
			out, err := exec.CommandContext(ctx, "sh", "-c", script).CombinedOutput()
			if err != nil {
				t.Fatalf("sh: %v\n%s", err, out)
			}
			// The shell returns when head does; drbook may still be recording.
			var code string
			for time.Since(t0) < time.Minute {
				b, _ := os.ReadFile(codeFile)
				if code = strings.TrimSpace(string(b)); code != "" {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			stderr, _ := os.ReadFile(filepath.Join(l.dir, "stderr"))
			if code != fmt.Sprint(exitInterrupted) {
				t.Errorf("exit code %q, want %d; stderr:\n%s", code, exitInterrupted, stderr)
			}
			if el := time.Since(t0); el > 20*time.Second {
				t.Errorf("took %s: the closed output was not noticed", el)
			}
			if !strings.Contains(string(stderr), "standard output closed") || !strings.Contains(string(stderr), "drbook resume") {
				t.Errorf("stderr does not say why and how to go on:\n%s", stderr)
			}
			rows := l.runs(t)
			if len(rows) != 1 {
				t.Fatalf("runs: %+v", rows)
			}
			for _, r := range rows {
				if r.Status == "running" || r.Status != "interrupted" {
					t.Errorf("run %s left %s, want interrupted", r.ID, r.Status)
				}
			}
			if r := drbook(t, nil, "--db", l.db, "replay", rows[0].ID, "--verify"); r.code != 0 {
				t.Errorf("replay --verify: %d %s", r.code, r.stderr)
			}
		})
	}
}

// TestRunsShowSealedSecretsAndAbort: a failed run with a secret input holds
// sealed secrets (SECRETS column, SealedSecrets field); drbook abort ends it
// for good, shreds them and refuses a later resume.
func TestRunsShowSealedSecretsAndAbort(t *testing.T) {
	l := newLocalLab(t)
	rb := l.write(t, "rb.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: secretive\ntitle: Secretive\ninputs:\n  pass: {type: secret, prompt: Passphrase}\nsteps:\n  - id: use\n    run: shell\n    on: node1\n    with:\n      command: 'test -n \"$P\"; exit 1'\n      env: {P: \"{{ inputs.pass }}\"}\n")
	answers := l.write(t, "answers.yaml", "inputs:\n  pass: {env: TEST_SHRED_PASS}\n")
	env := []string{"TEST_SHRED_PASS=correct-horse-battery-9f3"}
	if r := drbook(t, env, "--db", l.db, "run", rb, "-i", l.inv, "--answers", answers, "--headless"); r.code != exitFailed {
		t.Fatalf("run: %d, want %d\n%s", r.code, exitFailed, r.stderr)
	}
	rows := l.runs(t)
	if len(rows) != 1 || rows[0].Status != "failed" || !rows[0].SealedSecrets {
		t.Fatalf("after the failure: %+v, want failed and holding sealed secrets", rows)
	}
	text := drbook(t, nil, "--db", l.db, "runs")
	if !strings.Contains(text.stdout, "SECRETS") || !strings.Contains(text.stdout, "sealed") {
		t.Errorf("runs text has no SECRETS column:\n%s", text.stdout)
	}
	id := rows[0].ID
	if r := drbook(t, nil, "--db", l.db, "abort", id, "--reason", "fixed by hand, INC-7"); r.code != 0 || !strings.Contains(r.stdout, "shredded") {
		t.Fatalf("abort: %d %s %s", r.code, r.stdout, r.stderr)
	}
	rows = l.runs(t)
	if rows[0].Status != "aborted" || rows[0].SealedSecrets {
		t.Errorf("after abort: %+v, want aborted without sealed secrets", rows[0])
	}
	if r := drbook(t, env, "--db", l.db, "resume", id); r.code == 0 || !strings.Contains(r.stderr, "aborted") {
		t.Errorf("resume of an aborted run: %d %s", r.code, r.stderr)
	}
	if r := drbook(t, nil, "--db", l.db, "replay", id, "--verify"); r.code != 0 {
		t.Errorf("replay --verify after the shred: %d %s", r.code, r.stderr)
	}
	for _, sfx := range []string{"", "-wal", "-shm"} {
		b, _ := os.ReadFile(l.db + sfx)
		if strings.Contains(string(b), "correct-horse-battery-9f3") {
			t.Errorf("secret in clear in drbook.db%s", sfx)
		}
	}
}

// TestHeadlessStdoutSocketClosed: standard output is a socket (no pipe to
// watch), so the closure is seen at the first write that fails: drbook gets
// EPIPE, not a fatal SIGPIPE, records the run interrupted and exits 130.
func TestHeadlessStdoutSocketClosed(t *testing.T) {
	l := newLocalLab(t)
	rb := l.write(t, "rb.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: chatty\ntitle: Chatty\nsteps:\n  - id: talk\n    run: shell\n    on: node1\n    timeout: 5m\n    with: {command: 'for i in $(seq 1 100); do echo line $i; sleep 0.05; done; sleep 30'}\n")
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, r := os.NewFile(uintptr(fds[0]), "stdout-w"), os.NewFile(uintptr(fds[1]), "stdout-r")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, drbookBin, "--db", l.db, "run", rb, "-i", l.inv, "--headless", "--yes")
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %v", err)
	}
	r.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode() // -1 when killed by a signal (SIGPIPE)
	}
	if code != exitInterrupted {
		t.Errorf("exit %d (%v) after the reader of %q left, want %d; stderr:\n%s", code, err, line, exitInterrupted, stderr.String())
	}
	for _, row := range l.runs(t) {
		if row.Status != "interrupted" {
			t.Errorf("run %s left %s, want interrupted", row.ID, row.Status)
		}
	}
}
