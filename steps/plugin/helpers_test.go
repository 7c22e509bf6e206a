package plugin_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/hostile"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/plugin"
	"github.com/drbook/drbook/steps/transport"
)

// binDir holds the plugin binaries TestMain builds once (a cold build of a
// go-plugin binary takes tens of seconds).
var binDir string

// fixtures maps binary names to packages.
var fixtures = map[string]string{
	"drbook-plugin-http-wait":  "github.com/drbook/drbook/cmd/drbook-plugin-http-wait",
	"drbook-plugin-file-sync":  "github.com/drbook/drbook/cmd/drbook-plugin-file-sync",
	"drbook-plugin-testkit":    "github.com/drbook/drbook/steps/plugin/testdata/testkit",
	"drbook-plugin-panic":      "github.com/drbook/drbook/steps/plugin/testdata/panic",
	"drbook-plugin-hang":       "github.com/drbook/drbook/steps/plugin/testdata/hang",
	"drbook-plugin-crash":      "github.com/drbook/drbook/steps/plugin/testdata/crash",
	"drbook-plugin-badversion": "github.com/drbook/drbook/steps/plugin/testdata/badversion",
	"drbook-plugin-hello":      "github.com/drbook/drbook/steps/plugin/testdata/hello",
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if path := os.Getenv(runnerEnv); path != "" {
		return runAsRunner(path)
	}
	if hostile.IsChild() {
		return m.Run() // a hostile-input child needs no plugin binaries
	}
	dir, err := os.MkdirTemp("", "drbook-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := filepath.Join(dir, "build")
	args := []string{"build", "-o", build + "/"}
	for _, pkg := range fixtures {
		args = append(args, pkg)
	}
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build plugins:", err)
		return 1
	}
	for name, pkg := range fixtures {
		if err := os.Rename(filepath.Join(build, filepath.Base(pkg)), filepath.Join(dir, name)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	binDir = dir
	code := m.Run()
	if pids := pluginPIDs(dir); len(pids) > 0 {
		fmt.Fprintf(os.Stderr, "stray plugin processes after the tests: %v\n", pids)
		return 1
	}
	return code
}

// bin returns the path of a built plugin binary.
func bin(name string) string { return filepath.Join(binDir, "drbook-plugin-"+name) }

// pin pins a plugin binary at its current hash.
func pin(t testing.TB, path string) plugin.Pin {
	t.Helper()
	sum, err := plugin.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return plugin.Pin{Path: path, SHA256: sum, Source: "test"}
}

// load starts a manager with the given plugins registered in a registry
// with the built-in kinds; the manager is closed when the test ends.
func load(t testing.TB, names ...string) (*plugin.Manager, *steps.Registry, []*plugin.Plugin) {
	t.Helper()
	m := plugin.NewManager(plugin.Config{})
	t.Cleanup(func() { m.Close() })
	reg := steps.NewRegistry()
	var ps []*plugin.Plugin
	for _, n := range names {
		p, err := m.Load(context.Background(), pin(t, bin(n)))
		if err != nil {
			t.Fatalf("load %s: %v", n, err)
		}
		if err := plugin.Register(reg, p); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return m, reg, ps
}

// pluginPIDs lists live processes whose executable is under dir.
func pluginPIDs(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if strings.HasPrefix(exe, dir+string(filepath.Separator)) {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && isZombie(st) {
				continue
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

func isZombie(stat []byte) bool {
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// waitNoPluginProcs polls until no process runs a binary under dir.
func waitNoPluginProcs(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := pluginPIDs(dir)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes still running: %v", pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidAlive reports whether pid is a live (non-zombie) process.
func pidAlive(pid int) bool {
	st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	return err == nil && !isZombie(st)
}

const header = "apiVersion: drbook/v1\nkind: Runbook\nname: t\n"

// recorder keeps engine events.
type recorder struct {
	mu     sync.Mutex
	events []runlog.Event
}

func (r *recorder) observe(ev runlog.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) lines() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, ev := range r.events {
		if l, ok := ev.(runlog.OutputLine); ok {
			fmt.Fprintf(&b, "%s/%s: %s\n", l.StepID, l.Target, l.Line)
		}
	}
	return b.String()
}

// fixture is an engine run against real SQLite and real transports.
type fixture struct {
	dir  string
	db   *state.DB
	inv  *runbooks.Inventory
	reg  *steps.Registry
	rec  *recorder
	dial engine.Dialer
}

func newFixture(t *testing.T, reg *steps.Registry, inv *runbooks.Inventory, dial engine.Dialer) *fixture {
	t.Helper()
	dir := t.TempDir()
	db, err := state.Open(context.Background(), filepath.Join(dir, "db", "drbook.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &fixture{dir: dir, db: db, inv: inv, reg: reg, rec: &recorder{}, dial: dial}
}

func (f *fixture) config(t *testing.T, src string) engine.Config {
	t.Helper()
	rb, err := runbooks.LoadRunbook("rb.yaml", []byte(src), f.reg, f.inv)
	if err != nil {
		t.Fatal(err)
	}
	return engine.Config{Runbook: rb, Inventory: f.inv, Registry: f.reg, Store: f.db, Operator: &engine.Headless{Yes: true},
		Observer: f.rec.observe, Dial: f.dial, Mode: "headless"}
}

// execs returns the recorded executions by step id (last attempt wins).
func (f *fixture) execs(t *testing.T, runID string) map[string]state.Exec {
	t.Helper()
	xs, err := f.db.Execs(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]state.Exec{}
	for _, x := range xs {
		out[x.StepID] = x
	}
	return out
}

// localInventory has n local-transport nodes, each with its own NODE_DIR.
func localInventory(t testing.TB, dir string, n int) *runbooks.Inventory {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: drbook/v1\nkind: Inventory\nnodes:\n")
	for i := 1; i <= n; i++ {
		nd := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(nd, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  - name: node%d\n    transport: local\n    env: {NODE_DIR: %q}\n", i, nd)
	}
	inv, err := runbooks.ParseInventory("inv.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func localDial(context.Context, *runbooks.Node) (transport.Transport, error) {
	return &transport.Local{BaseEnv: os.Environ()}, nil
}
