package plugin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// sshInventory has two nodes behind one loopback SSH server, each with its
// own directory as $NODE_DIR.
func sshInventory(t *testing.T, srv *sshtest.Server) (*runbooks.Inventory, []string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: drbook/v1\nkind: Inventory\nssh:\n  user: %s\n  port: %d\n  identity_file: %s\n  known_hosts: %s\nnodes:\n",
		srv.User, srv.Port, srv.IdentityFile, srv.KnownHostsFile)
	var dirs []string
	for i := 1; i <= 2; i++ {
		d := filepath.Join(srv.Dir, fmt.Sprintf("node%d", i))
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
		fmt.Fprintf(&b, "  - name: node%d\n    host: %s\n    env: {NODE_DIR: %q}\n", i, srv.Host, d)
	}
	inv, err := runbooks.ParseInventory("inv.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return inv, dirs
}

func sshDial(inv *runbooks.Inventory) engine.Dialer {
	return func(ctx context.Context, n *runbooks.Node) (transport.Transport, error) {
		return transport.DialSSH(ctx, transport.SSHConfig{
			Name: n.Name, Host: n.Host, Port: inv.SSH.Port, User: inv.SSH.User,
			IdentityFile: inv.SSH.IdentityFile, KnownHostsFile: inv.SSH.KnownHosts,
			ConnectTimeout: 10 * time.Second,
		})
	}
}

// healthServer is an HTTPS endpoint that answers 503 for the first calls,
// then 200 "ok", like an agent coming up after a restore.
func healthServer(t *testing.T) (url, caFile string, calls *atomic.Int32) {
	t.Helper()
	calls = &atomic.Int32{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, `{"status":"ok"}`)
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/healthz", caFile, calls
}

// TestRunbookWithBothPlugins runs a runbook using http-wait and file-sync
// through the engine against a loopback SSH server, and checks the record:
// the plugin steps, their output and outputs, a verified chain.
func TestRunbookWithBothPlugins(t *testing.T) {
	srv := sshtest.StartLab(t)
	inv, dirs := sshInventory(t, srv)
	_, reg, _ := load(t, "http-wait", "file-sync")
	f := newFixture(t, reg, inv, sshDial(inv))
	url, caFile, calls := healthServer(t)

	// A backup larger than one chunk, with every byte value.
	backup := make([]byte, 300_001)
	if _, err := rand.Read(backup); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dirs[0], "backup.bin")
	if err := os.WriteFile(src, backup, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dirs[1], "restore", "backup.bin")
	if err := os.Mkdir(filepath.Dir(dest), 0o777); err != nil {
		t.Fatal(err)
	}
	rb := header + fmt.Sprintf(`steps:
  - id: copy
    run: file.sync
    on: node2
    with: {from: node1, src: %q, dest: %q, mode: "0640"}
  - id: copy-again
    run: file.sync
    on: node2
    with: {from: node1, src: %q, dest: %q}
  - id: check
    run: shell
    on: node2
    with: {command: 'echo "sum=$(sha256sum < %s | cut -c1-64)"'}
    outputs: [sum]
  - id: healthy
    run: http.wait
    with: {url: %q, ca_file: %q, body: '"ok"', interval: 50ms, timeout: 20s}
`, src, dest, src, dest, dest, url, caFile)
	out, err := engine.Start(context.Background(), f.config(t, rb), nil)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, f.rec.lines())
	}
	if out.Status != state.StatusSucceeded {
		t.Fatalf("status %s", out.Status)
	}
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, backup) {
		t.Fatalf("copied file differs (%d bytes, %v)", len(got), err)
	}
	if st, err := os.Stat(dest); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 (%v)", st.Mode().Perm(), err)
	}
	if calls.Load() < 3 {
		t.Errorf("health endpoint called %d times, want >= 3", calls.Load())
	}

	// The record: executions with outputs, and plugin output in the log.
	xs := f.execs(t, out.RunID)
	sum := xs["check"].Outputs["sum"]
	if len(sum) != 64 {
		t.Fatalf("check step outputs %v", xs["check"].Outputs)
	}
	tests := []struct {
		step    string
		outputs map[string]string
		log     string
	}{
		{"copy", map[string]string{"bytes": "300001", "sha256": sum, "changed": "true"}, "copied node1:" + src},
		{"copy-again", map[string]string{"bytes": "300001", "sha256": sum, "changed": "false"}, "already holds the same 300001 bytes"},
		{"healthy", map[string]string{"status": "200"}, "answered 200 after"},
	}
	for _, tc := range tests {
		x := xs[tc.step]
		if x.Status != state.StatusSucceeded {
			t.Errorf("%s: status %s (%s)", tc.step, x.Status, x.Error)
		}
		for k, v := range tc.outputs {
			if x.Outputs[k] != v {
				t.Errorf("%s: output %s = %q, want %q", tc.step, k, x.Outputs[k], v)
			}
		}
		if !strings.Contains(x.Log, tc.log) {
			t.Errorf("%s: log lacks %q:\n%s", tc.step, tc.log, x.Log)
		}
	}
	if !strings.Contains(xs["copy"].Log, "[plugin] node1$ base64") {
		t.Errorf("copy log does not show what the plugin ran where:\n%s", xs["copy"].Log)
	}
	events, err := f.db.Events(context.Background(), out.RunID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, ev := range events {
		if ev.Type == state.EvStepStarted {
			var s state.StepStarted
			if err := ev.Decode(&s); err != nil {
				t.Fatal(err)
			}
			kinds[s.Kind] = true
			if s.Kind == "file.sync" && !strings.Contains(s.Summary, "from=node1") {
				t.Errorf("summary %q lacks the source", s.Summary)
			}
		}
	}
	if !kinds["file.sync"] || !kinds["http.wait"] {
		t.Errorf("replayed kinds %v", kinds)
	}
	if rep, err := f.db.Verify(context.Background(), out.RunID); err != nil || !rep.OK {
		t.Errorf("verify: %+v %v", rep, err)
	}
}

