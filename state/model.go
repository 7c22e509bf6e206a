package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Status is the state of a run or of a step execution.
type Status string

// Statuses of runs and step executions.
const (
	StatusPending     Status = "pending"
	StatusRunning     Status = "running"
	StatusSucceeded   Status = "succeeded"
	StatusFailed      Status = "failed"
	StatusInterrupted Status = "interrupted"
	StatusSkipped     Status = "skipped"
	StatusAborted     Status = "aborted"
)

// Terminal reports whether s is a final status (nothing more will happen).
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusSkipped, StatusAborted:
		return true
	}
	return false
}

// EndsRun reports whether a run in status s has ended for good: it can never
// be resumed, so its sealed secrets are shredded (its data key deleted) when
// it reaches s. Those are succeeded and aborted. A failed run can be resumed
// (drbook resume retries the failed step) and an interrupted or running one
// too: they keep their secrets until they end — or until the operator ends a
// failed run with drbook abort.
func (s Status) EndsRun() bool {
	return s == StatusSucceeded || s == StatusAborted
}

// Run modes.
const (
	ModeInteractive = "interactive"
	ModeHeadless    = "headless"
	ModeRehearsal   = "rehearsal"
)

// Run is one execution of a runbook: the runs row.
type Run struct {
	// ID is assigned by CreateRun if empty: "r" + UTC yyyymmdd-hhmmss + "-" +
	// 4 random hex digits, so that IDs sort by creation time.
	ID              string
	RunbookName     string
	RunbookTitle    string
	RunbookPath     string // file path or "library:NAME"
	RunbookSHA256   string
	RunbookSource   []byte
	InventoryPath   string
	InventorySHA256 string
	InventorySource []byte
	Mode            string // ModeInteractive, ModeHeadless or ModeRehearsal
	Status          Status
	CreatedAt       time.Time
	UpdatedAt       time.Time
	FinishedAt      time.Time
	Host            string
	PID             int
	User            string
	Labels          map[string]string
	// HeadSeq and HeadHash are the tail of the event chain.
	HeadSeq  int64
	HeadHash string
	// HoldsSecrets: the run has a data key, so values sealed for it can
	// still be opened (with this database and its key file).
	HoldsSecrets bool
	// WorkDir and StepAnswers are written into the run.created event by
	// CreateRun (with the runbook and inventory sources); they are not
	// read back by GetRun: see Files.
	WorkDir     string
	StepAnswers map[string]string
	// Actor is who creates the run (written into run.created; CreateRun
	// fills it from the process when nil). Its Key is set when the run is
	// signed and empty when it is recorded unsigned.
	Actor *Actor
	// RTO is the run's recovery-time budget, written into run.created (nil:
	// none).
	RTO *RTOBudget
}

// RTOBudget is a run's recovery-time objective: BudgetMS milliseconds from
// Since (the run's creation, or a drill's disaster). A runbook's rto: or a
// drill's rto_budget sets it; it is recorded in run.created so that every
// view (live, replay, resume) counts against the same budget.
type RTOBudget struct {
	BudgetMS int64     `json:"budget_ms"`
	Since    time.Time `json:"since"`
}

// EventType names the kind of an event in a run's log.
type EventType string

// Event types; the payload struct of each is named in its comment.
const (
	EvRunCreated   EventType = "run.created"   // RunCreated, written by CreateRun as seq 1
	EvRunResumed   EventType = "run.resumed"   // RunResumed
	EvAnswer       EventType = "answer"        // Answer
	EvStepStarted  EventType = "step.started"  // StepStarted
	EvStepFinished EventType = "step.finished" // StepFinished
	EvStepOutput   EventType = "step.output"   // StepOutput
	EvStepDecision EventType = "step.decision" // StepDecision
	EvOperatorWait EventType = "operator.wait" // OperatorWait
	EvRunFinished  EventType = "run.finished"  // RunFinished
	EvNote         EventType = "note"          // Note
	EvRunHandover  EventType = "run.handover"  // RunHandover
	EvRecordSigned EventType = "record.signed" // RecordSigned
)

// Event is one entry of a run's hash-chained log.
type Event struct {
	RunID string
	// Seq is 1-based and assigned by Append.
	Seq int64
	// Time is set by the caller (UTC); Append sets it to now if zero.
	Time    time.Time
	Type    EventType
	StepID  string
	Target  string
	Attempt int
	// Data is the JSON payload (one of the payload structs); never a secret
	// in clear.
	Data json.RawMessage
	// PrevHash and Hash are hex SHA-256, assigned by Append.
	PrevHash string
	Hash     string
}

// Decode unmarshals the event's payload into v.
func (e Event) Decode(v any) error {
	return json.Unmarshal(e.Data, v)
}

// NewEvent returns an event of type typ whose Data is payload marshalled to
// JSON.
func NewEvent(runID string, typ EventType, payload any) (Event, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return Event{}, err
	}
	return Event{RunID: runID, Type: typ, Data: b}, nil
}

