package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/plugin/internal/wire"
	"github.com/drbook/drbook/steps/transport"
)

// kind is a plugin's step kind as the engine sees it.
type kind struct {
	p    *Plugin
	info wire.KindInfo
}

var _ steps.Kind = (*kind)(nil)

// Info implements steps.Kind.
func (k *kind) Info() runbooks.KindInfo {
	outs := make([]runbooks.OutputInfo, len(k.info.Outputs))
	for i, o := range k.info.Outputs {
		outs[i] = runbooks.OutputInfo{Name: o.Name, Secret: o.Secret}
	}
	targets := k.info.Targets
	if targets == "" {
		targets = runbooks.TargetsOptional
	}
	desc := k.info.Description
	if desc == "" {
		desc = "Plugin step kind."
	}
	return runbooks.KindInfo{
		Name:          k.info.Name,
		Description:   fmt.Sprintf("%s (plugin %s %s)", desc, k.p.man.Name, k.p.man.Version),
		Params:        k.info.Params,
		Outputs:       outs,
		Targets:       targets,
		Idempotent:    k.info.Idempotent,
		CommandParams: k.info.SummaryParams,
	}
}

// Summary implements steps.Kind: the kind and its summary parameters, which
// lint keeps free of secrets.
func (k *kind) Summary(x *steps.Exec) string {
	var b strings.Builder
	b.WriteString(k.info.Name)
	for _, n := range k.info.SummaryParams {
		if v, ok := x.Params[n]; ok && v != nil {
			fmt.Fprintf(&b, " %s=%v", n, v)
		}
	}
	return b.String()
}

// Run implements steps.Kind.
func (k *kind) Run(ctx context.Context, x *steps.Exec) (steps.Result, error) {
	fail := steps.Result{ExitCode: -1}
	proc, err := k.p.acquire(ctx)
	if err != nil {
		return fail, err
	}
	session := k.p.host.open(ctx, x)
	defer k.p.host.close(session)
	req := &wire.RunRequest{Kind: k.info.Name, Params: x.Params, Attempt: x.Attempt, RunID: x.RunID,
		HostService: proc.hostID, Session: session}
	if x.Step != nil {
		req.StepID = x.Step.ID
	}
	if x.Target != nil {
		req.Target = &wire.Node{Name: x.Target.Name, Host: x.Target.Host, Labels: x.Target.Labels}
	}
	var mu sync.Mutex // stream events arrive on one goroutine; keep writes ordered anyway
	res, err := wire.Run(ctx, proc.conn, req, func(ev wire.RunEvent) {
		mu.Lock()
		defer mu.Unlock()
		if len(ev.Stdout) > 0 && x.Stdout != nil {
			_, _ = x.Stdout.Write(ev.Stdout)
		}
		if len(ev.Stderr) > 0 && x.Stderr != nil {
			_, _ = x.Stderr.Write(ev.Stderr)
		}
	})
	if err != nil {
		return fail, k.callError(ctx, proc, err)
	}
	out := steps.Result{ExitCode: res.ExitCode, Outputs: res.Outputs, SecretOutputs: res.Secret, Message: res.Message}
	for _, o := range k.info.Outputs {
		if o.Secret {
			out.SecretOutputs = append(out.SecretOutputs, o.Name)
		}
	}
	if res.Error == "" {
		for _, o := range k.info.Outputs {
			if _, ok := out.Outputs[o.Name]; !ok {
				return out, fmt.Errorf("%w: %q (plugin %s)", steps.ErrMissingOutput, o.Name, k.p.man.Name)
			}
		}
		return out, nil
	}
	switch res.ErrorKind {
	case wire.ErrorExit:
		return out, fmt.Errorf("%s: %w", res.Error, &steps.ExitError{Code: res.ExitCode})
	case wire.ErrorParams:
		return out, fmt.Errorf("%w: %s", steps.ErrBadParams, strings.TrimPrefix(res.Error, steps.ErrBadParams.Error()+": "))
	case wire.ErrorTimeout:
		return out, fmt.Errorf("%w: %s", steps.ErrTimeout, strings.TrimPrefix(res.Error, steps.ErrTimeout.Error()+": "))
	}
	return out, errors.New(res.Error)
}