// TestSecretOutputSealed: an output the plugin declares secret is masked in
// the log and sealed in the record.
func TestSecretOutputSealed(t *testing.T) {
	_, reg, _ := load(t, "testkit")
	f := newFixture(t, reg, localInventory(t, t.TempDir(), 1), localDial)
	rb := header + `inputs:
  tok: {type: secret, prompt: token}
steps:
  - id: s
    run: testkit.secret
    with: {value: "{{ inputs.tok }}"}
  - id: use
    run: testkit.run
    on: node1
    with: {command: 'test "$T" = "s3cr3t-value" && echo matched', env: {T: "{{ steps.s.outputs.token }}"}}
`
	out, err := engine.Start(context.Background(), f.config(t, rb), map[string]runbooks.Value{"tok": {V: "s3cr3t-value", Secret: true}})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, f.rec.lines())
	}
	xs := f.execs(t, out.RunID)
	if strings.Contains(xs["s"].Log, "s3cr3t-value") || strings.Contains(f.rec.lines(), "s3cr3t-value") {
		t.Errorf("secret in clear in the log:\n%s", xs["s"].Log)
	}
	if v := xs["s"].Outputs["token"]; v == "s3cr3t-value" {
		t.Errorf("secret output recorded in clear")
	}
	if xs["use"].Outputs["out"] != "matched" {
		t.Errorf("the secret did not reach the next step: %v", xs["use"].Outputs)
	}
}

