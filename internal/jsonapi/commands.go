package jsonapi

import (
	"github.com/drbook/drbook/state/evidence"
	"github.com/drbook/drbook/state/export"
)

// RunList is `drbook runs -o json`.
type RunList struct {
	Header
	Runs []RunRow `json:"runs"`
}

// RunRow is one recorded run.
type RunRow struct {
	ID      string `json:"id"`
	Runbook string `json:"runbook"`
	Status  string `json:"status"`
	Mode    string `json:"mode"`
	Host    string `json:"host"`
	// CreatedAt is when the run was created; FinishedAt when it ended
	// (absent while it has not).
	CreatedAt  string `json:"created_at"`
	FinishedAt string `json:"finished_at,omitempty"`
	// DurationMS is FinishedAt − CreatedAt (absent while unfinished).
	DurationMS *int64 `json:"duration_ms,omitempty"`
	// SealedSecrets: the run still holds sealed secrets (it can resume).
	SealedSecrets bool `json:"sealed_secrets"`
}

// Plan is `drbook plan -o json`.
type Plan struct {
	Header
	Runbook string     `json:"runbook"`
	SHA256  string     `json:"sha256"`
	Steps   []PlanStep `json:"steps"`
}

// PlanStep is one step of a plan, rendered as far as the answers and the
// inventory allow; what depends on earlier steps stays as its {{ … }}.
type PlanStep struct {
	ID      string   `json:"id"`
	Title   string   `json:"title,omitempty"`
	Kind    string   `json:"kind"`
	Danger  bool     `json:"danger"`
	Targets []string `json:"targets,omitempty"`
	// Params are the step's with: values (secrets masked); their keys are
	// the runbook's own.
	Params    map[string]any            `json:"params"`
	PerTarget map[string]map[string]any `json:"per_target,omitempty"`
	Check     string                    `json:"check,omitempty"`
	When      string                    `json:"when,omitempty"`
	// Runs is the guard's value when the answers fix it.
	Runs          *bool    `json:"runs,omitempty"`
	Pending       []string `json:"pending,omitempty"`
	Serial        int      `json:"serial,omitempty"`
	Confirm       string   `json:"confirm,omitempty"`
	ConfirmReason string   `json:"confirm_reason,omitempty"`
	// Approvals is how many other persons must approve the step before it
	// runs (docs/approvals.md); Approvers, when set, who may.
	Approvals int      `json:"approvals,omitempty"`
	Approvers []string `json:"approvers,omitempty"`
	// TimeoutMS limits each attempt on each target; absent when unlimited.
	TimeoutMS *int64 `json:"timeout_ms,omitempty"`
	Note      string `json:"note,omitempty"`
}

// RunbookList is `drbook runbooks -o json`.
type RunbookList struct {
	Header
	Runbooks []RunbookRow `json:"runbooks"`
}

// RunbookRow is one shipped runbook.
type RunbookRow struct {
	Name        string   `json:"name"`
	Title       string   `json:"title"`
	Steps       int      `json:"steps"`
	DangerSteps int      `json:"danger_steps"`
	Tags        []string `json:"tags,omitempty"`
	Problems    []string `json:"problems,omitempty"`
	// Path is the file of a runbook that is not shipped but was rehearsed.
	Path          string `json:"path,omitempty"`
	LastRehearsal string `json:"last_rehearsal,omitempty"`
	LastResult    string `json:"last_result,omitempty"`
	// LastRehearsalRun is the run id of the last rehearsal.
	LastRehearsalRun string `json:"last_rehearsal_run,omitempty"`
	// LastDrillResult is that rehearsal's drill result from its report:
	// "passed" or "failed" (absent when the run holds no report);
	// LastDrillVerdict says why it failed.
	LastDrillResult  string `json:"last_drill_result,omitempty"`
	LastDrillVerdict string `json:"last_drill_verdict,omitempty"`
}

// Lint is `drbook lint -o json`.
type Lint struct {
	Header
	OK       bool         `json:"ok"`
	Problems []Diagnostic `json:"problems"`
	// Errors are failures that are not about a position in a file
	// (a file that cannot be read).
	Errors []string `json:"errors"`
}

// Diagnostic is one problem at file:line:col.
type Diagnostic struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	// Severity is "error" or "warning".
	Severity string `json:"severity"`
}

// LabUp is `drbook lab up -o json`.
type LabUp struct {
	Header
	Dir       string    `json:"dir"`
	Inventory string    `json:"inventory"`
	Nodes     []LabNode `json:"nodes"`
}

// LabNode is one node a lab started.
type LabNode struct {
	Name      string `json:"name"`
	Dir       string `json:"dir"`
	DataDir   string `json:"data_dir"`
	BackupDir string `json:"backup_dir"`
	API       string `json:"api"`
	Raft      string `json:"raft"`
	SSH       string `json:"ssh"`
	PID       int    `json:"pid"`
	Log       string `json:"log"`
}

// LabStatus is `drbook lab status -o json`.
type LabStatus struct {
	Header
	Dir   string          `json:"dir"`
	Nodes []LabNodeStatus `json:"nodes"`
}

