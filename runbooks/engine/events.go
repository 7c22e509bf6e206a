package engine

import (
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
)

// Event is something that happened in a run. The TUI and the headless printer
// consume the same stream, so interactive and headless runs cannot drift.
// Observers are called from the engine's goroutines, one event at a time, and
// must not block for long.
type Event interface{ event() }

// Recorded is an event of the run's record, handed to observers as it was
// appended (Seq, Time and Hash set): the facts of a run. Observers fold
// them with runlog (package state/runlog), as replay does from the record,
// so a live view and a replay cannot drift. The other event types carry
// what only lives in memory (output lines as they arrive, questions to the
// operator) and announcements that precede the facts.
type Recorded struct {
	Event state.Event
}

// RunStarted is the first event of a run (or of a resumed run).
type RunStarted struct {
	RunID, Runbook, Title string
	Inventory             string
	Resumed               bool
	Time                  time.Time
	// Steps lists the step ids in order.
	Steps []string
	// RTO is the run's budget (0: none) and RTOSince when its clock
	// started: the TUI counts the time left from them.
	RTO      time.Duration
	RTOSince time.Time
}

// StepPending announces a step's targets before any of them runs.
type StepPending struct {
	StepID, Title, Kind string
	Targets             []string
	// Items is true for a for_each step: Targets are its items (each one
	// execution, named by the item), and Nodes the nodes they run on.
	Items  bool
	Nodes  []string
	Danger bool
	// Timeout limits each attempt on each target (runbooks.NoLimit: none).
	Timeout runbooks.Duration
	Time    time.Time
}

// StepStarted is one step execution (step × target × attempt) starting.
type StepStarted struct {
	StepID, Target string
	Attempt        int
	Summary        string
	Time           time.Time
}

// OutputLine is one line of a step execution's output, secrets masked,
// without its line end. Line holds the node's bytes as they are (escape
// sequences, invalid UTF-8): renderers make them harmless (package termsafe).
type OutputLine struct {
	StepID, Target string
	Stderr         bool
	Line           string
	// Raw repeats Line's bytes when they are not valid UTF-8, which JSON
	// cannot carry in a string (it is base64 in JSON); nil otherwise.
	Raw  []byte `json:",omitempty"`
	Time time.Time
}

// StepFinished is one step execution ending.
type StepFinished struct {
	StepID, Target string
	Attempt        int
	Status         state.Status
	ExitCode       int
	Err            string
	Duration       time.Duration
	// Outputs with secret values masked.
	Outputs map[string]string
	Time    time.Time
}

// StepDone says a whole step is settled (all targets).
type StepDone struct {
	StepID string
	Status state.Status
	// Restored is true when resume found the step already done.
	Restored bool
	Reason   string
	Time     time.Time
}

// NeedsOperator says the run waits for a person (confirmation, input,
// decision). WaitOver follows when the answer came.
type NeedsOperator struct {
	Kind   string // state.WaitConfirm, WaitInput, WaitDecision, WaitFailure
	StepID string
	Prompt string
	Time   time.Time
}

// WaitOver ends a NeedsOperator.
type WaitOver struct {
	Kind     string
	StepID   string
	Response string
	Waited   time.Duration
	Time     time.Time
}

// Notice is an informative message (resume decisions, check results).
type Notice struct {
	StepID, Target string
	Text           string
	Time           time.Time
}

// RunFinished is the last event.
type RunFinished struct {
	RunID   string
	Status  state.Status
	Err     string
	Machine time.Duration
	Human   time.Duration
	Time    time.Time
}

func (Recorded) event()      {}
func (RunStarted) event()    {}
func (StepPending) event()   {}
func (StepStarted) event()   {}
func (OutputLine) event()    {}
func (StepFinished) event()  {}
func (StepDone) event()      {}
func (NeedsOperator) event() {}
func (WaitOver) event()      {}
func (Notice) event()        {}
func (RunFinished) event()   {}
