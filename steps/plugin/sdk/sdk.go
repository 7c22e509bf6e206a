// Package sdk is what a drbook step plugin imports. A plugin is a separate
// executable that provides step kinds; drbook starts it with
// hashicorp/go-plugin (gRPC, versioned handshake), asks it which kinds it has
// and runs steps through it. A minimal plugin (steps/plugin/testdata/hello):
//
//	type hello struct{}
//
//	func (hello) Info() sdk.KindInfo {
//		return sdk.KindInfo{
//			Name:    "hello.say",
//			Params:  sdk.Object(sdk.Props{"to": sdk.String("Who to greet.")}, "to"),
//			Outputs: []sdk.Output{{Name: "kernel"}},
//			Targets: sdk.TargetsRequired,
//		}
//	}
//
//	func (hello) Run(ctx context.Context, req *sdk.Request) (sdk.Result, error) {
//		to, err := req.String("to")
//		if err != nil {
//			return sdk.Result{}, err
//		}
//		var out strings.Builder
//		code, err := req.Target.Run(ctx, "uname -s", nil, &out, req.Stderr)
//		if err != nil {
//			return sdk.Result{}, err
//		}
//		if code != 0 {
//			return sdk.Result{}, &sdk.ExitError{Code: code}
//		}
//		fmt.Fprintf(req.Stdout, "hello %s from %s\n", to, req.Target.Name)
//		return sdk.Result{Outputs: map[string]string{"kernel": strings.TrimSpace(out.String())}}, nil
//	}
//
//	func main() { sdk.Serve(sdk.Info{Name: "hello", Version: "0.1.0"}, hello{}) }
//
// Rules for plugins: never write to stdout (go-plugin's handshake uses it;
// step output goes to Request.Stdout/Stderr, logs to Request.Logger, which
// writes to stderr); honour ctx (it carries the step's timeout); run commands
// on nodes only through Request.Target / Request.Node, which use the runner's
// own verified transport, never credentials of the plugin's own.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/drbook/drbook/steps/plugin/internal/wire"
)

// ProtocolVersion is the plugin protocol this SDK speaks. drbook refuses a
// plugin built against another version at load time.
const ProtocolVersion = wire.ProtocolVersion

// Target requirements of a kind (same meaning as in runbooks).
const (
	TargetsRequired = "required"
	TargetsOptional = "optional"
	TargetsNone     = "none"
)

// Info names a plugin and its version (shown by `drbook plugins list`).
type Info struct {
	Name    string
	Version string
}

// KindInfo describes a step kind.
type KindInfo struct {
	// Name is the `run:` value, conventionally "plugin.verb".
	Name        string
	Description string
	// Params is a JSON Schema for the step's `with:` mapping (drbook's
	// subset: type, properties, required, additionalProperties, items, enum,
	// minimum, maximum, minItems, pattern). `drbook lint` checks steps
	// against it with file:line:col. Nil accepts no parameters.
	Params map[string]any
	// Outputs the kind produces; secret ones are masked and sealed.
	Outputs []Output
	// Targets is TargetsRequired, TargetsOptional or TargetsNone.
	Targets string
	// Idempotent kinds are re-run when a resume finds them interrupted.
	Idempotent bool
	// SummaryParams are parameters shown in the plan and confirmations
	// (lint refuses a secret templated into them).
	SummaryParams []string
}

// Output is one output of a kind.
type Output struct {
	Name   string
	Secret bool
}

// Kind is a step kind implemented by a plugin.
type Kind interface {
	Info() KindInfo
	// Run performs the step. A returned error fails it; wrap ErrBadParams,
	// ErrTimeout or return an *ExitError to say how.
	Run(ctx context.Context, req *Request) (Result, error)
}

// Result is what a successful step produced.
type Result struct {
	Outputs map[string]string
	// SecretOutputs names outputs to mask and seal besides those declared
	// secret in KindInfo.
	SecretOutputs []string
	// Message is a one-line summary for the record.
	Message string
}

// Errors a kind returns (wrapped); drbook maps them onto its own.
var (
	// ErrBadParams marks invalid parameters.
	ErrBadParams = errors.New("bad parameters")
	// ErrTimeout marks an expectation that never held in time.
	ErrTimeout = errors.New("timed out")
	// ErrTransport marks a failure of the runner's transport to the node
	// (connection lost, session refused): the command may have run.
	ErrTransport = errors.New("transport failed")
	// ErrNotStarted marks a transport failure before the command reached
	// the node: it surely did not run.
	ErrNotStarted = errors.New("command not started")
)

// ExitError reports a command that exited non-zero.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("command failed with exit status %d", e.Code) }

