// Package plugin is drbook's host side of step plugins: separate executables
// that provide step kinds, spoken to over hashicorp/go-plugin (gRPC with a
// versioned handshake; the protocol is in internal/wire, the plugin side in
// sdk).
//
// A Manager loads pinned plugin executables (Pin: path + SHA-256, from a
// runbook's plugins:, a drbook-plugins.lock, or a plugin directory's lock),
// refuses any whose hash differs, asks each for its kinds and registers them
// in a steps.Registry like built-in kinds, so lint validates their `with:`
// against the plugin's JSON Schema.
//
// Running a step starts the plugin process if it is not running (a process
// that crashed is restarted for the next step), opens a session on the Host
// service the Manager serves to the plugin through go-plugin's broker (so
// the plugin runs commands on the step's target over the runner's own
// verified transport, never with its own credentials) and streams output.
// Isolation: a panic in a kind fails the step; a process that dies fails
// its step with the panic or last stderr line; a plugin that ignores the
// step's deadline is killed. Plugin processes get SIGKILL when the runner's
// process dies (Pdeathsig) and end themselves when re-parented.
package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/plugin/internal/wire"
)

// Config configures a Manager.
type Config struct {
	// Logger receives plugin lifecycle logs and the plugins' own logs
	// (debug). Nil discards.
	Logger *slog.Logger
	// StartTimeout bounds start + handshake (default 10s).
	StartTimeout time.Duration
}

// Manager loads plugins and owns their processes. Close ends them all.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	plugins map[string]*Plugin // by absolute path
	closed  bool
}

// NewManager returns a Manager with no plugins loaded.
func NewManager(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	return &Manager{cfg: cfg, log: cfg.Logger, plugins: map[string]*Plugin{}}
}

// Plugin is one loaded plugin executable.
type Plugin struct {
	m      *Manager
	path   string
	sha    string
	source string
	man    wire.Manifest
	host   *hostService

	mu   sync.Mutex
	proc *process
}

// Path returns the executable's absolute path.
func (p *Plugin) Path() string { return p.path }

// SHA256 returns the pinned hash.
func (p *Plugin) SHA256() string { return p.sha }

// Source says where its pin came from.
func (p *Plugin) Source() string { return p.source }

// Name returns the plugin's self-declared name.
func (p *Plugin) Name() string { return p.man.Name }

// Version returns the plugin's self-declared version.
func (p *Plugin) Version() string { return p.man.Version }

// Kinds returns the step kinds the plugin provides.
func (p *Plugin) Kinds() []steps.Kind {
	ks := make([]steps.Kind, len(p.man.Kinds))
	for i, ki := range p.man.Kinds {
		ks[i] = &kind{p: p, info: ki}
	}
	return ks
}

// PID returns the running process's id, or 0.
func (p *Plugin) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil || p.proc.cmd.Process == nil {
		return 0
	}
	return p.proc.cmd.Process.Pid
}

// Load checks pin, starts the plugin, and reads its kinds. A plugin already
// loaded from the same path with the same pin is returned as is.
func (m *Manager) Load(ctx context.Context, pin Pin) (*Plugin, error) {
	if pin.SHA256 == "" {
		return nil, fmt.Errorf("%s: %w", pin.Path, ErrUnpinned)
	}
	abs, err := filepath.Abs(pin.Path)
	if err != nil {
		return nil, fmt.Errorf("plugin path: %w", err)
	}
	pin.Path = abs
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("plugin manager is closed")
	}
	if p, ok := m.plugins[abs]; ok {
		m.mu.Unlock()
		if p.sha != pin.SHA256 {
			return nil, fmt.Errorf("%s: %w: pinned %s (%s) and %s (%s)", abs, ErrPinMismatch, short(p.sha), p.source, short(pin.SHA256), pin.Source)
		}
		return p, nil
	}
	m.mu.Unlock()
	// The pin is checked by go-plugin's SecureConfig at every start, on the
	// bytes about to be executed.
	p := &Plugin{m: m, path: abs, sha: pin.SHA256, source: pin.Source}
	p.host = newHostService()
	proc, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	man := proc.man
	if err := checkManifest(man); err != nil {
		p.stop()
		return nil, fmt.Errorf("plugin %s: %w", abs, err)
	}
	p.man = *man
	m.mu.Lock()
	defer m.mu.Unlock()
	if q, ok := m.plugins[abs]; ok { // lost a race with another Load
		p.stop()
		return q, nil
	}
	m.plugins[abs] = p
	m.log.Debug("plugin loaded", "path", abs, "name", man.Name, "version", man.Version, "kinds", len(man.Kinds))
	return p, nil
}