// LabNodeStatus is one lab node's process and ports.
type LabNodeStatus struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Alive   bool   `json:"alive"`
	SSH     bool   `json:"ssh"`
	API     bool   `json:"api"`
	HasData bool   `json:"has_data"`
}

// PluginList is `drbook plugins list -o json`.
type PluginList struct {
	Header
	Plugins []PluginRow `json:"plugins"`
}

// PluginRow is one plugin found or pinned.
type PluginRow struct {
	Name     string   `json:"name,omitempty"`
	Version  string   `json:"version,omitempty"`
	Kinds    []string `json:"kinds,omitempty"`
	Path     string   `json:"path"`
	SHA256   string   `json:"sha256,omitempty"`
	PinnedBy string   `json:"pinned_by,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// Replay is `drbook replay RUN_ID -o json` (or --format json): the run's
// export document (package state/export) with the schema header. Its
// fields are listed in docs/json.md; event data keeps the record's
// payload field names.
type Replay struct {
	Header
	export.Document
	// Signatures is the check of the run's SSH signatures (replay
	// --verify; null otherwise): see docs/signing.md.
	Signatures *evidence.Report `json:"signatures"`
}

// Verify is `drbook verify BUNDLE_DIR -o json`: the check of an evidence
// bundle (docs/signing.md).
type Verify struct {
	Header
	// Bundle is the directory checked, as given.
	Bundle string `json:"bundle"`
	// OK is true when every check passed; Error says what failed, naming
	// the file.
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// RunID and Events are the run and event count events.jsonl holds.
	RunID  string `json:"run_id,omitempty"`
	Events int    `json:"events"`
	// Signatures is the signature check (status "failed" with the reason
	// when the bundle failed before it).
	Signatures evidence.Report `json:"signatures"`
}

// Rehearsal is `drbook rehearse -o json`: what a drill measured.
type Rehearsal struct {
	Header
	RunID    string `json:"run_id"`
	Runbook  string `json:"runbook"`
	Scenario string `json:"scenario"`
	// Drill is the drill file's name; Unit what the counts count (keys,
	// rows; empty: keys); RTOBudgetMS the drill's limit on the RTO (0: none).
	Drill       string `json:"drill,omitempty"`
	Unit        string `json:"unit,omitempty"`
	RTOBudgetMS int64  `json:"rto_budget_ms,omitempty"`
	// RTOResult is met or missed against the budget (absent without one);
	// RTOMarginMS the budget minus the RTO: time to spare, negative when
	// missed (by that much). The split of the RTO into machine and
	// operator time is rto_machine_ms and rto_human_ms.
	RTOResult   string `json:"rto_result,omitempty"`
	RTOMarginMS *int64 `json:"rto_margin_ms,omitempty"`
	Nodes       int    `json:"nodes"`
	Status      string `json:"status"`
	Started     string `json:"started_at"`
	// Keys in the key store: loaded before the backup, written after it,
	// present before the disaster and after the recovery.
	KeysAtBackup    int      `json:"keys_at_backup"`
	KeysAfterBackup int      `json:"keys_written_after_backup"`
	KeysBefore      int      `json:"keys_before_disaster"`
	KeysAfter       int      `json:"keys_after_recovery"`
	KeysLost        int      `json:"keys_lost"`
	KeysUnexpected  int      `json:"keys_unexpected"`
	KeysChanged     int      `json:"keys_changed"`
	BackupAt        string   `json:"backup_at"`
	LastWriteAt     string   `json:"last_write_at"`
	DisasterAt      string   `json:"disaster_at"`
	RecoveredAt     string   `json:"recovered_at"`
	DisasterNodes   []string `json:"disaster_nodes"`
	// RTOMS is disaster → cluster verified healthy, split into machine
	// time and time waiting on the operator.
	RTOMS        int64 `json:"rto_ms"`
	RTOMachineMS int64 `json:"rto_machine_ms"`
	RTOHumanMS   int64 `json:"rto_human_ms"`
	// RPOKeys are the keys lost; RPOWindowMS the write window they span.
	RPOKeys     int             `json:"rpo_keys"`
	RPOWindowMS int64           `json:"rpo_window_ms"`
	Steps       []RehearsalStep `json:"steps"`
	Verdict     string          `json:"verdict,omitempty"`
}

// RehearsalStep is one step execution's place on a drill's timeline.
type RehearsalStep struct {
	StepID  string `json:"step_id"`
	Target  string `json:"target,omitempty"`
	Attempt int    `json:"attempt"`
	Status  string `json:"status"`
	// StartMS is since the disaster.
	StartMS    int64 `json:"start_ms"`
	DurationMS int64 `json:"duration_ms"`
}

// Version is `drbook version -o json`: the build (see internal/buildinfo).
type Version struct {
	Header
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	Modified   bool   `json:"modified"`
	CommitTime string `json:"commit_time"`
	BuildDate  string `json:"build_date"`
	GoVersion  string `json:"go_version"`
	Platform   string `json:"platform"`
	Source     string `json:"source"`
}
