package jsonapi

// The headless JSON event stream (`drbook run --headless -o json`, and
// resume) is one JSON object per line. Every line has "schema", "event"
// (the record's event type, or one of the in-memory Ev* names) and "time";
// the other fields depend on the event.

// EventHeader starts every line of the event stream.
type EventHeader struct {
	Header
	// Event is the event's name (EvStepStarted: "step.started", …).
	Event string `json:"event"`
	// Time is when it happened (RFC 3339, UTC).
	Time string `json:"time"`
}

// RecordEvent is a line for an event of the run's hash-chained record:
// "run.created", "run.resumed", "answer", "step.started", "step.output" (a
// checkpoint of output), "step.finished", "step.decision", "operator.wait",
// "note" or "run.finished" (the last line). Event is the record's type and
// Time the record's time; the line carries the event as the record holds
// it, so the stream of a run is its record, event for event.
type RecordEvent struct {
	EventHeader
	RunID string `json:"run_id"`
	// Seq is the event's number in the run's chain (1 for run.created); a
	// resumed run's stream starts at its run.resumed.
	Seq     int64  `json:"seq"`
	StepID  string `json:"step_id,omitempty"`
	Target  string `json:"target,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	// Data is the event's payload as recorded (snake_case fields, listed
	// under "data of …" below), with sealed values and secret answers and
	// outputs masked.
	Data any `json:"data"`
	// PrevHash and Hash chain the event to the one before it (see drbook
	// replay --verify).
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// StepPendingEvent is "step.pending": a step's targets, before any runs.
type StepPendingEvent struct {
	EventHeader
	StepID  string   `json:"step_id"`
	Title   string   `json:"title,omitempty"`
	Kind    string   `json:"kind"`
	Targets []string `json:"targets"`
	// Items is true for a for_each step: Targets are its items, Nodes
	// the nodes they run on.
	Items  bool     `json:"items"`
	Nodes  []string `json:"nodes,omitempty"`
	Danger bool     `json:"danger"`
	// TimeoutMS limits each attempt on each target; absent when unlimited.
	TimeoutMS *int64 `json:"timeout_ms,omitempty"`
}

// OutputLineEvent is "output.line": one line of an execution's output as
// it arrives, secrets masked, without its line end (the record keeps the
// output in step.output checkpoints and in step.finished).
type OutputLineEvent struct {
	EventHeader
	StepID string `json:"step_id"`
	Target string `json:"target"`
	// Stream is "stdout" or "stderr".
	Stream string `json:"stream"`
	Line   string `json:"line"`
	// Raw repeats the line's bytes (base64) when they are not valid UTF-8.
	Raw []byte `json:"raw,omitempty"`
}

// OperatorWaitingEvent is "operator.waiting": the run waits for a person;
// the recorded operator.wait follows with the answer.
type OperatorWaitingEvent struct {
	EventHeader
	// Kind is confirm, input, decision, failure or approval.
	Kind   string `json:"kind"`
	StepID string `json:"step_id,omitempty"`
	Prompt string `json:"prompt"`
}

// NoticeEvent is "notice": an informative message (resume decisions,
// retries, unreachable nodes); the facts behind it are recorded events.
type NoticeEvent struct {
	EventHeader
	StepID string `json:"step_id,omitempty"`
	Target string `json:"target,omitempty"`
	Text   string `json:"text"`
}
