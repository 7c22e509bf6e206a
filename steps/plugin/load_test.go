package plugin_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/plugin"
)

// TestLintChecksPluginParams: once a plugin's kinds are registered, loading
// (linting) a runbook validates plugin steps' `with:` against the plugin's
// schema and reports file:line:col.
func TestLintChecksPluginParams(t *testing.T) {
	_, reg, _ := load(t, "http-wait", "file-sync")
	tests := []struct {
		name, step string
		want       []string
	}{
		{"wrong type", "    run: http.wait\n    with: {url: 'http://127.0.0.1:1/', status: [200]}\n",
			[]string{"rb.yaml:7:48: ", "status"}},
		{"wrong type block", "    run: http.wait\n    with:\n      url: http://127.0.0.1:1/\n      body: {a: 1}\n",
			[]string{"rb.yaml:9:14: ", "body"}},
		{"missing required", "    run: file.sync\n    on: n1\n    with: {from: n2}\n",
			[]string{"rb.yaml:8:12: ", "src"}},
		{"unknown param", "    run: file.sync\n    on: n1\n    with: {from: n2, src: /x, dst: /y}\n",
			[]string{"rb.yaml:8:31: ", "dst"}},
		{"pattern", "    run: file.sync\n    on: n1\n    with: {from: n2, src: /x, mode: '999'}\n",
			[]string{"rb.yaml:8:37: ", "mode"}},
		{"needs a target", "    run: file.sync\n    with: {from: n2, src: /x}\n",
			[]string{"rb.yaml:5:5: ", "on:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := header + "steps:\n  - id: s\n" + tc.step
			_, err := runbooks.LoadRunbook("rb.yaml", []byte(src), reg, nil)
			var ds runbooks.Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("got %v, want diagnostics", err)
			}
			text := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("diagnostics lack %q:\n%s", w, text)
				}
			}
		})
	}
	// And a correct plugin step passes.
	ok := header + "steps:\n  - id: s\n    run: http.wait\n    with: {url: 'http://127.0.0.1:1/', status: 204, timeout: 5s}\n"
	if _, err := runbooks.LoadRunbook("rb.yaml", []byte(ok), reg, nil); err != nil {
		t.Errorf("valid step refused: %v", err)
	}
}

// TestSummaryParamsRefuseSecrets: a secret templated into a summary
// parameter (shown in the plan) is a lint error.
func TestSummaryParamsRefuseSecrets(t *testing.T) {
	_, reg, _ := load(t, "http-wait")
	src := header + "inputs:\n  pw: {type: secret, prompt: pw}\nsteps:\n  - id: s\n    run: http.wait\n    with: {url: 'http://u:{{ inputs.pw }}@127.0.0.1/'}\n"
	_, err := runbooks.LoadRunbook("rb.yaml", []byte(src), reg, nil)
	if err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v, want a secret refusal", err)
	}
}

