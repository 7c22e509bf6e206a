// Package runlog folds the events of a run's hash-chained record into the
// view every consumer shows: the header, each step with its executions,
// statuses, decisions (who and why), answers, outputs and output logs.
//
// Fold is the one reducer of a record. Replay (text, Markdown, JSON, TUI),
// export, runs and resume read a run through it, so a view shows only what
// the chain holds: the runs, execs and answers tables of the database are
// caches of the same fold (written by state.DB.Append) and never trusted
// over it. Fold applies the same rules as the caches (see state.DB.Append),
// so a cache that disagrees with Fold was altered.
//
// The package depends on package state only.
package runlog

import (
	"fmt"
	"sort"
	"time"

	"github.com/drbook/drbook/state"
)

// Header is what the chain says about the run as a whole.
type Header struct {
	RunID           string
	RunbookName     string
	RunbookTitle    string
	RunbookPath     string
	RunbookSHA256   string
	InventoryPath   string
	InventorySHA256 string
	Mode            string
	Labels          map[string]string
	// Created is the run.created event's time; Host, PID and User who
	// created it.
	Created time.Time
	Host    string
	PID     int
	User    string
	// Actor is who created the run (nil in older records).
	Actor   *state.Actor
	Resumes []Resume
	// Handovers are the run.handover events: the run passed from one
	// person to another on a resume.
	Handovers []Handover
	Status    state.Status
	Finished  time.Time
	Error     string
	MachineMS int64
	HumanMS   int64
	// RTO is the run's recovery-time budget as run.created recorded it
	// (nil: none).
	RTO *state.RTOBudget
	// LastTime, LastSeq and LastHash are the last event's.
	LastTime time.Time
	LastSeq  int64
	LastHash string
}

// Resume is one run.resumed event.
type Resume struct {
	Seq           int64
	Time          time.Time
	Host          string
	PID           int
	User          string
	AcceptChanged bool
	Actor         *state.Actor
}

// Handover is one run.handover event.
type Handover struct {
	Seq  int64
	Time time.Time
	state.RunHandover
}

// Signed is one record.signed event: who signed which head, and why (the
// signature itself is checked by package evidence).
type Signed struct {
	EventSeq int64
	Time     time.Time
	state.RecordSigned
}

// Exec is one step execution (step × target × attempt) as the chain tells
// it: the cached projection's fields (state.Exec) plus what its step.started
// said (title, kind, the command summary) and its recorded duration.
type Exec struct {
	state.Exec
	Title   string
	Kind    string
	Summary string
	Danger  bool
	// DurationMS is the step.finished duration (0 when unfinished).
	DurationMS int64
	// LogCutBytes is how much output the log could not keep.
	LogCutBytes int64
	// Ran is true when the execution was recorded running (step.started or
	// step.finished), false for one a skip decision alone created.
	Ran bool
	// Partial is true when Log holds only the checkpointed chunks of an
	// execution that never finished.
	Partial bool
}

// Duration is the execution's recorded duration, or the span between its
// start and its end when none was recorded (0 if unfinished).
func (x Exec) Duration() time.Duration {
	if x.DurationMS > 0 {
		return time.Duration(x.DurationMS) * time.Millisecond
	}
	if x.StartedAt.IsZero() || x.FinishedAt.IsZero() {
		return 0
	}
	return x.FinishedAt.Sub(x.StartedAt)
}

// Decision is one step.decision event.
type Decision struct {
	Seq     int64
	Time    time.Time
	StepID  string
	Target  string
	Attempt int
	state.StepDecision
}

// Wait is one operator.wait event.
type Wait struct {
	Seq    int64
	Time   time.Time
	StepID string
	state.OperatorWait
}

// ApprovalRequest is one approval.requested event with what was recorded
// for it: who approved (approval.granted) and which approvals did not count
// (approval.refused), in seq order.
type ApprovalRequest struct {
	Seq     int64
	Time    time.Time
	StepID  string
	Request state.ApprovalRequested
	Granted []state.ApprovalGranted
	Refused []state.ApprovalRefused
}