func checkManifest(m *wire.Manifest) error {
	if m.Name == "" {
		return fmt.Errorf("%w: the plugin declares no name", ErrProtocol)
	}
	seen := map[string]bool{}
	for _, k := range m.Kinds {
		if k.Name == "" || seen[k.Name] {
			return fmt.Errorf("%w: kind names must be unique and not empty (%q)", ErrProtocol, k.Name)
		}
		seen[k.Name] = true
		switch k.Targets {
		case "", "required", "optional", "none":
		default:
			return fmt.Errorf("%w: kind %s: targets %q is not required, optional or none", ErrProtocol, k.Name, k.Targets)
		}
		nodes := 0
		if depth := schemaDepth(k.Params, 1, &nodes); depth > maxSchemaDepth || nodes > maxSchemaNodes {
			return fmt.Errorf("%w: kind %s: the parameter schema nests %d levels with %d values; at most %d levels and %d values are read", ErrProtocol, k.Name, depth, nodes, maxSchemaDepth, maxSchemaNodes)
		}
	}
	return nil
}

// Bounds on a plugin's parameter schema, checked when the plugin loads: the
// schema is walked when every step of its kinds is linted.
const (
	maxSchemaDepth = 32
	maxSchemaNodes = 10_000
)

// schemaDepth returns the nesting depth of a decoded JSON value and adds its
// values to *nodes. It stops descending once either bound is passed.
func schemaDepth(v any, depth int, nodes *int) int {
	*nodes++
	if depth > maxSchemaDepth || *nodes > maxSchemaNodes {
		return depth
	}
	deepest := depth
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			deepest = max(deepest, schemaDepth(e, depth+1, nodes))
		}
	case []any:
		for _, e := range x {
			deepest = max(deepest, schemaDepth(e, depth+1, nodes))
		}
	}
	return deepest
}

// LoadAll loads every pin, returning the plugins that loaded and every
// error joined.
func (m *Manager) LoadAll(ctx context.Context, pins []Pin) ([]*Plugin, error) {
	var out []*Plugin
	var errs []error
	for _, pin := range pins {
		p, err := m.Load(ctx, pin)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// Register adds a plugin's kinds to reg; a kind already there is an error
// naming both.
func Register(reg *steps.Registry, p *Plugin) error {
	for _, k := range p.Kinds() {
		name := k.Info().Name
		if existing, ok := reg.Get(name); ok {
			if pk, ok := existing.(*kind); ok && pk.p == p {
				continue // registered already
			}
			from := "drbook"
			if pk, ok := existing.(*kind); ok {
				from = pk.p.path
			}
			return fmt.Errorf("plugin %s: %w: %q is also provided by %s", p.path, ErrKindClash, name, from)
		}
		if err := reg.Register(k); err != nil {
			return fmt.Errorf("plugin %s: %w", p.path, err)
		}
	}
	return nil
}

// Plugins returns the loaded plugins.
func (m *Manager) Plugins() []*Plugin {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Plugin, 0, len(m.plugins))
	for _, p := range m.plugins {
		out = append(out, p)
	}
	return out
}

// Close ends every plugin process. Later steps of its plugins fail.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	ps := make([]*Plugin, 0, len(m.plugins))
	for _, p := range m.plugins {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.stop)
	}
	wg.Wait()
	return nil
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// process is one running plugin process.
type process struct {
	client  *goplugin.Client
	cmd     *exec.Cmd
	conn    *grpc.ClientConn
	hostID  uint32
	hostSrv *grpc.Server
	stderr  *tail
	man     *wire.Manifest
}

func (pr *process) exited() bool { return pr.client.Exited() }

// kill ends the process at once (no graceful shutdown: it may be hung).
func (pr *process) kill() {
	if pr.cmd.Process != nil {
		_ = pr.cmd.Process.Kill()
	}
	pr.client.Kill()
	if pr.hostSrv != nil {
		pr.hostSrv.Stop()
	}
}

// acquire returns the running process, starting one if there is none or
// the last one exited.
func (p *Plugin) acquire(ctx context.Context) (*process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil && !p.proc.exited() {
		return p.proc, nil
	}
	if p.proc != nil {
		p.proc.kill() // reap and clean up
		p.proc = nil
	}
	if p.m.isClosed() {
		return nil, errors.New("plugin manager is closed")
	}
	proc, err := p.start(ctx)
	if err != nil {
		return nil, err
	}
	p.proc = proc
	return proc, nil
}

// stop ends the running process, if any.
func (p *Plugin) stop() {
	p.mu.Lock()
	proc := p.proc
	p.proc = nil
	p.mu.Unlock()
	if proc != nil {
		proc.kill()
	}
}

// forget drops proc if it is still the current process, and kills it.
func (p *Plugin) forget(proc *process) {
	p.mu.Lock()
	if p.proc == proc {
		p.proc = nil
	}
	p.mu.Unlock()
	proc.kill()
}

