// Package engine walks a runbook run: it resolves each step's targets,
// checkpoints every step execution in the store before and after it runs,
// runs targets in parallel (bounded by serial:), applies retries and failure
// policies, and asks the operator where a person must decide. It hands each
// event it appends to the record, and the few that live only in memory
// (package state/runlog), to its observer: the TUI and the headless
// printer fold them as replay folds the record.
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

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
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
	// Observer receives every event (package runlog): each recorded one
	// as appended, and the in-memory ones; may be nil.
	Observer func(runlog.Event)
	Mode     string // "interactive", "headless", "rehearsal"
	Labels   map[string]string
	Logger   *slog.Logger
	// Answers is the answers file, if any: Start records its literal
	// answers to non-secret input steps, so a resume needs not the file.
	Answers *runbooks.Answers
	// Signer, when set, signs the record's head (state.SignedMessage) at
	// every confirmed danger step and at the end of every run segment;
	// each signature is appended as a record.signed event. Nil: the run
	// (or this segment) is recorded unsigned.
	Signer *opsig.Signer
	// UnsignedNotice, when set and Signer is nil, is shown to observers
	// as a Notice when the run starts (the TUI's "recorded unsigned").
	UnsignedNotice string
	// Actor is who drives this run segment; zero means this process's
	// user and host (state.CurrentActor), with the Signer's fingerprint.
	// Tests set it to stand for another person.
	Actor state.Actor
	// Notify, when set, receives every event after Observer: the hook of
	// run notifications (see Notifier).
	Notify Notifier
	// RTO overrides the runbook's rto: budget (a drill's rto_budget); 0
	// keeps the runbook's. RTOSince is when the recovery clock started (a
	// drill's disaster); zero: when the run was created. The budget is
	// recorded in run.created (state.RTOBudget), and crossing it as a note
	// of kind NoteRTOCrossed.
	RTO      time.Duration
	RTOSince time.Time
	// Approval configures the two-person rule (steps with approvals:).
	Approval ApprovalConfig
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
	// createdAt is when the run was created (set on resume); rto the
	// budget timer.
	createdAt time.Time
	rto       rtoClock
	notify    notifyState

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

	// actor drives this segment; headSeq and headHash are the last
	// appended event's (under recMu), what signHead signs.
	actor    state.Actor
	headSeq  int64
	headHash string
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
	r := &run{cfg: cfg, mask: &masker{}, log: cfg.Logger, prior: map[string]*priorStep{}, actor: cfg.Actor}
	if r.actor.IsZero() {
		fp := ""
		if cfg.Signer != nil {
			fp = cfg.Signer.Fingerprint()
		}
		r.actor = state.CurrentActor(fp)
	}
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

func (r *run) emit(ev runlog.Event) {
	if r.cfg.Observer == nil && r.cfg.Notify == nil {
		return
	}
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	if r.cfg.Observer != nil {
		r.cfg.Observer(ev)
	}
	if r.cfg.Notify != nil {
		r.cfg.Notify.Notify(ev)
	}
}

// record appends an event durably. Records are written even while the run's
// context is being cancelled, so an interrupt is recorded as such.
func (r *run) record(ctx context.Context, typ state.EventType, stepID, target string, attempt int, payload any) error {
	_, err := r.recordEv(ctx, typ, stepID, target, attempt, payload)
	return err
}