// AnswerChange is one answer event (the first for a name, or a change).
type AnswerChange struct {
	Seq  int64
	Time time.Time
	state.Answer
}

// Step is one step of the run, in the order the record first names it.
type Step struct {
	ID     string
	Title  string
	Kind   string
	Danger bool
	// Status is the step's settled status: skipped when the whole step
	// was skipped (a guard, an empty for_each, a resume decision), else
	// from its targets' last executions: failed if one failed, interrupted
	// if one never ended, running while one runs, succeeded when all did.
	Status state.Status
	// Reason is why a skipped step was skipped.
	Reason string
	// Execs are indexes into View.Execs, in start order.
	Execs []int
	// Start and End bound the step's executions and decisions.
	Start, End time.Time
}

// Duration is the step's wall time from its first start to its last end.
func (s Step) Duration() time.Duration {
	if s.Start.IsZero() || s.End.IsZero() || s.End.Before(s.Start) {
		return 0
	}
	return s.End.Sub(s.Start)
}

// View is a run folded from its record.
type View struct {
	Header    Header
	Steps     []Step
	Execs     []Exec
	Answers   map[string]state.Answer
	History   []AnswerChange
	Decisions []Decision
	Waits     []Wait
	// Notes are the note events' payloads (rehearsal reports).
	Notes []state.Note
	// Signatures are the record.signed events, in order.
	Signatures []Signed
	// Approvals are the approval requests of danger steps (the two-person
	// rule), each with the approvals granted and refused for it.
	Approvals []ApprovalRequest
	// Problems lists events Fold could not apply (a payload that does not
	// decode): the view is then incomplete at those seqs.
	Problems []Problem
}

// Problem is an event Fold could not apply.
type Problem struct {
	Seq    int64
	Reason string
}

type execKey struct {
	step, target string
	attempt      int
}

// Step returns the step with id, or nil.
func (v *View) Step(id string) *Step {
	for i := range v.Steps {
		if v.Steps[i].ID == id {
			return &v.Steps[i]
		}
	}
	return nil
}

// StateExecs returns the executions as the cache holds them (state.Exec),
// in the cache's order.
func (v *View) StateExecs() []state.Exec {
	out := make([]state.Exec, len(v.Execs))
	for i, x := range v.Execs {
		out[i] = x.Exec
	}
	return out
}

// Run returns the header as a state.Run, filled from the chain alone (the
// runbook and inventory sources from run.created or the last resume that
// changed them); HeadSeq and HeadHash are the last event's.
func (v *View) Run() state.Run {
	h := v.Header
	r := state.Run{
		ID: h.RunID, RunbookName: h.RunbookName, RunbookTitle: h.RunbookTitle, RunbookPath: h.RunbookPath,
		RunbookSHA256: h.RunbookSHA256, InventoryPath: h.InventoryPath, InventorySHA256: h.InventorySHA256,
		Mode: h.Mode, Status: h.Status, CreatedAt: h.Created, UpdatedAt: h.LastTime, FinishedAt: h.Finished,
		Host: h.Host, PID: h.PID, User: h.User, Labels: h.Labels, HeadSeq: h.LastSeq, HeadHash: h.LastHash,
	}
	if n := len(h.Resumes); n > 0 {
		last := h.Resumes[n-1]
		r.Host, r.PID, r.User = last.Host, last.PID, last.User
	}
	return r
}

// Fold folds a run's events (in seq order) into its view. It never fails:
// an event whose payload does not decode is listed in View.Problems.
func Fold(events []state.Event) View {
	f := NewFolder()
	for _, ev := range events {
		f.Apply(ev)
	}
	return f.View()
}

// Folder folds events one at a time, for a view that follows a live run:
// the engine hands each appended event to its observers, which Apply it.
// Fold(events) is the View of a Folder that applied events in order. A
// Folder is not safe for concurrent use.
type Folder struct {
	f     folder
	view  View
	dirty bool
}

