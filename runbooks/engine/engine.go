// Package engine walks a runbook run: it resolves each step's targets,
// checkpoints every step execution in the store before and after it runs,
// runs targets in parallel (bounded by serial:), applies retries and failure
// policies, asks the operator where a person must decide, and emits typed
// events that the TUI and the headless printer render.
//
// Resume rebuilds a run from its recorded events: completed executions are
// never run again, interrupted ones are decided by the step's check:, by the
// kind's idempotency, or by the operator (--redo/--skip when headless).
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
)

// Store is the checkpoint store the engine writes to; *state.DB implements it.
type Store interface {
	CreateRun(ctx context.Context, r *state.Run) error
	Append(ctx context.Context, ev state.Event) (state.Event, error)
	Events(ctx context.Context, runID string) ([]state.Event, error)
	GetRun(ctx context.Context, id string) (state.Run, error)
	Lock(ctx context.Context, runID string) (func() error, error)
	// Verify recomputes a run's hash chain; an error wraps
	// state.ErrChainBroken and names the first bad seq.
	Verify(ctx context.Context, runID string) (state.VerifyReport, error)
	// Seal and Unseal protect a secret of run runID with the run's data key,
	// which the store shreds when the run ends for good.
	Seal(ctx context.Context, runID, plain string) (string, error)
	Unseal(ctx context.Context, runID, s string) (string, error)
}

var _ Store = (*state.DB)(nil)

// Dialer opens a transport to a node.
type Dialer func(ctx context.Context, node *runbooks.Node) (transport.Transport, error)

// Config is what a run needs.
type Config struct {
	Runbook   *runbooks.Runbook
	Inventory *runbooks.Inventory
	Registry  *steps.Registry
	Store     Store
	Dial      Dialer
	Operator  steps.Operator
	// Observer receives every event; may be nil.
	Observer func(Event)
	Mode     string // "interactive", "headless", "rehearsal"
	Labels   map[string]string
	Logger   *slog.Logger
	// Answers is the answers file, if any: Start records its literal
	// answers to non-secret input steps, so a resume needs not the file.
	Answers *runbooks.Answers
}

// Errors that end a run.
var (
	// ErrStepFailed is wrapped when a step failed and the run stopped.
	ErrStepFailed = errors.New("step failed")
	// ErrInterrupted is wrapped when the run was interrupted (Ctrl-C, SIGTERM);
	// it can be resumed.
	ErrInterrupted = errors.New("run interrupted")
	// ErrAborted is wrapped when the operator aborted the run.
	ErrAborted = errors.New("run aborted by the operator")
	// ErrNeedsDecision is wrapped when a resume found an interrupted step it
	// may not re-run by itself and nobody can decide (headless).
	ErrNeedsDecision = errors.New("operator decision needed")
	// ErrRunbookChanged is wrapped when resuming with a runbook or inventory
	// that differs from the recorded one.
	ErrRunbookChanged = errors.New("runbook or inventory changed since the run started")
	// ErrRunFinished is wrapped when resuming a run that already finished.
	ErrRunFinished = errors.New("run already finished")
)

// Outcome summarises a finished (or stopped) run.
type Outcome struct {
	RunID   string
	Status  state.Status
	Machine time.Duration
	Human   time.Duration
}

// run is the state of one walk.
type run struct {
	// lockedErr is the first checkpoint error that was the database being
	// locked by another process; later checkpoints fail at once with it.
	lockedErr atomic.Pointer[error]
	cfg       Config
	id        string
	scope     *runbooks.RunScope
	mask      *masker
	pool      *transport.Pool
	log       *slog.Logger
	started   time.Time

	emitMu  sync.Mutex
	recMu   sync.Mutex
	humanMu sync.Mutex
	human   time.Duration

	// dialed receives the result of the dials predial started; stopDials
	// gives them up (once preflight has their result, it changes nothing).
	dialed    chan error
	stopDials context.CancelFunc

	// prior holds what the record says of each step, on resume.
	prior map[string]*priorStep
	opts  ResumeOptions

	// units maps, for each for_each step, an execution key (the item) to
	// the node it runs on.
	unitsMu sync.Mutex
	units   map[string]map[string]string
}

