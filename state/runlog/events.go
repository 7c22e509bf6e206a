package runlog

import (
	"time"

	"github.com/drbook/drbook/state"
)

// Event is one event of a live run, as the engine hands it to its
// observers: a Recorded event of the run's record (the facts), or one of
// the few that live only in memory (StepPending, OutputLine, Question,
// Notice). Every view of a run folds the Recorded ones with a Folder and
// shows the others as they come, so the TUI's run screen, the headless
// printer (text and JSON lines) and a replay of the record cannot drift.
// Observers are called one event at a time, in seq order for the recorded
// ones, and must not block for long.
type Event interface{ runEvent() }

// Recorded is an event of the run's record, handed over as it was appended
// (Seq, Time, PrevHash and Hash set).
type Recorded struct {
	Event state.Event
	// Prior is true for an event that was in the record before this process
	// took the run on: a resume hands the whole record to its observers
	// first, so that they fold what came before; a view prints those as
	// history, not as news.
	Prior bool
}

// StepPending announces a step about to run: its resolved targets (for a
// for_each step, its items and the nodes they run on) and its time limit.
// It precedes the step's step.started events; a step restored from the
// record or skipped is not announced.
type StepPending struct {
	StepID, Title, Kind string
	Targets             []string
	// Items is true for a for_each step: Targets are its items (each one
	// execution, named by the item), and Nodes the nodes they run on.
	Items  bool
	Nodes  []string
	Danger bool
	// Timeout limits each attempt on each target; 0 for none.
	Timeout time.Duration
	Time    time.Time
}

// OutputLine is one line of a step execution's output as it arrives,
// secrets masked, without its line end (the record keeps the output in
// step.output checkpoints and in step.finished). Line holds the node's
// bytes as they are (escape sequences, invalid UTF-8): renderers make them
// harmless (package termsafe).
type OutputLine struct {
	StepID, Target string
	Stderr         bool
	Line           string
	// Raw repeats Line's bytes when they are not valid UTF-8, which JSON
	// cannot carry in a string; nil otherwise.
	Raw  []byte
	Time time.Time
}

// Question says the run waits for a person: a confirmation, an input, a
// decision (Kind is state.WaitConfirm, WaitInput, WaitDecision or
// WaitFailure). The recorded operator.wait event ends it, with the answer
// and the time waited (or run.finished, when nobody answered).
type Question struct {
	Kind   string
	StepID string
	Prompt string
	Time   time.Time
}

// Notice is an informative message that explains what the engine does
// (resume decisions, retries, unreachable nodes); the facts behind it are
// recorded events.
type Notice struct {
	StepID, Target string
	Text           string
	Time           time.Time
}

func (Recorded) runEvent()    {}
func (StepPending) runEvent() {}
func (OutputLine) runEvent()  {}
func (Question) runEvent()    {}
func (Notice) runEvent()      {}