// NewFolder returns an empty Folder.
func NewFolder() *Folder {
	f := &Folder{f: folder{execs: map[execKey]int{}, steps: map[string]int{}}}
	f.f.v.Answers = map[string]state.Answer{}
	return f
}

// DropLogs makes the Folder keep no output logs (Exec.Log stays empty): for
// a view that follows a long run and reads logs from the record when asked.
// Call it before the first Apply.
func (fo *Folder) DropLogs() {
	fo.f.noLogs = true
	fo.f.logLen = map[execKey]int64{}
}

// Step returns step id as folded so far, with its executions in start
// order (the order of View().Execs), without building the whole View: a
// live screen calls it on every event. ok is false when the record has no
// such step yet.
func (fo *Folder) Step(id string) (s Step, execs []Exec, ok bool) {
	i, ok := fo.f.steps[id]
	if !ok {
		return Step{}, nil, false
	}
	s = fo.f.v.Steps[i]
	idx := fo.f.byStep[id]
	execs = make([]Exec, len(idx))
	for j, k := range idx {
		execs[j] = fo.f.v.Execs[k]
	}
	sort.SliceStable(execs, func(a, b int) bool { return execLess(execs[a], execs[b]) })
	s.Execs = make([]int, len(execs))
	for j := range execs {
		s.Execs[j] = j
	}
	if reason, sk := fo.f.skipped[id]; sk {
		s.Status, s.Reason = state.StatusSkipped, reason
	} else {
		s.Status = stepStatus(execs, s.Execs)
	}
	return s, execs, true
}

// Apply folds the next event of the run (events come in seq order).
func (fo *Folder) Apply(ev state.Event) {
	fo.f.apply(ev)
	fo.dirty = true
}

// View returns the view of the events applied so far (recomputed only
// after an Apply). Callers must not modify the maps it holds (outputs,
// labels), which are the decoded payloads'.
func (fo *Folder) View() View {
	if fo.dirty || fo.view.Answers == nil {
		fo.view = fo.f.snapshot()
		fo.dirty = false
	}
	return fo.view
}

type folder struct {
	v       View
	execs   map[execKey]int
	steps   map[string]int
	skipped map[string]string
	// byStep: indexes into v.Execs of each step's executions.
	byStep map[string][]int
	// noLogs: keep no output logs (only their length), for views that
	// read logs elsewhere; a live run's logs can be large.
	noLogs bool
	logLen map[execKey]int64
}

func (f *folder) problem(ev state.Event, err error) {
	f.v.Problems = append(f.v.Problems, Problem{Seq: ev.Seq, Reason: string(ev.Type) + ": " + err.Error()})
}

func (f *folder) step(id string) *Step {
	i, ok := f.steps[id]
	if !ok {
		i = len(f.v.Steps)
		f.steps[id] = i
		f.v.Steps = append(f.v.Steps, Step{ID: id})
	}
	return &f.v.Steps[i]
}

func (f *folder) touch(s *Step, t time.Time) {
	if s.Start.IsZero() || t.Before(s.Start) {
		s.Start = t
	}
	if t.After(s.End) {
		s.End = t
	}
}

func (f *folder) exec(ev state.Event) (*Exec, bool) {
	i, ok := f.execs[execKey{ev.StepID, ev.Target, ev.Attempt}]
	if !ok {
		return nil, false
	}
	return &f.v.Execs[i], true
}

func (f *folder) newExec(ev state.Event) *Exec {
	k := execKey{ev.StepID, ev.Target, ev.Attempt}
	f.v.Execs = append(f.v.Execs, Exec{Exec: state.Exec{RunID: ev.RunID, StepID: ev.StepID, Target: ev.Target, Attempt: ev.Attempt}})
	f.execs[k] = len(f.v.Execs) - 1
	if f.byStep == nil {
		f.byStep = map[string][]int{}
	}
	f.byStep[ev.StepID] = append(f.byStep[ev.StepID], len(f.v.Execs)-1)
	return &f.v.Execs[len(f.v.Execs)-1]
}