type priorStep struct {
	// byTarget: last recorded execution per target.
	byTarget map[string]*state.Exec
	skipped  bool
	reason   string
	// guard: skipped because its when: was false (only the guard read
	// inputs).
	guard bool
}

func newRun(cfg Config) (*run, error) {
	if cfg.Runbook == nil || cfg.Registry == nil || cfg.Store == nil || cfg.Operator == nil {
		return nil, errors.New("engine: runbook, registry, store and operator are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Mode == "" {
		cfg.Mode = "headless"
	}
	r := &run{cfg: cfg, mask: &masker{}, log: cfg.Logger, prior: map[string]*priorStep{}}
	r.pool = transport.NewPool(func(ctx context.Context, name string) (transport.Transport, error) {
		if cfg.Inventory == nil {
			return nil, fmt.Errorf("no inventory: cannot reach node %q", name)
		}
		n := cfg.Inventory.Node(name)
		if n == nil {
			return nil, fmt.Errorf("unknown node %q", name)
		}
		if cfg.Dial == nil {
			return nil, errors.New("engine: no dialer configured")
		}
		return cfg.Dial(ctx, n)
	})
	return r, nil
}

func (r *run) emit(ev Event) {
	if r.cfg.Observer == nil {
		return
	}
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.cfg.Observer(ev)
}

// record appends an event durably. Records are written even while the run's
// context is being cancelled, so an interrupt is recorded as such.
func (r *run) record(ctx context.Context, typ state.EventType, stepID, target string, attempt int, payload any) error {
	ev, err := state.NewEvent(r.id, typ, payload)
	if err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	ev.StepID, ev.Target, ev.Attempt = stepID, target, attempt
	ev.Time = time.Now().UTC()
	if err := r.lockedErr.Load(); err != nil {
		// Another process held the database past the busy timeout once:
		// every later checkpoint of this run would wait as long again and
		// fail the same way, so fail at once (the run stops on the first).
		return fmt.Errorf("checkpoint %s: %w", typ, *err)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// Append and hand over under one lock, so observers get the events in
	// seq order even when targets run in parallel.
	r.recMu.Lock()
	defer r.recMu.Unlock()
	appended, err := r.cfg.Store.Append(wctx, ev)
	if err != nil {
		if errors.Is(err, state.ErrLocked) {
			r.lockedErr.CompareAndSwap(nil, &err)
		}
		return fmt.Errorf("checkpoint %s: %w", typ, err)
	}
	r.emit(Recorded{Event: appended})
	return nil
}

// Start creates a new run, records its inputs, and walks it to the end.
// inputs are the resolved values of the runbook's inputs.
func Start(ctx context.Context, cfg Config, inputs map[string]runbooks.Value) (Outcome, error) {
	r, err := newRun(cfg)
	if err != nil {
		return Outcome{}, err
	}
	defer r.pool.Close()
	// The SSH handshakes (most of the time before the first step) overlap
	// the creation of the run's record; preflight waits for them.
	r.predial(ctx)
	defer r.cancelDials() // before the pool closes: it waits for dials in progress
	host, _ := os.Hostname()
	sr := &state.Run{
		RunbookName: cfg.Runbook.Name, RunbookTitle: cfg.Runbook.Title,
		RunbookPath: cfg.Runbook.File, RunbookSHA256: cfg.Runbook.SHA256, RunbookSource: cfg.Runbook.Source,
		Mode: cfg.Mode, Host: host, PID: os.Getpid(), Labels: cfg.Labels,
		StepAnswers: recordableStepAnswers(cfg.Runbook, cfg.Answers),
	}
	sr.WorkDir, _ = os.Getwd()
	if cfg.Inventory != nil {
		sr.InventoryPath, sr.InventorySHA256, sr.InventorySource = cfg.Inventory.File, cfg.Inventory.SHA256, cfg.Inventory.Source
	}
	if err := cfg.Store.CreateRun(ctx, sr); err != nil {
		return Outcome{}, fmt.Errorf("create run: %w", err)
	}
	r.id = sr.ID
	// CreateRun wrote run.created: observers get it like every other event.
	if evs, err := cfg.Store.Events(ctx, r.id); err == nil && len(evs) > 0 {
		r.emit(Recorded{Event: evs[0]})
	}
	release, err := cfg.Store.Lock(ctx, r.id)
	if err != nil {
		return Outcome{RunID: r.id}, err
	}
	defer release()
	r.scope = r.newScope(map[string]runbooks.Value{})
	for _, in := range cfg.Runbook.Inputs {
		v, ok := inputs[in.Name]
		if !ok {
			continue
		}
		if err := r.recordAnswer(ctx, in.Name, v); err != nil {
			return Outcome{RunID: r.id}, err
		}
	}
	return r.walk(ctx, false)
}

// recordableStepAnswers returns the answers to input steps that may be kept
// in clear in the record: literal values (not {env:} or {file:}) of input
// steps whose type is not secret.
func recordableStepAnswers(rb *runbooks.Runbook, a *runbooks.Answers) map[string]string {
	if a == nil || len(a.Steps) == 0 {
		return nil
	}
	out := map[string]string{}
	for i := range rb.Steps {
		s := &rb.Steps[i]
		ans, ok := a.Steps[s.ID]
		if !ok || s.Run != "input" {
			continue
		}
		if t, _ := s.With.Values["type"].(string); t == string(runbooks.InputSecret) {
			continue
		}
		switch v := ans.Value.(type) {
		case string, bool, int, int64, uint64, float64:
			out[s.ID] = fmt.Sprint(v)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (r *run) newScope(inputs map[string]runbooks.Value) *runbooks.RunScope {
	return &runbooks.RunScope{
		RunID: r.id, Runbook: r.cfg.Runbook.Name, Mode: r.cfg.Mode,
		Inputs: inputs, Steps: map[string]*runbooks.StepValues{}, Inventory: r.cfg.Inventory,
	}
}

func (r *run) recordAnswer(ctx context.Context, name string, v runbooks.Value) error {
	return r.recordAnswerAs(ctx, name, v, state.Answer{})
}

// recordAnswerAs records an input's value; meta carries the who and why of a
// change made on resume.
func (r *run) recordAnswerAs(ctx context.Context, name string, v runbooks.Value, meta state.Answer) error {
	b, err := json.Marshal(v.V)
	if err != nil {
		return fmt.Errorf("encode input %s: %w", name, err)
	}
	val := string(b)
	if v.Secret {
		if s, ok := v.V.(string); ok {
			r.mask.add(s)
		}
		if val, err = r.cfg.Store.Seal(ctx, r.id, val); err != nil {
			return fmt.Errorf("seal input %s: %w", name, err)
		}
	}
	r.scope.Inputs[name] = v
	meta.Name, meta.Value, meta.Secret = name, val, v.Secret
	return r.record(ctx, state.EvAnswer, "", "", 0, meta)
}

// walk runs every step from the first one not yet done.
func (r *run) walk(ctx context.Context, resumed bool) (Outcome, error) {
	r.started = time.Now()
	ids := make([]string, len(r.cfg.Runbook.Steps))
	for i, s := range r.cfg.Runbook.Steps {
		ids[i] = s.ID
	}
	inv := ""
	if r.cfg.Inventory != nil {
		inv = r.cfg.Inventory.File
	}
	r.emit(RunStarted{RunID: r.id, Runbook: r.cfg.Runbook.Name, Title: r.cfg.Runbook.Title, Inventory: inv, Resumed: resumed, Time: time.Now(), Steps: ids})
	runErr := r.precheck()
	if runErr == nil {
		runErr = r.preflight(ctx)
	}
	for i := range r.cfg.Runbook.Steps {
		if runErr != nil {
			break
		}
		step := &r.cfg.Runbook.Steps[i]
		runErr = r.doStep(ctx, step)
	}
	return r.finish(ctx, runErr)
}

func (r *run) finish(ctx context.Context, runErr error) (Outcome, error) {
	status := state.StatusSucceeded
	switch {
	case runErr == nil:
	case errors.Is(runErr, ErrInterrupted), errors.Is(runErr, context.Canceled), errors.Is(runErr, ErrNeedsDecision):
		status = state.StatusInterrupted
	case errors.Is(runErr, ErrAborted):
		status = state.StatusAborted
	default:
		status = state.StatusFailed
	}
	if status == state.StatusInterrupted && !errors.Is(runErr, ErrInterrupted) && !errors.Is(runErr, ErrNeedsDecision) {
		runErr = fmt.Errorf("%w: %w", ErrInterrupted, runErr)
	}
	r.humanMu.Lock()
	human := r.human
	r.humanMu.Unlock()
	wall := time.Since(r.started)
	out := Outcome{RunID: r.id, Status: status, Machine: wall - human, Human: human}
	msg := ""
	if runErr != nil {
		msg = r.mask.mask(runErr.Error())
	}
	if err := r.record(ctx, state.EvRunFinished, "", "", 0, state.RunFinished{
		Status: status, MachineMS: out.Machine.Milliseconds(), HumanMS: human.Milliseconds(), Error: msg,
	}); err != nil && runErr == nil {
		runErr = err
	}
	r.emit(RunFinished{RunID: r.id, Status: status, Err: msg, Machine: out.Machine, Human: human, Time: time.Now()})
	if runErr != nil {
		return out, &maskedError{msg: msg, err: runErr}
	}
	return out, nil
}

// maskedError keeps the error chain but prints the masked message.
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// operator wraps every operator call to measure human time and record it.
func (r *run) waitOperator(ctx context.Context, kind, stepID, prompt string, call func() (string, string, error)) error {
	r.emit(NeedsOperator{Kind: kind, StepID: stepID, Prompt: r.mask.mask(prompt), Time: time.Now()})
	t0 := time.Now()
	resp, by, err := call()
	waited := time.Since(t0)
	r.humanMu.Lock()
	r.human += waited
	r.humanMu.Unlock()
	resp = r.mask.mask(resp)
	r.emit(WaitOver{Kind: kind, StepID: stepID, Response: resp, Waited: waited, Time: time.Now()})
	if errors.Is(err, steps.ErrNoOperator) || ctx.Err() != nil {
		return err
	}
	if rerr := r.record(ctx, state.EvOperatorWait, stepID, "", 0, state.OperatorWait{
		Kind: kind, Prompt: r.mask.mask(prompt), Response: resp, By: by, DurationMS: waited.Milliseconds(),
	}); rerr != nil {
		return rerr
	}
	return err
}

// Operator returns the user name recorded as "who" for local decisions.
func Operator() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}

func joinTargets(ts []string) string { return strings.Join(ts, ",") }

// predial starts dialling every inventory node in the background (once);
// preflight takes its result.
func (r *run) predial(ctx context.Context) {
	if r.dialed != nil || r.cfg.Inventory == nil || r.cfg.Dial == nil {
		return
	}
	var names []string
	for _, n := range r.cfg.Inventory.Nodes {
		names = append(names, n.Name)
	}
	done := make(chan error, 1)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	r.dialed, r.stopDials = done, cancel
	go func() {
		done <- r.pool.DialAll(dctx, names, 16)
	}()
}

// cancelDials gives up the dials predial started, if any.
func (r *run) cancelDials() {
	if r.stopDials != nil {
		r.stopDials()
	}
}

// preflight connects to every inventory node before the first step, so a host
// key that is unknown or changed stops the run before anything runs anywhere.
// A node that does not answer is only reported: in a disaster some are down.
// The dials are those predial started (Start starts them before it creates
// the run's record).
func (r *run) preflight(ctx context.Context) error {
	r.predial(ctx)
	if r.dialed == nil {
		return nil
	}
	err := <-r.dialed
	r.cancelDials()
	if err == nil {
		return nil
	}
	var refused []string
	for _, e := range unwrapJoined(err) {
		if errors.Is(e, transport.ErrUnknownHost) || errors.Is(e, transport.ErrHostKeyMismatch) {
			refused = append(refused, e.Error())
			continue
		}
		r.emit(Notice{Text: "unreachable (steps on it will fail): " + e.Error(), Time: time.Now()})
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: nothing was run:\n%s", ErrHostKeyRefused, strings.Join(refused, "\n"))
	}
	return nil
}

// ErrHostKeyRefused is wrapped when a node's SSH host key is unknown or changed.
var ErrHostKeyRefused = errors.New("host key refused")

func unwrapJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			if e != nil {
				out = append(out, e)
			}
		}
		return out
	}
	return []error{err}
}