// copyBin copies a plugin binary to dir.
func copyBin(t *testing.T, name, dir string) string {
	t.Helper()
	b, err := os.ReadFile(bin(name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "drbook-plugin-"+name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPinRefusesChangedBinary: a plugin whose file changed after pinning is
// refused at load, and refused at restart if it changes while loaded.
func TestPinRefusesChangedBinary(t *testing.T) {
	dir := t.TempDir()
	path := copyBin(t, "testkit", dir)
	p0 := pin(t, path)
	// replace installs a changed binary (one more byte) over path.
	replace := func() {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".new", append(b, 0), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("at load", func(t *testing.T) {
		m := plugin.NewManager(plugin.Config{})
		defer m.Close()
		bad := p0
		bad.SHA256 = strings.Repeat("0", 64)
		_, err := m.Load(context.Background(), bad)
		if !errors.Is(err, plugin.ErrPinMismatch) {
			t.Fatalf("got %v, want ErrPinMismatch", err)
		}
	})
	t.Run("unpinned", func(t *testing.T) {
		m := plugin.NewManager(plugin.Config{})
		defer m.Close()
		_, err := m.Load(context.Background(), plugin.Pin{Path: path})
		if !errors.Is(err, plugin.ErrUnpinned) {
			t.Fatalf("got %v, want ErrUnpinned", err)
		}
	})
	t.Run("changed while loaded", func(t *testing.T) {
		m := plugin.NewManager(plugin.Config{})
		defer m.Close()
		p, err := m.Load(context.Background(), p0)
		if err != nil {
			t.Fatal(err)
		}
		reg := steps.NewRegistry()
		if err := plugin.Register(reg, p); err != nil {
			t.Fatal(err)
		}
		// Replace the binary, then make the plugin restart.
		pid := p.PID()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		replace()
		k, _ := reg.Get("testkit.secret")
		// The first call may still see the dying process; the restart must refuse.
		var runErr error
		for i := 0; i < 2; i++ {
			_, runErr = k.Run(context.Background(), &steps.Exec{Params: map[string]any{"value": "x"}})
			if errors.Is(runErr, plugin.ErrPinMismatch) {
				break
			}
		}
		if !errors.Is(runErr, plugin.ErrPinMismatch) {
			t.Fatalf("restart of a changed binary: %v, want ErrPinMismatch", runErr)
		}
		// And a fresh load with the old pin is refused too.
		m2 := plugin.NewManager(plugin.Config{})
		defer m2.Close()
		if _, err := m2.Load(context.Background(), p0); !errors.Is(err, plugin.ErrPinMismatch) {
			t.Fatalf("load: %v, want ErrPinMismatch", err)
		}
	})
}

// TestProtocolVersionMismatch: a plugin of another protocol version, or a
// program that is no plugin at all, is a clear error at load time.
func TestProtocolVersionMismatch(t *testing.T) {
	notPlugin := filepath.Join(t.TempDir(), "drbook-plugin-true")
	if err := os.WriteFile(notPlugin, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bin("badversion"), notPlugin} {
		m := plugin.NewManager(plugin.Config{StartTimeout: 5 * time.Second})
		_, err := m.Load(context.Background(), pin(t, path))
		m.Close()
		if !errors.Is(err, plugin.ErrProtocol) {
			t.Errorf("%s: got %v, want ErrProtocol", filepath.Base(path), err)
		}
		if strings.Contains(filepath.Base(path), "badversion") && (err == nil || !strings.Contains(err.Error(), "protocol 1")) {
			t.Errorf("message does not name the versions: %v", err)
		}
	}
}

// TestDiscovery: plugin directories pin through their lock file; a runbook
// pins through sha256: or the lock file beside it; a kind clash is refused.
func TestDiscovery(t *testing.T) {
	dir := t.TempDir()
	hw := copyBin(t, "http-wait", dir)
	tk := copyBin(t, "testkit", dir)
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	hwSum, tkSum := pin(t, hw).SHA256, pin(t, tk).SHA256

	// No lock: found but unpinned.
	pins, err := plugin.DirPins(dir)
	if err != nil || len(pins) != 2 {
		t.Fatalf("DirPins: %v %v", pins, err)
	}
	for _, p := range pins {
		if p.SHA256 != "" {
			t.Errorf("%s pinned without a lock file", p.Path)
		}
	}
	// With a lock (sha256sum format, one binary-mode marker).
	lock := hwSum + "  drbook-plugin-http-wait\n# comment\n" + tkSum + " *" + tk + "\n"
	if err := os.WriteFile(filepath.Join(dir, plugin.LockFileName), []byte(lock), 0o644); err != nil {
		t.Fatal(err)
	}
	pins, err = plugin.DirPins(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range pins {
		got[p.Path] = p.SHA256
	}
	if got[hw] != hwSum || got[tk] != tkSum {
		t.Errorf("pins %v", got)
	}
	m := plugin.NewManager(plugin.Config{})
	defer m.Close()
	ps, err := m.LoadAll(context.Background(), pins)
	if err != nil || len(ps) != 2 {
		t.Fatalf("LoadAll: %v", err)
	}
	reg := steps.NewRegistry()
	for _, p := range ps {
		if err := plugin.Register(reg, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := reg.Get("http.wait"); !ok {
		t.Error("http.wait not registered")
	}

	// A runbook: one entry pinned inline, one through the lock beside it.
	rbDir := filepath.Join(dir, "rb")
	if err := os.Mkdir(rbDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rbDir, plugin.LockFileName), []byte(tkSum+"  ../drbook-plugin-testkit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := header + "plugins:\n  - path: ../drbook-plugin-http-wait\n    sha256: " + hwSum + "\n  - path: ../drbook-plugin-testkit\nsteps:\n  - id: s\n    run: shell\n    on: n\n    with: {command: 'true'}\n"
	rb, err := runbooks.ParseRunbook(filepath.Join(rbDir, "rb.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rpins, err := plugin.RunbookPins(rb)
	if err != nil || len(rpins) != 2 {
		t.Fatalf("RunbookPins: %v %v", rpins, err)
	}
	if rpins[0].Path != hw || rpins[0].SHA256 != hwSum || !strings.Contains(rpins[0].Source, "rb.yaml:5:11") {
		t.Errorf("inline pin %+v", rpins[0])
	}
	if rpins[1].Path != tk || rpins[1].SHA256 != tkSum {
		t.Errorf("lock pin %+v", rpins[1])
	}
	// Same plugin, another pin: refused rather than silently reused.
	other := rpins[0]
	other.SHA256 = strings.Repeat("a", 64)
	if _, err := m.Load(context.Background(), other); !errors.Is(err, plugin.ErrPinMismatch) {
		t.Errorf("conflicting pin: %v", err)
	}

	// A kind clash between two plugins.
	clashDir := t.TempDir()
	tk2 := copyBin(t, "testkit", clashDir)
	p2, err := m.Load(context.Background(), pin(t, tk2))
	if err != nil {
		t.Fatal(err)
	}
	if err := plugin.Register(reg, p2); !errors.Is(err, plugin.ErrKindClash) {
		t.Errorf("clash: %v", err)
	}
}

// TestLockFileFormat: Format writes what ReadLockFile reads; bad lines are
// refused with their line number.
func TestLockFileFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, plugin.LockFileName)
	lf := &plugin.LockFile{Path: path, Pins: map[string]string{filepath.Join(dir, "p", "a"): strings.Repeat("1", 64), "/abs/b": strings.Repeat("2", 64)}}
	if err := os.WriteFile(path, lf.Format(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := plugin.ReadLockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Pins) != 2 || back.Pins[filepath.Join(dir, "p", "a")] != strings.Repeat("1", 64) || back.Pins["/abs/b"] != strings.Repeat("2", 64) {
		t.Errorf("round trip: %v", back.Pins)
	}
	if err := os.WriteFile(path, []byte("# ok\nnot-a-hash  x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := plugin.ReadLockFile(path); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Errorf("bad line: %v", err)
	}
}

// runnerEnv makes the test binary act as a runner that loads a plugin and
// waits to be killed (see TestPluginDiesWithRunner).
const runnerEnv = "DRBOOK_PLUGIN_TEST_RUNNER"

// runAsRunner is called from TestMain in the child process.
func runAsRunner(path string) int {
	sum, err := plugin.FileSHA256(path)
	if err != nil {
		return 1
	}
	m := plugin.NewManager(plugin.Config{})
	p, err := m.Load(context.Background(), plugin.Pin{Path: path, SHA256: sum})
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		return 1
	}
	os.Stdout.WriteString(strconv.Itoa(p.PID()) + "\n")
	select {} // killed by the test
}

// TestPluginDiesWithRunner: a runner killed with SIGKILL (no cleanup at
// all) takes its plugin processes with it.
func TestPluginDiesWithRunner(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), runnerEnv+"="+bin("testkit"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("runner: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || !pidAlive(pid) {
		t.Fatalf("runner said %q", line)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for pidAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d outlived its runner", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