// callError explains a failed Run call: the step's time ran out (the plugin
// is killed: it may still be working), or the process died, or the
// connection failed.
func (k *kind) callError(ctx context.Context, proc *process, err error) error {
	name := filepath.Base(k.p.path)
	if ctx.Err() != nil {
		k.p.forget(proc)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("plugin %s: %w: %w", name, ErrHung, ctx.Err())
		}
		return fmt.Errorf("plugin %s: step cancelled, plugin process killed: %w", name, ctx.Err())
	}
	// The stream may break a moment before the process is reaped.
	deadline := time.Now().Add(2 * time.Second)
	for !proc.exited() && time.Now().Before(deadline) {
		if s, ok := status.FromError(err); ok && s.Code() != codes.Unavailable && s.Code() != codes.Canceled && s.Code() != codes.Internal {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if proc.exited() {
		k.p.forget(proc) // reaps it: stderr fully read, exit status known
		why := proc.stderr.reason()
		if why == "" {
			why = "no message on stderr"
		}
		if ps := proc.cmd.ProcessState; ps != nil {
			why += " (" + ps.String() + ")"
		}
		return fmt.Errorf("plugin %s: %w: %s", name, ErrCrashed, why)
	}
	return fmt.Errorf("plugin %s: %w", name, err)
}

// hostService serves the Host service: commands on a session's nodes.
type hostService struct {
	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	ctx context.Context // the step's context: its end cancels commands
	x   *steps.Exec
}

var _ wire.HostServer = (*hostService)(nil)

func newHostService() *hostService {
	return &hostService{sessions: map[string]*session{}}
}

func (h *hostService) open(ctx context.Context, x *steps.Exec) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	h.mu.Lock()
	h.sessions[id] = &session{ctx: ctx, x: x}
	h.mu.Unlock()
	return id
}

func (h *hostService) close(id string) {
	h.mu.Lock()
	delete(h.sessions, id)
	h.mu.Unlock()
}

// Exec implements wire.HostServer.
func (h *hostService) Exec(ctx context.Context, req *wire.ExecRequest, send func(wire.ExecEvent) error) wire.ExecEvent {
	h.mu.Lock()
	s := h.sessions[req.Session]
	h.mu.Unlock()
	if s == nil {
		return wire.ExecEvent{Error: "no such step session (the step has ended)", NotStarted: true}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	x := s.x
	node, tr := x.Target, x.Transport
	if req.Node != "" && (x.Target == nil || req.Node != x.Target.Name) {
		if x.Dial == nil {
			return wire.ExecEvent{Error: fmt.Sprintf("cannot reach node %q from this step", req.Node), NotStarted: true}
		}
		var err error
		if node, tr, err = x.Dial(ctx, req.Node); err != nil {
			return wire.ExecEvent{Error: fmt.Sprintf("connect to %s: %v", req.Node, err), NotStarted: true}
		}
	}
	if tr == nil || node == nil {
		return wire.ExecEvent{Error: "this step has no target node", NotStarted: true}
	}
	env := map[string]string{}
	maps.Copy(env, node.Env)
	maps.Copy(env, req.Env)
	if x.Stderr != nil {
		// The record shows what the plugin ran where (masked like all output).
		fmt.Fprintf(x.Stderr, "[plugin] %s$ %s\n", node.Name, req.Line)
	}
	var serr error
	out := func(stderr bool) writerFunc {
		return func(p []byte) (int, error) {
			if serr != nil {
				return 0, serr
			}
			ev := wire.ExecEvent{Stdout: append([]byte(nil), p...)}
			if stderr {
				ev = wire.ExecEvent{Stderr: ev.Stdout}
			}
			if serr = send(ev); serr != nil {
				cancel() // the plugin is gone: stop the command
				return 0, serr
			}
			return len(p), nil
		}
	}
	code, err := tr.Run(ctx, transport.Command{Line: req.Line, Env: env, Stdout: out(false), Stderr: out(true)})
	if err != nil {
		return wire.ExecEvent{Error: err.Error(), NotStarted: errors.Is(err, transport.ErrNotStarted)}
	}
	return wire.ExecEvent{Exit: &code}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
