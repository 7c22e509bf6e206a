package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent"
)

// agentBin is the drbook-agent binary built once by TestMain.
var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drbook-agent-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "drbook-agent")
	args := []string{"build", "-o", agentBin}
	if os.Getenv("DRBOOK_AGENT_RACE") != "" {
		args = append(args, "-race") // agents under the race detector
	}
	build := exec.Command("go", append(args, "github.com/drbook/drbook/cmd/drbook-agent")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build drbook-agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a free 127.0.0.1 port.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// node is one agent process.
type node struct {
	t    testing.TB
	id   string
	dir  string
	api  string
	raft string
	cmd  *exec.Cmd
	done chan struct{}
	logf *os.File
	// extra are more `serve` flags (e.g. shorter API timeouts).
	extra []string
	// wrap runs the agent through a command (e.g. `ip netns exec NS`); it
	// must exec the agent, so the started process is the agent itself.
	wrap []string
}

// newNode prepares (and starts) an agent with fresh ports and data dir.
func newNode(t testing.TB, id string, extra ...string) *node {
	t.Helper()
	return newNodeAt(t, id, freeAddr(t), freeAddr(t), nil, extra...)
}

// newNodeAt prepares (and starts) an agent on the given addresses with a
// fresh data dir, run through wrap when it is set.
func newNodeAt(t testing.TB, id, api, raft string, wrap []string, extra ...string) *node {
	t.Helper()
	base := t.TempDir()
	n := &node{t: t, id: id, dir: filepath.Join(base, "data"), api: api, raft: raft, extra: extra, wrap: wrap}
	f, err := os.Create(filepath.Join(base, id+".log"))
	if err != nil {
		t.Fatal(err)
	}
	n.logf = f
	t.Cleanup(func() {
		n.kill()
		f.Close()
		b, _ := os.ReadFile(f.Name())
		if bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("agent %s reported a data race", id)
		}
		// Every JSON log line the agent wrote has each key once (a reader
		// of a repeated key keeps only the last value).
		lines, err := checkLogKeys(b)
		if err != nil {
			t.Errorf("agent %s log: %v", id, err)
		} else if lines == 0 {
			t.Errorf("agent %s wrote no JSON log line", id)
		}
		if t.Failed() {
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("log of %s (tail):\n%s", id, b)
		}
	})
	n.start()
	return n
}

// start runs `serve` and waits until the admin socket answers.
func (n *node) start() {
	n.t.Helper()
	args := append([]string{"serve", "--data", n.dir, "--node-id", n.id, "--api", n.api, "--raft", n.raft, "--log-level", "info"}, n.extra...)
	name := agentBin
	if len(n.wrap) > 0 {
		name, args = n.wrap[0], append(append(slices.Clone(n.wrap[1:]), agentBin), args...)
	}
	n.cmd = exec.Command(name, args...)
	n.cmd.Stdout, n.cmd.Stderr = n.logf, n.logf
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(n.cmd, n.done)
	waitFor(n.t, 15*time.Second, "agent "+n.id+" answers", func() error {
		select {
		case <-n.done:
			n.t.Fatalf("agent %s exited during start", n.id)
		default:
		}
		var st nodeagent.Status
		return n.tryJSON(&st, "status")
	})
}

func (n *node) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process.
func (n *node) kill() { n.signal(syscall.SIGKILL) }

// stop sends SIGTERM and waits.
func (n *node) stop() { n.signal(syscall.SIGTERM) }