// pluginEnv is the environment a plugin process gets: nothing of drbook's
// own (which may hold secrets) beyond what a program needs to run.
func pluginEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func (p *Plugin) start(ctx context.Context) (*process, error) {
	sum, err := hex.DecodeString(p.sha)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.path, ErrUnpinned)
	}
	// #nosec G204 -- the plugin path was pinned by SHA-256 and re-checked just before this start
	cmd := exec.Command(p.path)
	cmd.Env = pluginEnv()
	cmd.Dir = filepath.Dir(p.path)
	// The plugin dies with the runner, even if the runner is SIGKILLed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	st := &tail{max: 8 << 10}
	hp := &hostPlugin{host: p.host}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  wire.Handshake(),
		Plugins:          goplugin.PluginSet{wire.PluginName: hp},
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		SecureConfig:     &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		StartTimeout:     p.m.cfg.StartTimeout,
		Stderr:           st,
		SyncStderr:       st,
		Logger:           newHCLogger(p.m.log, filepath.Base(p.path)),
	})
	proc := &process{client: client, cmd: cmd, stderr: st}
	t0 := time.Now()
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, p.startError(err, st)
	}
	raw, err := rpc.Dispense(wire.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("plugin %s: %w", p.path, err)
	}
	c := raw.(*hostConn)
	proc.conn, proc.hostID, proc.hostSrv = c.conn, c.hostID, c.srv
	// Describe makes the plugin connect to the Host service now.
	dctx, cancel := context.WithTimeout(ctx, p.m.cfg.StartTimeout)
	defer cancel()
	if proc.man, err = wire.Describe(dctx, proc.conn, &wire.DescribeRequest{HostService: c.hostID}); err != nil {
		proc.kill()
		return nil, fmt.Errorf("plugin %s: describe: %w", p.path, err)
	}
	p.m.log.Debug("plugin started", "path", p.path, "pid", cmd.Process.Pid, "took", time.Since(t0))
	if err := ctx.Err(); err != nil {
		proc.kill()
		return nil, err
	}
	return proc, nil
}

func (p *Plugin) startError(err error, st *tail) error {
	msg := err.Error()
	switch {
	case errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("%s: %w: pinned %s (%s)", p.path, ErrPinMismatch, short(p.sha), p.source)
	case strings.Contains(msg, "incompatible API version"), strings.Contains(msg, "incompatible core API version"):
		return fmt.Errorf("plugin %s: %w: drbook speaks plugin protocol %d: %v", p.path, ErrProtocol, wire.ProtocolVersion, err)
	case strings.Contains(msg, "Unsupported plugin protocol"), strings.Contains(msg, "Unrecognized remote plugin message"), strings.Contains(msg, "plugin exited before we could connect"):
		if line := st.reason(); line != "" {
			msg += " (" + line + ")"
		}
		return fmt.Errorf("plugin %s: %w: not a drbook plugin of protocol %d, or it failed to start: %s", p.path, ErrProtocol, wire.ProtocolVersion, msg)
	}
	return fmt.Errorf("plugin %s: start: %w", p.path, err)
}

// hostPlugin is the go-plugin adapter on drbook's side: it serves the Host
// service to the plugin through the broker and hands back the connection.
type hostPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	host *hostService
}

// hostConn is what Dispense returns.
type hostConn struct {
	conn   *grpc.ClientConn
	hostID uint32
	srv    *grpc.Server
}

// GRPCServer implements goplugin.GRPCPlugin; drbook never serves a plugin.
func (hp *hostPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return errors.New("drbook is not a plugin")
}

// GRPCClient implements goplugin.GRPCPlugin.
func (hp *hostPlugin) GRPCClient(_ context.Context, broker *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	// Accept here rather than AcceptAndServe, which logs to the standard
	// logger (the terminal) when the plugin goes away early.
	id := broker.NextId()
	ln, err := broker.Accept(id)
	if err != nil {
		return nil, fmt.Errorf("offer the host service to the plugin: %w", err)
	}
	s := grpc.NewServer()
	wire.RegisterHostServer(s, hp.host)
	go func() { _ = s.Serve(ln) }()
	return &hostConn{conn: conn, hostID: id, srv: s}, nil
}

// tail keeps the last max bytes of a plugin's stderr.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// reason returns the most telling stderr line: a Go panic or fatal error,
// else the last error logged (hclog JSON), else the last plain line.
func (t *tail) reason() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(string(t.buf), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return strings.TrimSpace(l)
		}
	}
	plain := ""
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		var rec struct {
			Level   string `json:"@level"`
			Message string `json:"@message"`
		}
		if strings.HasPrefix(l, "{") && json.Unmarshal([]byte(l), &rec) == nil {
			if rec.Level == "error" && rec.Message != "" {
				return rec.Message
			}
			continue
		}
		if plain == "" {
			plain = l
		}
	}
	return plain
}

// newHCLogger adapts slog for go-plugin: every hclog line becomes a debug
// record.
func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: "plugin." + name, Level: hclog.Debug, Output: &slogWriter{l: l}})
}

type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		if s := strings.TrimSpace(string(line)); s != "" {
			w.l.Debug(s)
		}
	}
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)

// LoadedIn reports whether reg already holds the kinds of the plugin at
// pin's path with pin's hash (loaded by any Manager).
func LoadedIn(reg *steps.Registry, pin Pin) bool {
	abs, err := filepath.Abs(pin.Path)
	if err != nil {
		return false
	}
	for _, n := range reg.KindNames() {
		if k, ok := reg.Get(n); ok {
			if pk, ok := k.(*kind); ok && pk.p.path == abs && pk.p.sha == pin.SHA256 {
				return true
			}
		}
	}
	return false
}