// recordEv is record, returning the appended event.
func (r *run) recordEv(ctx context.Context, typ state.EventType, stepID, target string, attempt int, payload any) (state.Event, error) {
	ev, err := state.NewEvent(r.id, typ, payload)
	if err != nil {
		return state.Event{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	ev.StepID, ev.Target, ev.Attempt = stepID, target, attempt
	ev.Time = time.Now().UTC()
	if err := r.lockedErr.Load(); err != nil {
		// Another process held the database past the busy timeout once:
		// every later checkpoint of this run would wait as long again and
		// fail the same way, so fail at once (the run stops on the first).
		return state.Event{}, fmt.Errorf("checkpoint %s: %w", typ, *err)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// Append and hand over under one lock, so observers get the events in
	// seq order even when targets run in parallel.
	r.recMu.Lock()
	defer r.recMu.Unlock()
	return r.appendLocked(wctx, ev)
}

// appendLocked appends ev and hands it to observers; recMu is held.
func (r *run) appendLocked(ctx context.Context, ev state.Event) (state.Event, error) {
	appended, err := r.cfg.Store.Append(ctx, ev)
	if err != nil {
		if errors.Is(err, state.ErrLocked) {
			r.lockedErr.CompareAndSwap(nil, &err)
		}
		return state.Event{}, fmt.Errorf("checkpoint %s: %w", ev.Type, err)
	}
	r.headSeq, r.headHash = appended.Seq, appended.Hash
	r.emit(runlog.Recorded{Event: appended})
	return appended, nil
}

// signHead signs the record's head with the operator's key and appends the
// signature (record.signed) right after it. Without a signer it does
// nothing; a signing failure is shown as a notice and leaves the head
// unsigned (verification then says so).
func (r *run) signHead(ctx context.Context, reason, stepID string) {
	if r.cfg.Signer == nil {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	r.recMu.Lock()
	defer r.recMu.Unlock()
	fail := func(err error) {
		r.emit(runlog.Notice{StepID: stepID, Text: fmt.Sprintf("could not sign the record at seq %d (%s): %v", r.headSeq, reason, err), Time: time.Now()})
	}
	if r.headSeq == 0 {
		return
	}
	sig, err := opsig.Sign(r.cfg.Signer, opsig.Namespace, state.SignedMessage(r.id, r.headSeq, r.headHash))
	if err != nil {
		fail(err)
		return
	}
	actor := r.actor
	ev, err := state.NewEvent(r.id, state.EvRecordSigned, state.RecordSigned{
		Seq: r.headSeq, Hash: r.headHash, Reason: reason, StepID: stepID,
		Key: r.cfg.Signer.Fingerprint(), PublicKey: opsig.MarshalPublicKey(r.cfg.Signer.PublicKey()),
		Signature: string(sig), Actor: &actor,
	})
	if err != nil {
		fail(err)
		return
	}
	ev.Time = time.Now().UTC()
	if _, err := r.appendLocked(wctx, ev); err != nil {
		fail(err)
	}
}

// person is the actor to record with a person's decision.
func (r *run) person() *state.Actor {
	a := r.actor
	return &a
}

// Start creates a new run, records its inputs, and walks it to the end.
// inputs are the resolved values of the runbook's inputs.
func Start(ctx context.Context, cfg Config, inputs map[string]runbooks.Value) (Outcome, error) {
	r, err := newRun(cfg)
	if err != nil {
		return Outcome{}, err
	}
	defer r.pool.Close()
	// A step that needs approval must be able to get it: checked before
	// the run is created.
	if err := r.approvalPrecheck(); err != nil {
		return Outcome{}, err
	}
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
		User:        r.actor.User, Actor: r.person(),
	}
	sr.WorkDir, _ = os.Getwd()
	if b := r.budget(); b > 0 {
		since := cfg.RTOSince
		if since.IsZero() {
			since = time.Now()
		}
		sr.RTO = &state.RTOBudget{BudgetMS: b.Milliseconds(), Since: since.UTC()}
		r.cfg.RTOSince = since
	}
	if cfg.Inventory != nil {
		sr.InventoryPath, sr.InventorySHA256, sr.InventorySource = cfg.Inventory.File, cfg.Inventory.SHA256, cfg.Inventory.Source
	}
	if err := cfg.Store.CreateRun(ctx, sr); err != nil {
		return Outcome{}, fmt.Errorf("create run: %w", err)
	}
	r.id = sr.ID
	r.headSeq, r.headHash = sr.HeadSeq, sr.HeadHash
	r.bindNotify()
	defer r.flushNotify(ctx)
	// CreateRun wrote run.created: observers get it like every other event.
	if evs, err := cfg.Store.Events(ctx, r.id); err == nil && len(evs) > 0 {
		r.emit(runlog.Recorded{Event: evs[0]})
	}
	// The run exists now: an interruption from here on must end it
	// (recorded interrupted by finish), so taking the lock of a run nobody
	// else can hold yet is not cancelled with ctx.
	release, err := cfg.Store.Lock(context.WithoutCancel(ctx), r.id)
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
	return r.walk(ctx)
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
func (r *run) walk(ctx context.Context) (Outcome, error) {
	r.started = time.Now()
	if r.cfg.Signer == nil && r.cfg.UnsignedNotice != "" {
		r.emit(runlog.Notice{Text: r.cfg.UnsignedNotice, Time: time.Now()})
	}
	r.startRTO(ctx)
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
	r.stopRTO()
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
	r.flushNotify(ctx)
	r.signHead(ctx, segmentEnd(status), "")
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
	r.emit(runlog.Question{Kind: kind, StepID: stepID, Prompt: r.mask.mask(prompt), Time: time.Now()})
	t0 := time.Now()
	resp, by, err := call()
	waited := time.Since(t0)
	r.humanMu.Lock()
	r.human += waited
	r.humanMu.Unlock()
	resp = r.mask.mask(resp)
	if errors.Is(err, steps.ErrNoOperator) || ctx.Err() != nil {
		return err
	}
	if rerr := r.record(ctx, state.EvOperatorWait, stepID, "", 0, state.OperatorWait{
		Kind: kind, Prompt: r.mask.mask(prompt), Response: resp, By: by, DurationMS: waited.Milliseconds(), Actor: r.person(),
	}); rerr != nil {
		return rerr
	}
	return err
}

// Operator returns who this process records as deciding: the one text
// form of state.Actor ("user@host", from the real uid, never $USER).
func Operator() string {
	return state.CurrentActor("").String()
}

// segmentEnd is the signing reason of a segment that ends in status.
func segmentEnd(status state.Status) string {
	switch status {
	case state.StatusInterrupted:
		return state.SignInterrupted
	case state.StatusAborted:
		return state.SignAborted
	}
	return state.SignFinished
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
		r.emit(runlog.Notice{Text: "unreachable (steps on it will fail): " + e.Error(), Time: time.Now()})
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
