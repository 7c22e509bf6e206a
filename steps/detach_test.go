package steps_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// detachExec prepares a shell execution with detach: over real OpenSSH.
func detachExec(t *testing.T, srv *sshtest.Server, command string, detach map[string]any) (*steps.Exec, *strings.Builder) {
	t.Helper()
	tr, err := transport.DialSSH(t.Context(), transport.SSHConfig{
		Name: "node1", Host: srv.Host, Port: srv.Port, User: srv.User,
		IdentityFile: srv.IdentityFile, KnownHostsFile: srv.KnownHostsFile, ConnectTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	out := &strings.Builder{}
	return &steps.Exec{
		Step:      &runbooks.Step{ID: "start", Run: "shell", Outputs: []runbooks.Output{{Name: "pid"}}},
		Params:    map[string]any{"command": command, "detach": detach},
		Target:    &runbooks.Node{Name: "node1"},
		Transport: tr,
		Stdout:    out,
		Stderr:    out,
	}, out
}

// alive reports whether a process exists (signal 0).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// stopGroup stops a detached process by its process group id and waits
// until it is gone.
func stopGroup(t *testing.T, pid int) {
	t.Helper()
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	t.Errorf("detached process %d did not stop on TERM", pid)
}

// TestShellDetach starts a long-running process with detach: over OpenSSH:
// the step returns once the readiness command passes, well before the
// step's time limit, the process outlives the step and its SSH session, its
// output goes to the log file, and the test stops it by its process id.
func TestShellDetach(t *testing.T) {
	srv := sshtest.StartOpenSSH(t)
	dir := srv.Dir // writable by the SSH login user
	logFile := filepath.Join(dir, t.Name()+".log")
	ready := filepath.Join(dir, t.Name()+".ready")
	// The service says hello, becomes ready after a moment, and keeps running.
	command := fmt.Sprintf("echo service starting; sleep 1; touch %s; exec sleep 300", ready)
	x, out := detachExec(t, srv, command, map[string]any{"log": logFile, "ready": "test -f " + ready, "interval": "100ms"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t0 := time.Now()
	res, err := steps.Shell{}.Run(ctx, x)
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("detach: %v\n%s", err, out)
	}
	pid, err := strconv.Atoi(res.Outputs["pid"])
	if err != nil {
		t.Fatalf("pid output %q: %v", res.Outputs["pid"], err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	t.Logf("detached pid %d, step returned after %s", pid, took)
	if took > 20*time.Second {
		t.Errorf("the step took %s: it waited for the process instead of returning once ready", took)
	}
	if took < time.Second {
		t.Errorf("the step returned after %s, before the service was ready (it sleeps 1s first)", took)
	}
	// The process outlives the step and the SSH connection.
	_ = x.Transport.Close()
	time.Sleep(300 * time.Millisecond)
	if !alive(pid) {
		t.Fatalf("detached process %d is gone after the step", pid)
	}
	b, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "service starting") {
		t.Errorf("log %s = %q, %v; want the service's output", logFile, b, err)
	}
	if !strings.Contains(out.String(), "ready after") {
		t.Errorf("step output does not say it became ready:\n%s", out)
	}
	stopGroup(t, pid)
}

// TestShellDetachExitsBeforeReady: a service that dies before it is ready
// fails the step at once with the last lines of its log, not after the
// timeout.
func TestShellDetachExitsBeforeReady(t *testing.T) {
	srv := sshtest.StartOpenSSH(t)
	dir := srv.Dir // writable by the SSH login user
	logFile := filepath.Join(dir, t.Name()+".log")
	x, out := detachExec(t, srv, "echo bad flag --clinet; exit 3", map[string]any{"log": logFile, "ready": "false", "interval": "100ms"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t0 := time.Now()
	_, err := steps.Shell{}.Run(ctx, x)
	if !errors.Is(err, steps.ErrExitStatus) || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("err = %v, want the process exited before it was ready", err)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("failure took %s", d)
	}
	if !strings.Contains(out.String(), "bad flag --clinet") {
		t.Errorf("the log's last lines are not shown:\n%s", out)
	}
}

// TestShellDetachNeverReady: a service that never becomes ready fails at
// the step's time limit and is stopped, so a retry does not start a second.
func TestShellDetachNeverReady(t *testing.T) {
	srv := sshtest.StartOpenSSH(t)
	dir := srv.Dir // writable by the SSH login user
	x, out := detachExec(t, srv, "exec sleep 300", map[string]any{"log": filepath.Join(dir, t.Name()+".log"), "ready": "false", "interval": "100ms"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := steps.Shell{}.Run(ctx, x)
	var pe *steps.PollTimeoutError
	if !errors.As(err, &pe) || !strings.Contains(pe.Detail, "was stopped") {
		t.Fatalf("err = %v, want a PollTimeoutError saying the process was stopped", err)
	}
	var pid int
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "pid="); ok {
			pid, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if pid <= 0 {
		t.Fatalf("no pid= line in the step output:\n%s", out)
	}
	for deadline := time.Now().Add(10 * time.Second); alive(pid) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if alive(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		t.Fatalf("the never-ready process %d is still running", pid)
	}
}