// RunCreated is the payload of EvRunCreated.
type RunCreated struct {
	RunbookName string `json:"runbook_name"`
	// RunbookTitle and Labels repeat the runs row's, so that a replay
	// reads its header from the chain alone (absent in older records).
	RunbookTitle    string            `json:"runbook_title,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	RunbookSHA256   string            `json:"runbook_sha256"`
	InventorySHA256 string            `json:"inventory_sha256"`
	Mode            string            `json:"mode"`
	Host            string            `json:"host"`
	PID             int               `json:"pid"`
	User            string            `json:"user"`
	// Actor is who created the run; its Key is empty when the run is
	// recorded unsigned (absent in older records).
	Actor *Actor `json:"actor,omitempty"`
	// Runbook and Inventory are the files the run started with, whole
	// (absent in records made before files were kept); WorkDir is the
	// directory it started in, against which their relative paths (and the
	// inventory's) resolve.
	Runbook   *RecordedFile `json:"runbook,omitempty"`
	Inventory *RecordedFile `json:"inventory,omitempty"`
	WorkDir   string        `json:"work_dir,omitempty"`
	// StepAnswers are the answers file's literal answers to input steps
	// (never {env:} or {file:} ones), for a resume without the file.
	StepAnswers map[string]string `json:"step_answers,omitempty"`
	// RTO is the run's recovery-time budget (absent: none).
	RTO *RTOBudget `json:"rto,omitempty"`
}

// RunResumed is the payload of EvRunResumed.
type RunResumed struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	User string `json:"user"`
	// Actor is who resumed the run (Key empty: this segment is unsigned).
	Actor         *Actor `json:"actor,omitempty"`
	AcceptChanged bool   `json:"accept_changed"`
	RunbookSHA256 string `json:"runbook_sha256"`
	// InventorySHA256 is the digest of the inventory the resume uses.
	InventorySHA256 string `json:"inventory_sha256,omitempty"`
	// Runbook and Inventory are set when the resume goes on with a file
	// that differs from the recorded one (--accept-changed): from then on
	// the record holds the new file. WorkDir is the resume's directory.
	Runbook   *RecordedFile `json:"runbook,omitempty"`
	Inventory *RecordedFile `json:"inventory,omitempty"`
	WorkDir   string        `json:"work_dir,omitempty"`
}

// Answer is the payload of EvAnswer. The Value of a secret is a sealed
// string (see DB.Seal). An answer recorded when a resume corrects an input
// that no completed step had used has Changed set, with who changed it and
// why; the last answer for a name is the one the run uses.
type Answer struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	Secret  bool   `json:"secret"`
	Changed bool   `json:"changed,omitempty"`
	By      string `json:"by,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Actor is who changed it (set with Changed).
	Actor *Actor `json:"actor,omitempty"`
}

// StepStarted is the payload of EvStepStarted.
type StepStarted struct {
	Title   string `json:"title"`
	Kind    string `json:"kind"`
	Summary string `json:"summary"`
	Danger  bool   `json:"danger"`
}

// StepFinished is the payload of EvStepFinished.
type StepFinished struct {
	Status        Status            `json:"status"`
	ExitCode      int               `json:"exit_code"`
	Error         string            `json:"error"`
	Outputs       map[string]string `json:"outputs"`
	SecretOutputs []string          `json:"secret_outputs"`
	// Log is the step execution's output log as text (see LogBytes for
	// its format). When the log is not valid UTF-8, Log holds it with each
	// run of invalid bytes replaced by U+FFFD and LogRaw holds the exact
	// bytes: JSON cannot carry them in a string.
	Log string `json:"log"`
	// LogRaw is the exact log, set only when it is not valid UTF-8 (base64
	// in JSON).
	LogRaw []byte `json:"log_raw,omitempty"`
	// LogSHA256 is the hex SHA-256 of LogBytes(): exactly the recorded log,
	// byte for byte, truncation marker included.
	LogSHA256 string `json:"log_sha256"`
	// LogCutBytes is how many bytes of output did not fit in the log (0
	// when nothing was cut; the log then ends with a marker line saying so).
	LogCutBytes int64 `json:"log_cut_bytes,omitempty"`
	DurationMS  int64 `json:"duration_ms"`
}

// StepOutput is the payload of EvStepOutput: output a step execution
// produced while it ran, checkpointed every few seconds so that a runner
// killed mid-step (SIGKILL, power loss) leaves in the record what the step
// had printed. Chunks append to the execution's log in order: Offset is the
// log's length in bytes before this chunk. The step.finished event that
// ends the execution carries the whole log again, which replaces them.
type StepOutput struct {
	Offset int64  `json:"offset"`
	Log    string `json:"log"`
	// LogRaw is the exact chunk when it is not valid UTF-8 (see
	// StepFinished.LogRaw).
	LogRaw []byte `json:"log_raw,omitempty"`
}

