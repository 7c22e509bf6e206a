package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/drbook/drbook/steps/transport/sshtest"
)

// drbookBin and agentBin are built once for all tests.
var drbookBin, agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drbook-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	drbookBin = filepath.Join(dir, "drbook")
	agentBin = filepath.Join(dir, "drbook-agent")
	for bin, pkg := range map[string]string{drbookBin: ".", agentBin: "../drbook-agent"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished drbook invocation.
type result struct {
	code           int
	stdout, stderr string
}

func drbook(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, drbookBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "NO_COLOR=1")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("drbook %v: %v", args, err)
	}
	return r
}

// lab is a test environment: an SSH server, an inventory of node aliases
// pointing at it, and a checkpoint database.
type sshLab struct {
	srv     *sshtest.Server
	dir     string
	inv, db string
}

func newLab(t *testing.T, srv *sshtest.Server, nodes int) *sshLab {
	t.Helper()
	l := &sshLab{srv: srv, dir: t.TempDir()}
	l.db = filepath.Join(l.dir, "state", "drbook.db")
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: drbook/v1\nkind: Inventory\nname: test\nssh:\n  user: %s\n  identity_file: %s\n  known_hosts: %s\nnodes:\n",
		srv.User, srv.IdentityFile, srv.KnownHostsFile)
	for i := 1; i <= nodes; i++ {
		fmt.Fprintf(&b, "  - name: node%d\n    host: %s\n    port: %d\n    env: {NODE_DIR: %s/node%d}\n    vars: {api: \"127.0.0.1:%d\"}\n",
			i, srv.Host, srv.Port, srv.Dir, i, 7000+i)
	}
	fmt.Fprintf(&b, "groups:\n  all: [%s]\n", nodeList(nodes))
	l.inv = filepath.Join(l.dir, "inventory.yaml")
	if err := os.WriteFile(l.inv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= nodes; i++ {
		if err := os.MkdirAll(filepath.Join(srv.Dir, fmt.Sprintf("node%d", i)), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(srv.Dir, fmt.Sprintf("node%d", i)), 0o777)
	}
	return l
}

func nodeList(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node%d", i+1)
	}
	return strings.Join(names, ", ")
}

func (l *sshLab) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(l.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// counter reads how many times a step ran on a node (each run appends a line).
func (l *sshLab) counter(t *testing.T, node, step string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.srv.Dir, node, step+".count"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// runID extracts the run id from drbook's first output line ("run ID: ...").
func runID(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "run" || f[0] == "resume") {
			return strings.TrimSuffix(f[1], ":")
		}
	}
	t.Fatalf("no run id in output:\n%s", out)
	return ""
}

const secretValue = "S3cr3t-passphrase-7f1c"

// secretDigest is the first 16 hex digits of secretValue's SHA-256: the
// runbook checks the passphrase without containing it.
const secretDigest = "0724a7067f6cbb53"

const recoveryRunbook = `apiVersion: drbook/v1
kind: Runbook
name: e2e-recovery
title: A recovery-shaped runbook over SSH
inputs:
  seed: {type: node, prompt: Seed node}
  joiners: {type: nodes, prompt: Nodes to join, min: 2}
  passphrase: {type: secret, prompt: Backup passphrase}
steps:
  - id: prepare
    title: Prepare every node
    run: shell
    on: all
    with: {command: 'echo x >> "$NODE_DIR/prepare.count"; echo prepared {{ target.name }}'}
  - id: token
    title: Issue a join token on the seed
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo x >> "$NODE_DIR/token.count"; echo token=tok-$(date +%s%N)'}
    outputs: [{name: token, secret: true}]
  - id: restore
    title: Restore with the passphrase
    run: shell
    on: "{{ inputs.seed }}"
    danger: true
    with:
      command: 'echo x >> "$NODE_DIR/restore.count"; test "$(printf %s "$PASS" | sha256sum | cut -c1-16)" = ` + secretDigest + ` && echo "restore ok with $PASS"'
      env: {PASS: "{{ inputs.passphrase }}"}
  - id: join
    title: Join the others one at a time
    run: shell
    on: "{{ inputs.joiners }}"
    serial: 1
    with:
      command: 'echo x >> "$NODE_DIR/join.count"; test -n "$TOKEN" && echo "joined {{ target.name }} via {{ nodes[inputs.seed].api }}" && echo member=yes'
      env: {TOKEN: "{{ steps.token.outputs.token }}"}
    outputs: [member]
  - id: slow
    title: A long step
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo x >> "$NODE_DIR/slow.count"; secs=$(cat "$NODE_DIR/slow.secs" 2>/dev/null || echo 0); echo slow started; sleep "$secs" && touch "$NODE_DIR/slow.done" && echo slow done'}
    check: 'test -f "$NODE_DIR/slow.done"'
  - id: verify
    title: Verify
    run: wait
    on: all
    timeout: 30s
    with:
      command: 'echo x >> "$NODE_DIR/verify.count"; echo healthy=1'
      expect: {healthy: ">=1"}
      interval: 100ms
`

func answers(seed string) string {
	return fmt.Sprintf("inputs:\n  seed: %s\n  joiners: [node2, node3]\n  passphrase: {env: E2E_PASSPHRASE}\n", seed)
}

func strconvFormat(n int64) string { return fmt.Sprint(n) }

var _ = sql.ErrNoRows

var updateSchemas = flag.Bool("update-schemas", false, "rewrite runbooks/schema/*.json")

func execShell(line string) ([]byte, error) {
	return exec.Command("sh", "-c", line).CombinedOutput()
}