func (n *node) signal(sig syscall.Signal) {
	if !n.running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGCONT)
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the CLI against this node with --output json.
func (n *node) run(env []string, args ...string) result {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	full := append([]string{"--data", n.dir, "--output", "json"}, args...)
	cmd := exec.CommandContext(ctx, agentBin, full...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatalf("run %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// tryJSON runs args and decodes stdout into v; non-zero exit is an error.
func (n *node) tryJSON(v any, args ...string) error {
	r := n.run(nil, args...)
	if r.code != 0 {
		return fmt.Errorf("%v: exit %d: %s", args, r.code, strings.TrimSpace(r.stderr))
	}
	return json.Unmarshal([]byte(r.stdout), v)
}

// mustJSON is tryJSON failing the test on error.
func (n *node) mustJSON(v any, args ...string) {
	n.t.Helper()
	if err := n.tryJSON(v, args...); err != nil {
		n.t.Fatalf("node %s: %v", n.id, err)
	}
}

// expectCode runs args and checks the exit code and (if set) that stderr
// names want.
func (n *node) expectCode(code int, want string, env []string, args ...string) result {
	n.t.Helper()
	r := n.run(env, args...)
	if r.code != code {
		n.t.Fatalf("node %s %v: exit %d, want %d\nstdout: %s\nstderr: %s", n.id, args, r.code, code, r.stdout, r.stderr)
	}
	if want != "" && !strings.Contains(r.stderr, want) {
		n.t.Fatalf("node %s %v: stderr %q does not name %q", n.id, args, r.stderr, want)
	}
	return r
}

func (n *node) status() nodeagent.Status {
	n.t.Helper()
	var st nodeagent.Status
	n.mustJSON(&st, "status")
	return st
}

func (n *node) manifest(stale bool) nodeagent.Manifest {
	n.t.Helper()
	args := []string{"keys", "manifest"}
	if stale {
		args = append(args, "--stale")
	}
	var m nodeagent.Manifest
	n.mustJSON(&m, args...)
	return m
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		<-time.After(50 * time.Millisecond) // poll interval
	}
}

// cluster is a set of agents.
type cluster struct {
	t      testing.TB
	nodes  []*node
	apiKey string   // the founder's API key, shown once at bootstrap
	extra  []string // more `serve` flags for every node
}

// newCluster bootstraps node1 and joins size-1 more nodes; extra are more
// `serve` flags for every node.
func newCluster(t testing.TB, size int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, extra: extra}
	n1 := newNode(t, "node1", extra...)
	var br nodeagent.BootstrapResult
	n1.mustJSON(&br, "cluster", "create")
	if !br.Changed || br.APIKey == "" || br.ClusterID == "" {
		t.Fatalf("bootstrap result %+v", br)
	}
	c.apiKey = br.APIKey
	c.nodes = append(c.nodes, n1)
	for i := 2; i <= size; i++ {
		c.add(fmt.Sprintf("node%d", i), n1)
	}
	return c
}

// token creates a join token on n and writes it to a 0600 file.
func token(t testing.TB, n *node, ttl string) string {
	t.Helper()
	var tr nodeagent.TokenResult
	args := []string{"token", "create"}
	if ttl != "" {
		args = append(args, "--ttl", ttl)
	}
	n.mustJSON(&tr, args...)
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(tr.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// add starts a fresh node and joins it through via.
func (c *cluster) add(id string, via *node) *node {
	c.t.Helper()
	n := newNode(c.t, id, c.extra...)
	tf := token(c.t, via, "")
	var jr nodeagent.JoinResult
	n.mustJSON(&jr, "cluster", "join", "--peer", via.api, "--token-file", tf)
	if !jr.Changed || jr.Suffrage != "voter" {
		c.t.Fatalf("join %s: %+v", id, jr)
	}
	c.nodes = append(c.nodes, n)
	return n
}

// leader waits until the running nodes agree on a leader and returns it.
func (c *cluster) leader(timeout time.Duration) *node {
	c.t.Helper()
	var l *node
	waitFor(c.t, timeout, "a leader", func() error {
		l = nil
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			var st nodeagent.Status
			if err := n.tryJSON(&st, "status"); err != nil {
				return err
			}
			if st.State == "leader" {
				l = n
			}
		}
		if l == nil {
			return errors.New("no leader")
		}
		return nil
	})
	return l
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