// logLength is the length of an execution's log so far.
func (f *folder) logLength(ev state.Event, x *Exec) int64 {
	if f.noLogs {
		return f.logLen[execKey{ev.StepID, ev.Target, ev.Attempt}]
	}
	return int64(len(x.Log))
}

func (f *folder) apply(ev state.Event) {
	h := &f.v.Header
	if ev.Time.After(h.LastTime) {
		h.LastTime = ev.Time
	}
	h.LastSeq, h.LastHash = ev.Seq, ev.Hash
	switch ev.Type {
	case state.EvRunCreated:
		var p state.RunCreated
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		h.RunID, h.RunbookName, h.RunbookTitle, h.Labels = ev.RunID, p.RunbookName, p.RunbookTitle, p.Labels
		h.RunbookSHA256, h.InventorySHA256, h.Mode = p.RunbookSHA256, p.InventorySHA256, p.Mode
		h.Host, h.PID, h.User, h.Created, h.Status = p.Host, p.PID, p.User, ev.Time, state.StatusRunning
		h.Actor, h.RTO = p.Actor, p.RTO
		if p.Runbook != nil {
			h.RunbookPath = p.Runbook.Path
		}
		if p.Inventory != nil {
			h.InventoryPath = p.Inventory.Path
		}
	case state.EvRunResumed:
		var p state.RunResumed
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		h.Resumes = append(h.Resumes, Resume{Seq: ev.Seq, Time: ev.Time, Host: p.Host, PID: p.PID, User: p.User, AcceptChanged: p.AcceptChanged, Actor: p.Actor})
		h.Status, h.Finished, h.Error = state.StatusRunning, time.Time{}, ""
		if p.RunbookSHA256 != "" {
			h.RunbookSHA256 = p.RunbookSHA256
		}
		if p.InventorySHA256 != "" {
			h.InventorySHA256 = p.InventorySHA256
		}
		if p.Runbook != nil {
			h.RunbookPath = p.Runbook.Path
		}
		if p.Inventory != nil {
			h.InventoryPath = p.Inventory.Path
		}
	case state.EvRunFinished:
		var p state.RunFinished
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		h.Status, h.Finished, h.Error, h.MachineMS, h.HumanMS = p.Status, ev.Time, p.Error, p.MachineMS, p.HumanMS
	case state.EvAnswer:
		var p state.Answer
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		f.v.Answers[p.Name] = p
		f.v.History = append(f.v.History, AnswerChange{Seq: ev.Seq, Time: ev.Time, Answer: p})
	case state.EvStepStarted:
		var p state.StepStarted
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		x, ok := f.exec(ev)
		if !ok {
			x = f.newExec(ev)
		}
		*x = Exec{Exec: state.Exec{RunID: ev.RunID, StepID: ev.StepID, Target: ev.Target, Attempt: ev.Attempt,
			Status: state.StatusRunning, StartedAt: ev.Time, StartSeq: ev.Seq}, Title: p.Title, Kind: p.Kind, Summary: p.Summary, Danger: p.Danger, Ran: true}
		if f.noLogs {
			delete(f.logLen, execKey{ev.StepID, ev.Target, ev.Attempt})
		}
		s := f.step(ev.StepID)
		if s.Title == "" {
			s.Title, s.Kind = p.Title, p.Kind
		}
		s.Danger = s.Danger || p.Danger
		f.touch(s, ev.Time)
	case state.EvStepOutput:
		var p state.StepOutput
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		if x, ok := f.exec(ev); ok && x.Status == state.StatusRunning && f.logLength(ev, x) == p.Offset {
			if f.noLogs {
				f.logLen[execKey{ev.StepID, ev.Target, ev.Attempt}] += int64(len(p.Bytes()))
			} else {
				x.Log += string(p.Bytes())
			}
			x.Partial = true
		}
	case state.EvStepFinished:
		var p state.StepFinished
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		x, ok := f.exec(ev)
		if !ok {
			x = f.newExec(ev)
			x.StartedAt, x.StartSeq = ev.Time, ev.Seq
		}
		x.Status, x.FinishedAt, x.ExitCode, x.Error, x.EndSeq = p.Status, ev.Time, p.ExitCode, p.Error, ev.Seq
		x.Outputs, x.SecretOutputs = nilIfEmpty(p.Outputs), nilIfEmptySlice(p.SecretOutputs)
		x.Partial, x.DurationMS, x.LogCutBytes, x.Ran = false, p.DurationMS, p.LogCutBytes, true
		if !f.noLogs {
			x.Log = string(p.LogBytes())
		}
		f.touch(f.step(ev.StepID), ev.Time)
	case state.EvStepDecision:
		var p state.StepDecision
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		f.v.Decisions = append(f.v.Decisions, Decision{Seq: ev.Seq, Time: ev.Time, StepID: ev.StepID, Target: ev.Target, Attempt: ev.Attempt, StepDecision: p})
		s := f.step(ev.StepID)
		f.touch(s, ev.Time)
		switch p.Decision {
		case state.DecisionSkip:
			// A skip of no attempt skips the whole step: a guard, an
			// empty for_each, or the operator skipping a failed step
			// (Target then names the failed targets).
			if ev.Attempt == 0 {
				if f.skipped == nil {
					f.skipped = map[string]string{}
				}
				f.skipped[ev.StepID] = p.Reason
			}
			x, ok := f.exec(ev)
			switch {
			case !ok:
				x = f.newExec(ev)
				x.Status, x.StartedAt, x.FinishedAt, x.StartSeq, x.EndSeq = state.StatusSkipped, ev.Time, ev.Time, ev.Seq, ev.Seq
			case x.Status != state.StatusSucceeded && x.Status != state.StatusSkipped:
				x.Status, x.FinishedAt, x.EndSeq = state.StatusSkipped, ev.Time, ev.Seq
			}
			if len(p.Outputs) > 0 && x.Status == state.StatusSkipped {
				x.Outputs, x.SecretOutputs = p.Outputs, nilIfEmptySlice(p.SecretOutputs)
			}
		case state.DecisionInterrupted:
			if x, ok := f.exec(ev); ok && x.Status == state.StatusRunning {
				x.Status, x.FinishedAt, x.EndSeq = state.StatusInterrupted, ev.Time, ev.Seq
			}
		}
	case state.EvOperatorWait:
		var p state.OperatorWait
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		f.v.Waits = append(f.v.Waits, Wait{Seq: ev.Seq, Time: ev.Time, StepID: ev.StepID, OperatorWait: p})
	case state.EvApprovalRequested:
		var p state.ApprovalRequested
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		f.v.Approvals = append(f.v.Approvals, ApprovalRequest{Seq: ev.Seq, Time: ev.Time, StepID: ev.StepID, Request: p})
	case state.EvApprovalGranted, state.EvApprovalRefused:
		var g state.ApprovalGranted
		var r state.ApprovalRefused
		var reqSeq int64
		var err error
		if ev.Type == state.EvApprovalGranted {
			err, reqSeq = ev.Decode(&g), g.RequestSeq
		} else {
			err, reqSeq = ev.Decode(&r), r.RequestSeq
		}
		if err != nil {
			f.problem(ev, err)
			return
		}
		for i := range f.v.Approvals {
			a := &f.v.Approvals[i]
			if a.Seq != reqSeq || a.StepID != ev.StepID {
				continue
			}
			if ev.Type == state.EvApprovalGranted {
				a.Granted = append(a.Granted, g)
			} else {
				a.Refused = append(a.Refused, r)
			}
			return
		}
		f.problem(ev, fmt.Errorf("names request #%d, which is not an approval request of step %s", reqSeq, ev.StepID))
	case state.EvNote:
		var p state.Note
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		f.v.Notes = append(f.v.Notes, p)
	case state.EvRunHandover:
		var p state.RunHandover
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		h.Handovers = append(h.Handovers, Handover{Seq: ev.Seq, Time: ev.Time, RunHandover: p})
	case state.EvRecordSigned:
		var p state.RecordSigned
		if err := ev.Decode(&p); err != nil {
			f.problem(ev, err)
			return
		}
		f.v.Signatures = append(f.v.Signatures, Signed{EventSeq: ev.Seq, Time: ev.Time, RecordSigned: p})
	}
}

