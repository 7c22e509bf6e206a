package jsonapi

// The headless JSON event stream (`drbook run --headless -o json`, and
// resume) is one JSON object per line. Every line has "schema", "event"
// (one of the Ev* names) and "time"; the other fields depend on the event.

// EventHeader starts every line of the event stream.
type EventHeader struct {
	Header
	// Event is the event's name (EvStepStarted: "step.started", …).
	Event string `json:"event"`
	// Time is when it happened (RFC 3339, UTC).
	Time string `json:"time"`
}

// RunStartedEvent is "run.created" (a new run) or "run.resumed".
type RunStartedEvent struct {
	EventHeader
	RunID     string `json:"run_id"`
	Runbook   string `json:"runbook"`
	Title     string `json:"title,omitempty"`
	Inventory string `json:"inventory,omitempty"`
	// Steps lists the step ids in order.
	Steps []string `json:"steps"`
	// RTOBudgetMS is the run's RTO budget (the runbook's rto:, or a
	// drill's rto_budget); RTOSince when its clock started. Absent: no
	// budget.
	RTOBudgetMS int64  `json:"rto_budget_ms,omitempty"`
	RTOSince    string `json:"rto_since,omitempty"`
}

// RTOCrossedEvent is "rto.crossed": the run went over its RTO budget. The
// record holds the same figures in a note whose data kind is rto.crossed.
type RTOCrossedEvent struct {
	EventHeader
	RunID       string `json:"run_id"`
	RTOBudgetMS int64  `json:"rto_budget_ms"`
	// ElapsedMS is the time since the RTO clock started, split into
	// machine time and time waiting on the operator.
	ElapsedMS int64 `json:"elapsed_ms"`
	MachineMS int64 `json:"machine_ms"`
	HumanMS   int64 `json:"human_ms"`
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

// StepStartedEvent is "step.started": one execution (step × target ×
// attempt) starting.
type StepStartedEvent struct {
	EventHeader
	StepID  string `json:"step_id"`
	Target  string `json:"target"`
	Attempt int    `json:"attempt"`
	Summary string `json:"summary,omitempty"`
}

// StepOutputEvent is "step.output": one line of an execution's output,
// secrets masked, without its line end.
type StepOutputEvent struct {
	EventHeader
	StepID string `json:"step_id"`
	Target string `json:"target"`
	// Stream is "stdout" or "stderr".
	Stream string `json:"stream"`
	Line   string `json:"line"`
	// Raw repeats the line's bytes (base64) when they are not valid UTF-8.
	Raw []byte `json:"raw,omitempty"`
}

// StepFinishedEvent is "step.finished": one execution ending.
type StepFinishedEvent struct {
	EventHeader
	StepID     string `json:"step_id"`
	Target     string `json:"target"`
	Attempt    int    `json:"attempt"`
	Status     string `json:"status"`
	ExitCode   int    `json:"exit_code"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	// Outputs are the execution's outputs, secret values masked; their
	// names are the runbook's own.
	Outputs map[string]string `json:"outputs,omitempty"`
}

// StepDoneEvent is "step.done": a whole step settled on all targets.
type StepDoneEvent struct {
	EventHeader
	StepID string `json:"step_id"`
	Status string `json:"status"`
	// Restored is true when a resume found the step already done.
	Restored bool   `json:"restored"`
	Reason   string `json:"reason,omitempty"`
}

// OperatorWaitingEvent is "operator.waiting": the run waits for a person.
type OperatorWaitingEvent struct {
	EventHeader
	// Kind is confirm, input, decision or failure.
	Kind   string `json:"kind"`
	StepID string `json:"step_id,omitempty"`
	Prompt string `json:"prompt"`
}

// OperatorWaitEvent is "operator.wait": the answer came.
type OperatorWaitEvent struct {
	EventHeader
	Kind       string `json:"kind"`
	StepID     string `json:"step_id,omitempty"`
	Response   string `json:"response"`
	DurationMS int64  `json:"duration_ms"`
}

// NoteEvent is "note": an informative message (resume decisions, check
// results).
type NoteEvent struct {
	EventHeader
	StepID string `json:"step_id,omitempty"`
	Target string `json:"target,omitempty"`
	Text   string `json:"text"`
}

// RunFinishedEvent is "run.finished", the last line.
type RunFinishedEvent struct {
	EventHeader
	RunID  string `json:"run_id"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// MachineMS is time spent running; HumanMS time waiting on the
	// operator.
	MachineMS int64 `json:"machine_ms"`
	HumanMS   int64 `json:"human_ms"`
}