// Bytes returns the chunk exactly.
func (p StepOutput) Bytes() []byte {
	if p.LogRaw != nil {
		return p.LogRaw
	}
	return []byte(p.Log)
}

// NewStepOutput returns the payload of a chunk of log starting at offset.
func NewStepOutput(offset int64, chunk []byte) StepOutput {
	if utf8.Valid(chunk) {
		return StepOutput{Offset: offset, Log: string(chunk)}
	}
	return StepOutput{Offset: offset, Log: strings.ToValidUTF8(string(chunk), "\uFFFD"), LogRaw: bytes.Clone(chunk)}
}

// LogBytes returns the recorded output log exactly as it was hashed into
// LogSHA256. The log is the output of stdout and stderr, line by line in the
// order the lines arrived, each with the very bytes the node sent (CR, NUL,
// invalid UTF-8 and all) after secret masking; a stderr line is prefixed by
// "! "; every line ends with '\n' except a last one the command left
// unterminated. When output did not fit the cap, the log keeps its first
// bytes (an overlong line is cut, not dropped) and ends with the line
// "[output truncated: N bytes not recorded]" (LogCutBytes is N).
func (p StepFinished) LogBytes() []byte {
	if p.LogRaw != nil {
		return p.LogRaw
	}
	return []byte(p.Log)
}

// SetLog stores log (see LogBytes) in p: Log, LogRaw when log is not valid
// UTF-8, and LogSHA256.
func (p *StepFinished) SetLog(log []byte) {
	sum := sha256.Sum256(log)
	p.LogSHA256 = hex.EncodeToString(sum[:])
	if utf8.Valid(log) {
		p.Log, p.LogRaw = string(log), nil
		return
	}
	p.Log = strings.ToValidUTF8(string(log), "\uFFFD")
	p.LogRaw = bytes.Clone(log)
}

// Decisions recorded by StepDecision.
const (
	DecisionRedo         = "redo"
	DecisionSkip         = "skip"
	DecisionRetry        = "retry"
	DecisionAbort        = "abort"
	DecisionCheckDone    = "check-done"
	DecisionCheckNotDone = "check-not-done"
	DecisionInterrupted  = "interrupted"
)

// StepDecision is the payload of EvStepDecision.
type StepDecision struct {
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	// By is Actor.String() for a person's decision, or the part of drbook
	// that decided ("engine", "runbook", "check"; Actor nil).
	By    string `json:"by"`
	Actor *Actor `json:"actor,omitempty"`
	// Outputs are the values an operator gave for a skipped execution
	// (--set-output), sealed where named in SecretOutputs; a skip projects
	// them onto the execution.
	Outputs       map[string]string `json:"outputs,omitempty"`
	SecretOutputs []string          `json:"secret_outputs,omitempty"`
}

// Operator wait kinds.
const (
	WaitConfirm  = "confirm"
	WaitInput    = "input"
	WaitFailure  = "failure"
	WaitDecision = "decision"
)

// OperatorWait is the payload of EvOperatorWait: time spent waiting for a
// human, for the split of recovery time into human and machine time.
type OperatorWait struct {
	Kind       string `json:"kind"`
	Prompt     string `json:"prompt"`
	Response   string `json:"response"`
	By         string `json:"by"`
	DurationMS int64  `json:"duration_ms"`
	// Actor is the person who answered (absent in older records).
	Actor *Actor `json:"actor,omitempty"`
}

// RunFinished is the payload of EvRunFinished.
type RunFinished struct {
	Status    Status `json:"status"`
	MachineMS int64  `json:"machine_ms"`
	HumanMS   int64  `json:"human_ms"`
	Error     string `json:"error"`
}

// Note is the payload of EvNote: free-form text, such as a rehearsal report.
type Note struct {
	Text string            `json:"text"`
	Data map[string]string `json:"data"`
}

// Exec is one step execution (one step on one target, one attempt), projected
// from the step events.
type Exec struct {
	RunID         string
	StepID        string
	Target        string
	Attempt       int
	Status        Status
	StartedAt     time.Time
	FinishedAt    time.Time
	ExitCode      int
	Error         string
	Outputs       map[string]string
	SecretOutputs []string
	Log           string // the exact recorded log (StepFinished.LogBytes), binary included
	StartSeq      int64
	EndSeq        int64
}

// RunFilter selects runs for ListRuns. Zero fields match everything.
type RunFilter struct {
	Status      []Status
	RunbookName string
	Limit       int
}

// VerifyReport is the result of verifying a run's chain.
type VerifyReport struct {
	OK          bool   `json:"ok"`
	Events      int    `json:"events"`
	FirstBadSeq int64  `json:"first_bad_seq,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// Holder identifies the holder of a run lock.
type Holder struct {
	Host  string
	PID   int
	User  string
	Since time.Time
}
