package transport_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// server is one kind of SSH server the tests run against.
type server struct {
	name  string
	start func(testing.TB) *sshtest.Server
}

// servers lists every SSH server implementation; tests run against each.
var servers = []server{
	{"openssh", sshtest.StartPrivateOpenSSH}, // private: several tests kill its connections
	{"lab", sshtest.StartLab},
}

// forEachServer runs fn as a subtest against a fresh server of each kind.
func forEachServer(t *testing.T, fn func(t *testing.T, srv *sshtest.Server)) {
	t.Helper()
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) { fn(t, s.start(t)) })
	}
}

func sshConfig(srv *sshtest.Server) transport.SSHConfig {
	return transport.SSHConfig{
		Name: "node-" + srv.Kind(), Host: srv.Host, Port: srv.Port, User: srv.User,
		IdentityFile: srv.IdentityFile, KnownHostsFile: srv.KnownHostsFile,
		ConnectTimeout: 5 * time.Second,
	}
}

func dial(t testing.TB, srv *sshtest.Server) *transport.SSH {
	t.Helper()
	s, err := transport.DialSSH(context.Background(), sshConfig(srv))
	if err != nil {
		t.Fatalf("DialSSH: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// marker returns a unique word to find a test's processes and files by.
func marker(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "drbook-marker-" + hex.EncodeToString(b)
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// buffer is a bytes.Buffer safe for concurrent use, which also records when
// its first write arrived.
type buffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	first time.Time
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first.IsZero() {
		b.first = time.Now()
	}
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *buffer) firstWrite() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first
}

// killMarked cleans up processes a test started on a (local) server.
func killMarked(t testing.TB, m string) {
	t.Cleanup(func() { sshtest.KillMarked(m) })
}

// childrenOf returns the child pids of pids (from /proc/PID/task/PID/children).
func childrenOf(pids []int) []int {
	var out []int
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// anyAlive reports whether any of pids still exists (zombies count as dead).
func anyAlive(pids []int) bool {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] != 'Z' {
			return true
		}
	}
	return false
}