// Serve runs the plugin: it answers drbook's handshake and serves the kinds
// until drbook ends it. It never returns. Call it from main.
func Serve(info Info, kinds ...Kind) {
	logger := hclog.New(&hclog.LoggerOptions{Name: info.Name, Output: os.Stderr, JSONFormat: true, Level: hclog.Debug})
	srv := &server{info: info, kinds: map[string]Kind{}, logger: logger, hosts: map[uint32]*grpc.ClientConn{}}
	for _, k := range kinds {
		srv.order = append(srv.order, k)
		srv.kinds[k.Info().Name] = k
	}
	go watchParent(os.Getppid(), logger)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: wire.Handshake(),
		Plugins:         plugin.PluginSet{wire.PluginName: &grpcPlugin{srv: srv}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
	os.Exit(0)
}

// watchParent ends the plugin when drbook is gone (re-parented), so a
// plugin never outlives its runner even if the runner was killed.
func watchParent(ppid int, logger hclog.Logger) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != ppid {
			logger.Error("drbook went away; exiting")
			os.Exit(3)
		}
	}
}

// grpcPlugin is the go-plugin adapter; the plugin side only serves.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *server
}

// GRPCServer implements plugin.GRPCPlugin.
func (p *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	p.srv.broker = broker
	wire.RegisterPluginServer(s, p.srv)
	return nil
}

// GRPCClient implements plugin.GRPCPlugin; plugins are never clients.
func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("a drbook plugin has no client side")
}

type server struct {
	info   Info
	kinds  map[string]Kind
	order  []Kind
	logger hclog.Logger
	broker *plugin.GRPCBroker

	mu    sync.Mutex
	hosts map[uint32]*grpc.ClientConn
}

var _ wire.PluginServer = (*server)(nil)

// Describe implements wire.PluginServer. It connects to drbook's Host
// service first.
func (s *server) Describe(_ context.Context, req *wire.DescribeRequest) (*wire.Manifest, error) {
	if req.HostService != 0 {
		if _, err := s.host(req.HostService); err != nil {
			return nil, err
		}
	}
	m := &wire.Manifest{Name: s.info.Name, Version: s.info.Version}
	for _, k := range s.order {
		i := k.Info()
		outs := make([]wire.Output, len(i.Outputs))
		for j, o := range i.Outputs {
			outs[j] = wire.Output(o)
		}
		m.Kinds = append(m.Kinds, wire.KindInfo{Name: i.Name, Description: i.Description, Params: i.Params, Outputs: outs,
			Targets: i.Targets, Idempotent: i.Idempotent, SummaryParams: i.SummaryParams})
	}
	return m, nil
}

// host returns the connection to drbook's Host service (one per process).
func (s *server) host(id uint32) (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.hosts[id]; ok {
		return c, nil
	}
	c, err := s.broker.Dial(id)
	if err != nil {
		return nil, fmt.Errorf("connect to drbook's host service: %w", err)
	}
	s.hosts[id] = c
	return c, nil
}

// Run implements wire.PluginServer.
func (s *server) Run(ctx context.Context, in *wire.RunRequest, send func(wire.RunEvent) error) (*wire.Result, error) {
	k, ok := s.kinds[in.Kind]
	if !ok {
		return &wire.Result{ExitCode: -1, Error: fmt.Sprintf("plugin %s has no step kind %q", s.info.Name, in.Kind)}, nil
	}
	out := &eventWriter{send: send}
	defer out.close()
	req := &Request{
		RunID: in.RunID, StepID: in.StepID, Attempt: in.Attempt, Params: in.Params,
		Stdout: out.stream(false), Stderr: out.stream(true),
		Logger: s.logger.Named(in.Kind).With("step", in.StepID),
		server: s, hostID: in.HostService, session: in.Session,
	}
	if req.Params == nil {
		req.Params = map[string]any{}
	}
	if in.Target != nil {
		req.Target = &Target{Name: in.Target.Name, Host: in.Target.Host, Labels: in.Target.Labels, req: req}
	}
	res, err := runKind(ctx, k, req)
	if err != nil {
		r := &wire.Result{ExitCode: -1, Error: err.Error()}
		var ee *ExitError
		switch {
		case errors.As(err, &ee):
			r.ExitCode, r.ErrorKind = ee.Code, wire.ErrorExit
		case errors.Is(err, ErrBadParams):
			r.ErrorKind = wire.ErrorParams
		case errors.Is(err, ErrTimeout):
			r.ErrorKind = wire.ErrorTimeout
		}
		return r, nil
	}
	return &wire.Result{Outputs: res.Outputs, Secret: res.SecretOutputs, Message: res.Message}, nil
}

// runKind runs a kind, turning a panic in it into a failed step.
func runKind(ctx context.Context, k Kind, req *Request) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			req.Logger.Error("step kind panicked", "panic", fmt.Sprint(p))
			err = fmt.Errorf("plugin step kind panicked: %v", p)
		}
	}()
	return k.Run(ctx, req)
}

// eventWriter sends step output as Run events, one writer at a time, and
// drops writes once the step has ended.
type eventWriter struct {
	mu     sync.Mutex
	closed bool
	send   func(wire.RunEvent) error
}

func (w *eventWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

func (w *eventWriter) stream(stderr bool) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.closed || len(p) == 0 {
			return len(p), nil
		}
		b := append([]byte(nil), p...)
		ev := wire.RunEvent{Stdout: b}
		if stderr {
			ev = wire.RunEvent{Stderr: b}
		}
		if err := w.send(ev); err != nil {
			return 0, err
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
