package labssh_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent/labssh"
	"golang.org/x/crypto/ssh"
)

// lab is a running server plus a client key it accepts.
type lab struct {
	srv     *labssh.Server
	dir     string
	signer  ssh.Signer
	authKey string
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startLab(t *testing.T, mod func(*labssh.Config)) *lab {
	t.Helper()
	dir := t.TempDir()
	l := &lab{dir: dir, signer: newSigner(t), authKey: filepath.Join(dir, "authorized_keys")}
	if err := os.WriteFile(l.authKey, ssh.MarshalAuthorizedKey(l.signer.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := labssh.Config{Addr: "127.0.0.1:0", HostKeyFile: filepath.Join(dir, "host_key"), AuthorizedKeysFile: l.authKey}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := labssh.Listen(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	l.srv = srv
	return l
}

func (l *lab) dial(t *testing.T, signer ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", l.srv.Addr(), &ssh.ClientConfig{
		User:            "lab",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(l.srv.HostKey()),
		Timeout:         5 * time.Second,
	})
}

func (l *lab) client(t *testing.T) *ssh.Client {
	t.Helper()
	c, err := l.dial(t, l.signer)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func marker() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "labssh-marker-" + hex.EncodeToString(b)
}

// markedPIDs returns the pids whose command line contains m.
func markedPIDs(m string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(m)) && e.Name() != "self" {
			out = append(out, e.Name())
		}
	}
	return out
}