// snapshot returns the view so far: executions in the cache's order, step
// statuses settled. The folder's own state is left as it was.
func (f *folder) snapshot() View {
	v := f.v
	v.Execs = append([]Exec(nil), f.v.Execs...)
	v.Steps = append([]Step(nil), f.v.Steps...)
	v.Decisions = append([]Decision(nil), f.v.Decisions...)
	v.History = append([]AnswerChange(nil), f.v.History...)
	v.Waits = append([]Wait(nil), f.v.Waits...)
	v.Notes = append([]state.Note(nil), f.v.Notes...)
	v.Approvals = make([]ApprovalRequest, len(f.v.Approvals))
	for i, a := range f.v.Approvals {
		a.Granted = append([]state.ApprovalGranted(nil), a.Granted...)
		a.Refused = append([]state.ApprovalRefused(nil), a.Refused...)
		v.Approvals[i] = a
	}
	v.Problems = append([]Problem(nil), f.v.Problems...)
	v.Header.Resumes = append([]Resume(nil), f.v.Header.Resumes...)
	v.Header.Handovers = append([]Handover(nil), f.v.Header.Handovers...)
	v.Signatures = append([]Signed(nil), f.v.Signatures...)
	answers := make(map[string]state.Answer, len(f.v.Answers))
	for k, a := range f.v.Answers {
		answers[k] = a
	}
	v.Answers = answers
	settle(&v, f.skipped)
	return v
}

