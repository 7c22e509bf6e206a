// Package steps defines what a step kind is and keeps the registry of kinds.
//
// A Kind runs one step on one target (or on none, for operator steps). The
// engine renders the step's parameters, picks the target's transport, wires
// output streams that mask secrets, and records the result; the kind only
// does its job. Built-in kinds live in this package (shell, confirm, input,
// wait); agent.* kinds and plugins register themselves the same way, so the
// engine never changes when a kind is added.
package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps/transport"
)

// Exec is one execution of a step on one target.
type Exec struct {
	RunID   string
	Step    *runbooks.Step
	Attempt int
	// Params are the step's `with:` parameters, templates rendered.
	Params map[string]any
	// Target is the node the step runs on; nil for targetless kinds.
	Target *runbooks.Node
	// Key names the execution in the record: the target's name, or the
	// item of a for_each step (empty for a targetless step).
	Key string
	// Transport runs commands on Target; nil for targetless kinds.
	Transport transport.Transport
	// Stdout and Stderr are the live output streams (masked, recorded).
	Stdout, Stderr io.Writer
	// Operator answers confirmations and questions.
	Operator Operator
	// Scope is the run's template scope with Target set.
	Scope *runbooks.RunScope
	// Registry lets a kind run another kind (wait polls a check kind).
	Registry *Registry
	// Dial reaches another inventory node over the run's own transports
	// (scale-out asks the seed for tokens; plugins use it through the broker).
	Dial   func(ctx context.Context, node string) (*runbooks.Node, transport.Transport, error)
	Logger *slog.Logger
}

// Result is what a step execution produced.
type Result struct {
	ExitCode int
	// Outputs by name; SecretOutputs names the secret ones.
	Outputs       map[string]string
	SecretOutputs []string
	// Message is a one-line summary for the record ("already a member", ...).
	Message string
}

// Kind is a step kind.
type Kind interface {
	// Info describes the kind for validation and the picker.
	Info() runbooks.KindInfo
	// Summary says what the step will do on its target, for confirmations
	// and the plan (e.g. the command line). It must not reveal secrets.
	Summary(x *Exec) string
	// Run performs the step. A returned error fails the step; ExitCode says
	// how when a command ran.
	Run(ctx context.Context, x *Exec) (Result, error)
}

// Errors kinds return.
var (
	// ErrExitStatus is wrapped when a command exited non-zero.
	ErrExitStatus = errors.New("command failed")
	// ErrDeclined is wrapped when the operator declined a confirmation.
	ErrDeclined = errors.New("operator declined")
	// ErrNoOperator is wrapped when a step needs a person and none is there
	// (headless without --yes or an answer).
	ErrNoOperator = errors.New("operator needed")
	// ErrTimeout is wrapped when a wait step's expectation never held.
	ErrTimeout = errors.New("timed out")
	// ErrBadParams is wrapped when rendered parameters are invalid.
	ErrBadParams = errors.New("bad parameters")
	// ErrMissingOutput is wrapped when a declared output was not produced.
	ErrMissingOutput = errors.New("declared output not produced")
)

// ExitError is returned by Run for a non-zero exit status.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("command failed with exit status %d", e.Code) }

// Unwrap makes errors.Is(err, ErrExitStatus) match.
func (e *ExitError) Unwrap() error { return ErrExitStatus }

// Registry maps kind names to kinds. It implements runbooks.KindCatalog.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]Kind
}

var _ runbooks.KindCatalog = (*Registry)(nil)

// NewRegistry returns a registry holding the built-in kinds.
func NewRegistry() *Registry {
	r := &Registry{kinds: map[string]Kind{}}
	for _, k := range []Kind{Shell{}, Confirm{}, Input{}, Wait{}} {
		r.MustRegister(k)
	}
	return r
}

// Register adds a kind; a name already taken is an error.
func (r *Registry) Register(k Kind) error {
	name := k.Info().Name
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[name]; dup {
		return fmt.Errorf("step kind %q is already registered", name)
	}
	r.kinds[name] = k
	return nil
}

// MustRegister is Register for built-ins, panicking on a duplicate.
func (r *Registry) MustRegister(k Kind) {
	if err := r.Register(k); err != nil {
		panic(err)
	}
}

// Get returns the kind with the given name.
func (r *Registry) Get(name string) (Kind, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.kinds[name]
	return k, ok
}

// Kind implements runbooks.KindCatalog.
func (r *Registry) Kind(name string) (runbooks.KindInfo, bool) {
	k, ok := r.Get(name)
	if !ok {
		return runbooks.KindInfo{}, false
	}
	return k.Info(), true
}

// KindNames implements runbooks.KindCatalog.
func (r *Registry) KindNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Operator is the person (or the headless policy) answering a run's questions.
type Operator interface {
	// Confirm asks to go ahead with a step. For a danger step the operator
	// must type the target node's name (Request.Expect).
	Confirm(ctx context.Context, req ConfirmRequest) (ConfirmResponse, error)
	// Ask asks for a value.
	Ask(ctx context.Context, req AskRequest) (string, error)
	// Decide asks what to do after a step failed or was interrupted.
	Decide(ctx context.Context, req DecideRequest) (Decision, error)
}

// ConfirmRequest asks the operator to go ahead.
type ConfirmRequest struct {
	StepID, Title string
	// Message explains the manual action or the danger.
	Message string
	// Targets and Summaries say exactly what will run where.
	Targets   []string
	Summaries []string
	Danger    bool
	// Expect is what the operator must type (a danger step's confirm.word,
	// else its target's name); empty means a yes/no confirmation.
	Expect string
	// Reason says why Expect is the word (a danger step's confirm.reason).
	Reason string
}

// ConfirmResponse is the operator's answer.
type ConfirmResponse struct {
	OK    bool
	Typed string
	By    string
}

// AskRequest asks the operator for a value.
type AskRequest struct {
	StepID string
	Input  runbooks.Input
}

// DecideRequest asks what to do with a failed or interrupted step.
type DecideRequest struct {
	StepID, Target string
	Attempt        int
	Err            error
	Interrupted    bool
	// Options the operator may choose from.
	Options []DecisionKind
}

// DecisionKind is one way to go on.
type DecisionKind string

// Decisions.
const (
	DecisionRetry DecisionKind = "retry"
	DecisionSkip  DecisionKind = "skip"
	DecisionAbort DecisionKind = "abort"
	DecisionRedo  DecisionKind = "redo"
)

// Decision is the operator's choice; skip needs a reason.
type Decision struct {
	Kind   DecisionKind
	Reason string
	By     string
}

// paramString returns a string parameter, or "" when absent.
func paramString(p map[string]any, name string) (string, error) {
	v, ok := p[name]
	if !ok || v == nil {
		return "", nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case int64, float64, bool:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("%w: %s must be a string, got %T", ErrBadParams, name, v)
}

// paramDuration returns a duration parameter or def.
func paramDuration(p map[string]any, name string, def time.Duration) (time.Duration, error) {
	s, err := paramString(p, name)
	if err != nil || s == "" {
		return def, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %q is not a duration", ErrBadParams, name, s)
	}
	return d, nil
}

// paramEnv returns a string map parameter (env:).
func paramEnv(p map[string]any, name string) (map[string]string, error) {
	v, ok := p[name]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s must be a mapping", ErrBadParams, name)
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		switch x := e.(type) {
		case string:
			out[k] = x
		case nil:
			out[k] = ""
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out, nil
}