// killMarked kills the process groups of the marked processes (commands
// the lab server started: each leads its own group).
func killMarked(m string) {
	for _, pid := range markedPIDs(m) {
		n, err := strconv.Atoi(pid)
		if err != nil {
			continue
		}
		if pgid, err := syscall.Getpgid(n); err == nil && pgid != syscall.Getpgrp() {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		_ = syscall.Kill(n, syscall.SIGKILL)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	dir := t.TempDir()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "10.1.2.3:22", "example.com:22"} {
		_, err := labssh.Listen(t.Context(), labssh.Config{Addr: addr, HostKeyFile: filepath.Join(dir, "k"), AuthorizedKeysFile: filepath.Join(dir, "a")})
		if !errors.Is(err, labssh.ErrNotLoopback) {
			t.Errorf("Listen(%q) = %v, want ErrNotLoopback", addr, err)
		}
	}
	if _, err := labssh.Listen(t.Context(), labssh.Config{Addr: "127.0.0.1:0", HostKeyFile: filepath.Join(dir, "k")}); !errors.Is(err, labssh.ErrNoAuthorizedKeys) {
		t.Errorf("Listen without authorized keys = %v, want ErrNoAuthorizedKeys", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "k")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Listen created the host key: %v", err)
	}
}

func TestHostKeyCreatedOnceAndReused(t *testing.T) {
	l := startLab(t, nil)
	st, err := os.Stat(filepath.Join(l.dir, "host_key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %v, want 0600", st.Mode().Perm())
	}
	first := l.srv.HostKey()
	if err := l.srv.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := labssh.Listen(t.Context(), labssh.Config{Addr: "localhost:0", HostKeyFile: filepath.Join(l.dir, "host_key"), AuthorizedKeysFile: l.authKey})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !bytes.Equal(again.HostKey().Marshal(), first.Marshal()) {
		t.Error("restarted server has a different host key")
	}
}

func TestPublicKeyAuthOnly(t *testing.T) {
	l := startLab(t, nil)
	stranger := newSigner(t)
	if c, err := l.dial(t, stranger); err == nil {
		_ = c.Close()
		t.Fatal("a key not in authorized_keys logged in")
	}
	// No password or keyboard-interactive either.
	if c, err := ssh.Dial("tcp", l.srv.Addr(), &ssh.ClientConfig{
		User: "lab", Auth: []ssh.AuthMethod{ssh.Password("")}, HostKeyCallback: ssh.FixedHostKey(l.srv.HostKey()),
	}); err == nil {
		_ = c.Close()
		t.Fatal("password login accepted")
	}
	// authorized_keys is re-read: a key added while serving is accepted.
	f, err := os.OpenFile(l.authKey, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(ssh.MarshalAuthorizedKey(stranger.PublicKey()))
	_ = f.Close()
	c, err := l.dial(t, stranger)
	if err != nil {
		t.Fatalf("added key refused: %v", err)
	}
	_ = c.Close()
}

func TestExec(t *testing.T) {
	l := startLab(t, func(c *labssh.Config) { c.Env = []string{"PATH=" + os.Getenv("PATH"), "NODE=n1"} })
	c := l.client(t)
	tests := []struct {
		name, cmd, stdin string
		stdout, stderr   string
		wantCode         int
		wantSignal       string
	}{
		{name: "ok", cmd: "echo hi; echo err >&2", stdout: "hi\n", stderr: "err\n"},
		{name: "exit code", cmd: "exit 42", wantCode: 42},
		{name: "env is the node's", cmd: `printf '%s|%s' "$NODE" "${HOME-none}"`, stdout: "n1|none"},
		{name: "stdin", cmd: "tr a-z A-Z", stdin: "abc\n", stdout: "ABC\n"},
		{name: "killed", cmd: "kill -TERM $$", wantCode: 128 + 15, wantSignal: "TERM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			var stdout, stderr bytes.Buffer
			sess.Stdout, sess.Stderr, sess.Stdin = &stdout, &stderr, strings.NewReader(tt.stdin)
			err = sess.Run(tt.cmd)
			var exitErr *ssh.ExitError
			switch {
			case tt.wantCode == 0 && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.wantCode != 0 && (!errors.As(err, &exitErr) || exitErr.ExitStatus() != tt.wantCode || exitErr.Signal() != tt.wantSignal):
				t.Fatalf("Run: %v, want exit %d signal %q", err, tt.wantCode, tt.wantSignal)
			}
			if stdout.String() != tt.stdout || stderr.String() != tt.stderr {
				t.Errorf("stdout %q stderr %q, want %q %q", stdout.String(), stderr.String(), tt.stdout, tt.stderr)
			}
		})
	}
}

func TestRefusesEverythingButExec(t *testing.T) {
	l := startLab(t, nil)
	c := l.client(t)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err == nil {
		t.Error("pty-req accepted")
	}
	if err := sess.Setenv("A", "b"); err == nil {
		t.Error("env request accepted")
	}
	if err := sess.Shell(); err == nil {
		t.Error("shell request accepted")
	}
	sess2, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess2.Close()
	if err := sess2.RequestSubsystem("sftp"); err == nil {
		t.Error("sftp subsystem accepted")
	}
	if conn, err := c.Dial("tcp", "127.0.0.1:9"); err == nil {
		_ = conn.Close()
		t.Error("port forwarding (direct-tcpip) accepted")
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("remote port forwarding accepted")
	}
}

func TestSignalGoesToProcessGroup(t *testing.T) {
	l := startLab(t, nil)
	c := l.client(t)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	m := marker()
	if err := sess.Start("sh -c 'sleep 30; :' " + m + "; echo survived"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the marked process", func() bool { return len(markedPIDs(m)) > 0 })
	if err := sess.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = sess.Wait()
	var exitErr *ssh.ExitError
	if !errors.As(err, &exitErr) || exitErr.Signal() != "TERM" {
		t.Fatalf("Wait = %v, want exit signal TERM (the whole group, not only the inner sh)", err)
	}
	waitFor(t, 2*time.Second, "the marked process to die", func() bool { return len(markedPIDs(m)) == 0 })
}

func TestChannelCloseKillsProcessGroup(t *testing.T) {
	l := startLab(t, nil)
	c := l.client(t)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	m := marker()
	if err := sess.Start("sh -c 'sleep 30; :' " + m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the marked process", func() bool { return len(markedPIDs(m)) > 0 })
	_ = sess.Close()
	waitFor(t, 2*time.Second, "the marked process to die", func() bool { return len(markedPIDs(m)) == 0 })
	// The connection still serves new sessions.
	s2, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if out, err := s2.Output("echo again"); err != nil || string(out) != "again\n" {
		t.Errorf("after close: %q, %v", out, err)
	}
}

func TestSessionLimit(t *testing.T) {
	l := startLab(t, func(c *labssh.Config) { c.MaxSessionsPerConn = 2 })
	c := l.client(t)
	var open []*ssh.Session
	for range 2 {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	if s, err := c.NewSession(); err == nil {
		_ = s.Close()
		t.Fatal("third session accepted with MaxSessionsPerConn 2")
	}
	for _, s := range open {
		_ = s.Close()
	}
	waitFor(t, 2*time.Second, "a slot to free up", func() bool {
		s, err := c.NewSession()
		if err != nil {
			return false
		}
		_ = s.Close()
		return true
	})
}

func TestCloseKillsCommandsAndGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	l := startLab(t, nil)
	m := marker()
	const conns, perConn = 4, 5
	var clients []*ssh.Client
	for range conns {
		c, err := l.dial(t, l.signer)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		for range perConn {
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start("sh -c 'sleep 30; :' " + m); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 5*time.Second, "all commands", func() bool { return len(markedPIDs(m)) >= conns*perConn })
	start := time.Now()
	if err := l.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v", took)
	}
	if n := len(markedPIDs(m)); n != 0 {
		t.Errorf("%d commands survive Close", n)
	}
	for _, c := range clients {
		_ = c.Close()
	}
	if _, err := net.DialTimeout("tcp", l.srv.Addr(), time.Second); err == nil {
		t.Error("still listening after Close")
	}
	waitFor(t, 3*time.Second, "goroutines to return to the baseline", func() bool {
		return runtime.NumGoroutine() <= before+1
	})
}

func TestContextEndsServer(t *testing.T) {
	dir := t.TempDir()
	signer := newSigner(t)
	auth := filepath.Join(dir, "authorized_keys")
	_ = os.WriteFile(auth, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600)
	ctx, cancel := context.WithCancel(t.Context())
	srv, err := labssh.Listen(ctx, labssh.Config{Addr: "127.0.0.1:0", HostKeyFile: filepath.Join(dir, "k"), AuthorizedKeysFile: auth})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitFor(t, 2*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", srv.Addr(), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	})
	_ = srv.Close()
}

// TestBackgroundProcessSurvivesNormalExit matches OpenSSH: a command that
// starts a detached background process (output redirected) and exits
// normally ends its session; the background process keeps running.
func TestBackgroundProcessSurvivesNormalExit(t *testing.T) {
	l := startLab(t, nil)
	c := l.client(t)
	m := marker()
	t.Cleanup(func() { killMarked(m) })
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	start := time.Now()
	if out, err := sess.Output("sh -c 'sleep 30; :' " + m + " >/dev/null 2>&1 </dev/null & echo started"); err != nil || string(out) != "started\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("session lasted %v: the redirected background process held it", took)
	}
	if len(markedPIDs(m)) == 0 {
		t.Error("background process was killed when its session ended normally")
	}
}

// TestLingeringOutputIsBounded: a background process that keeps the
// session's output open delays the session by at most the output wait delay
// (OpenSSH would wait for it forever).
func TestLingeringOutputIsBounded(t *testing.T) {
	l := startLab(t, nil)
	c := l.client(t)
	m := marker()
	t.Cleanup(func() { killMarked(m) })
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	start := time.Now()
	if err := sess.Run("sh -c 'sleep 30; :' " + m + " & exit 3"); err == nil {
		t.Fatal("want exit status 3")
	} else if exitErr, ok := err.(*ssh.ExitError); !ok || exitErr.ExitStatus() != 3 {
		t.Fatalf("Run = %v, want exit status 3", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("session lasted %v, want ≤ the output wait delay (2 s) plus slack", took)
	}
}

// TestFastCommandsAlwaysReportStatus: a command that ends at once must still
// have its exec confirmed before its exit status and the channel's close.
func TestFastCommandsAlwaysReportStatus(t *testing.T) {
	l := startLab(t, nil)
	c := l.client(t)
	const workers, each = 4, 50
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				sess, err := c.NewSession()
				if err != nil {
					errs <- err
					return
				}
				line, want := "exit 3", 3
				if (w+i)%2 == 0 {
					line, want = "kill -KILL $$", 128+9
				}
				err = sess.Run(line)
				_ = sess.Close()
				var exitErr *ssh.ExitError
				if !errors.As(err, &exitErr) || exitErr.ExitStatus() != want {
					errs <- fmt.Errorf("%q: %v, want exit %d", line, err, want)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