// TestRunOnOtherNode: a plugin reaches another inventory node through the
// runner (Request.Node), and an unknown node fails the step cleanly.
func TestRunOnOtherNode(t *testing.T) {
	_, reg, _ := load(t, "testkit")
	inv := localInventory(t, t.TempDir(), 2)
	f := newFixture(t, reg, inv, localDial)
	rb := header + `steps:
  - id: there
    run: testkit.run
    on: node1
    with: {command: 'basename "$NODE_DIR"', node: node2}
  - id: nowhere
    run: testkit.run
    on: node1
    with: {command: 'true', node: node9}
`
	out, err := engine.Start(context.Background(), f.config(t, rb), nil)
	if err == nil {
		t.Fatal("a step on an unknown node succeeded")
	}
	xs := f.execs(t, out.RunID)
	if got := xs["there"].Outputs["out"]; got != "node2" {
		t.Errorf("ran on %q, want node2", got)
	}
	if x := xs["nowhere"]; x.Status != state.StatusFailed || !strings.Contains(x.Error, `unknown node "node9"`) {
		t.Errorf("nowhere: %s %q", x.Status, x.Error)
	}
}

// TestReadmeExample: the README's minimal plugin works as documented.
func TestReadmeExample(t *testing.T) {
	_, reg, _ := load(t, "hello")
	f := newFixture(t, reg, localInventory(t, t.TempDir(), 1), localDial)
	rb := header + "steps:\n  - id: hi\n    run: hello.say\n    on: node1\n    with: {to: operator}\n"
	out, err := engine.Start(context.Background(), f.config(t, rb), nil)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, f.rec.lines())
	}
	x := f.execs(t, out.RunID)["hi"]
	if x.Outputs["kernel"] != "Linux" || !strings.Contains(x.Log, "hello operator from node1 (Linux)") {
		t.Errorf("outputs %v, log %q", x.Outputs, x.Log)
	}
}

// TestBrokerAfterIdle: a step that reaches the Host service long after the
// plugin started still works (go-plugin's broker forgets an offered
// service nobody dialled within 5 s; the plugin dials at start).
func TestBrokerAfterIdle(t *testing.T) {
	_, reg, _ := load(t, "testkit")
	f := newFixture(t, reg, localInventory(t, t.TempDir(), 1), localDial)
	time.Sleep(6 * time.Second) // idle past the broker's 5 s on purpose
	rb := header + "steps:\n  - id: s\n    run: testkit.run\n    on: node1\n    with: {command: 'echo late'}\n"
	out, err := engine.Start(context.Background(), f.config(t, rb), nil)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, f.rec.lines())
	}
	if got := f.execs(t, out.RunID)["s"].Outputs["out"]; got != "late" {
		t.Errorf("out %q", got)
	}
}

// TestHTTPWaitFailures: http.wait fails with the right class of error.
func TestHTTPWaitFailures(t *testing.T) {
	_, reg, _ := load(t, "http-wait")
	kind, _ := reg.Get("http.wait")
	url, caFile, _ := healthServer(t)
	tests := []struct {
		name    string
		params  map[string]any
		wantErr error
		want    string
	}{
		{"untrusted certificate", map[string]any{"url": url, "timeout": "5s", "interval": "50ms"}, steps.ErrTimeout, "certificate"},
		{"wrong status", map[string]any{"url": strings.Replace(url, "/healthz", "/nope", 1), "ca_file": caFile, "timeout": "2s", "interval": "50ms"}, steps.ErrTimeout, "status 404, want 200"},
		{"body never matches", map[string]any{"url": url, "ca_file": caFile, "body": "never", "timeout": "2s", "interval": "50ms"}, steps.ErrTimeout, `lacks "never"`},
		{"missing CA file", map[string]any{"url": url, "ca_file": "/nonexistent/ca.pem"}, steps.ErrBadParams, "ca_file"},
		{"bad duration", map[string]any{"url": url, "timeout": "soon"}, steps.ErrBadParams, "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := &steps.Exec{Step: &runbooks.Step{ID: "w"}, Params: tc.params, Stdout: io.Discard, Stderr: io.Discard}
			_, err := kind.Run(context.Background(), x)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %v with %q", err, tc.wantErr, tc.want)
			}
		})
	}
}