func settle(v *View, skipped map[string]string) {
	// The cache's order: start seq, then step, target, attempt.
	idx := make([]int, len(v.Execs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return execLess(v.Execs[idx[a]], v.Execs[idx[b]]) })
	execs := make([]Exec, len(idx))
	for i, j := range idx {
		execs[i] = v.Execs[j]
	}
	v.Execs = execs
	pos := make(map[string]int, len(v.Steps))
	for i := range v.Steps {
		v.Steps[i].Execs = nil
		pos[v.Steps[i].ID] = i
	}
	for i, x := range v.Execs {
		s := &v.Steps[pos[x.StepID]]
		s.Execs = append(s.Execs, i)
	}
	for i := range v.Steps {
		s := &v.Steps[i]
		if reason, ok := skipped[s.ID]; ok {
			s.Status, s.Reason = state.StatusSkipped, reason
			continue
		}
		s.Status = stepStatus(v.Execs, s.Execs)
	}
}

// execLess is the cache's order: start seq, then step, target, attempt.
func execLess(x, y Exec) bool {
	if x.StartSeq != y.StartSeq {
		return x.StartSeq < y.StartSeq
	}
	if x.StepID != y.StepID {
		return x.StepID < y.StepID
	}
	if x.Target != y.Target {
		return x.Target < y.Target
	}
	return x.Attempt < y.Attempt
}

// stepStatus settles a step from its targets' last executions.
func stepStatus(execs []Exec, idx []int) state.Status {
	last := map[string]Exec{}
	for _, i := range idx {
		x := execs[i]
		if p, ok := last[x.Target]; !ok || x.Attempt >= p.Attempt {
			last[x.Target] = x
		}
	}
	if len(last) == 0 {
		return state.StatusPending
	}
	st := state.StatusSucceeded
	allSkipped := true
	for _, x := range last {
		if x.Status != state.StatusSkipped {
			allSkipped = false
		}
		switch x.Status {
		case state.StatusFailed, state.StatusAborted:
			return state.StatusFailed
		case state.StatusInterrupted:
			st = state.StatusInterrupted
		case state.StatusRunning:
			if st != state.StatusInterrupted {
				st = state.StatusRunning
			}
		}
	}
	if allSkipped {
		return state.StatusSkipped
	}
	return st
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func nilIfEmptySlice(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
