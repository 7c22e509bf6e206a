package tui

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/state/termsafe"
	"github.com/drbook/drbook/steps"
)

// stepRow is one step of the run screen.
type stepRow struct {
	id, title, kind string
	danger          bool
	status          state.Status
	restored        bool
	reason          string
	start, end      time.Time
	targets         []*targetRow
	// out keeps the tail of the step's output; the record keeps it all.
	out *outRing
}

func (s *stepRow) target(name string) *targetRow {
	for _, t := range s.targets {
		if t.name == name {
			return t
		}
	}
	t := &targetRow{name: name, status: state.StatusPending}
	s.targets = append(s.targets, t)
	return t
}

// targetRow is one target of a fanned-out step.
type targetRow struct {
	name    string
	status  state.Status
	attempt int
	start   time.Time
	dur     time.Duration
	exit    int
	err     string
}

// RunView is the run screen: header with the RTO clock and progress, the
// step list with per-target rows, the live output of the followed step, the
// operator's questions, and the key help. It is fed the events of a run
// (package runlog): live, as the engine appends them to the record; in a
// replay, from the record. It folds the recorded ones with runlog either
// way, so both show the same table. It never runs a step: questions are
// answered on the channels the engine gave.
type RunView struct {
	c *Common

	runID, name, title, inventory string
	resumed, readOnly             bool
	// resumeSeq is the seq of the record's last run.resumed (0: none).
	resumeSeq int64
	verify    string
	verifyOK  bool

	started, finished time.Time
	// rtoBudget is the run's RTO budget (0: none), counted from rtoSince.
	rtoBudget time.Duration
	rtoSince  time.Time
	done      bool
	status    state.Status
	errText   string
	waiting   string
	// waitApproval: the wait is for another person's approval.
	waitApproval bool
	notices      []string
	note         string

	steps []*stepRow
	index map[string]int
	// fold folds the record's events (runlog.Recorded) as they come: the
	// statuses, times and durations of steps and targets are the fold's, so
	// the live screen and a replay of the record show the same table.
	fold *runlog.Folder

	selected int
	follow   bool
	// shown is the step whose output is on screen; -1 for none.
	shown int
	// wrap wraps long output lines (else they are cut at the edge).
	wrap bool
	// pinned: the person scrolled away from the end; top and topRow are then
	// the first line (numbered over the step's whole output) and the first
	// row of it on screen.
	pinned      bool
	top, topRow int
	// outH is the height of the output area in the last frame.
	outH int

	// prompt is the question on screen; queue holds the ones behind it.
	prompt   prompt
	queue    []tea.Msg
	askInt   bool // the interrupt question is on screen
	user     string
	answers  *runbooks.Answers
	nodeRank map[string]int // inventory order of the nodes
	ctx      context.Context
	record   Record

	help help.Model
	bar  progress.Model

	width, height int
}

// NewRunView returns an empty run screen; rb (may be nil) names the steps
// before they start.
func NewRunView(c *Common, rb *runbooks.Runbook) *RunView {
	v := &RunView{c: c, index: map[string]int{}, fold: liveFolder(), follow: true, shown: -1, status: state.StatusRunning, wrap: true, ctx: context.Background()}
	v.help = help.New()
	v.help.Styles = c.Styles.Help
	v.bar = progress.New(progress.WithoutPercentage(), progress.WithFillCharacters('█', '░'))
	v.bar.FullColor = c.Styles.ProgressFull
	v.bar.EmptyColor = c.Styles.ProgressEmpty
	if rb != nil {
		v.name, v.title = rb.Name, rb.Title
		for i := range rb.Steps {
			s := &rb.Steps[i]
			v.addStep(s.ID).setDef(s)
		}
	}
	return v
}

// RunContext is what the run screen needs to answer questions and to read
// the record: who answers, the answers file, the inventory (for the order
// of nodes) and the record.
type RunContext struct {
	Ctx       context.Context
	User      string
	Answers   *runbooks.Answers
	Inventory *runbooks.Inventory
	Record    Record
}

// SetContext gives the run screen what it needs beyond events.
func (v *RunView) SetContext(rc RunContext) {
	if rc.Ctx != nil {
		v.ctx = rc.Ctx
	}
	v.user, v.answers, v.record = rc.User, rc.Answers, rc.Record
	v.nodeRank = map[string]int{}
	if rc.Inventory != nil {
		for i, n := range rc.Inventory.Nodes {
			v.nodeRank[n.Name] = i
		}
	}
}

// SetResumed says the screen shows a resumed run: the recovery clock counts
// from the run's start, not the resume.
func (v *RunView) SetResumed(runID string, started time.Time) {
	v.runID, v.started = runID, started
}

// AskInterrupt shows (or hides) the question before interrupting the run.
func (v *RunView) AskInterrupt(on bool) { v.askInt = on }

func (s *stepRow) setDef(d *runbooks.Step) {
	s.title, s.kind, s.danger = d.Title, d.Run, d.Danger
}

func (v *RunView) addStep(id string) *stepRow {
	if i, ok := v.index[id]; ok {
		return v.steps[i]
	}
	s := &stepRow{id: id, status: state.StatusPending, out: newRing()}
	v.index[id] = len(v.steps)
	v.steps = append(v.steps, s)
	return s
}

func (v *RunView) step(id string) *stepRow {
	if id == "" {
		return nil
	}
	return v.addStep(id)
}

// SetReadOnly marks the screen as a replay, with the chain verification
// result shown in the header.
func (v *RunView) SetReadOnly(verify string, ok bool) {
	v.readOnly, v.verify, v.verifyOK = true, verify, ok
	v.follow = false
}

// SetSize implements Component.
func (v *RunView) SetSize(w, h int) {
	v.width, v.height = w, h
	v.help.SetWidth(w)
	v.bar.SetWidth(max(10, min(40, w-30)))
}

// ShortHelp implements help.KeyMap.
func (v *RunView) ShortHelp() []key.Binding {
	k := v.c.Keys
	if v.readOnly || v.done {
		return []key.Binding{k.Quit, k.Steps, k.Scroll, k.Wrap, k.Pager, k.Help}
	}
	return []key.Binding{k.Interrupt, k.Steps, k.Scroll, k.Wrap, k.Pager, k.Help}
}

// FullHelp implements help.KeyMap.
func (v *RunView) FullHelp() [][]key.Binding {
	k := v.c.Keys
	return [][]key.Binding{
		{k.Up, k.Down, k.Follow},
		{k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Wrap, k.Pager},
		{k.Interrupt, k.Quit, k.Help},
	}
}

// Handle applies one event of the run: a recorded one is folded (runlog)
// and the screen shows what the fold says, live and in replay alike; an
// in-memory one (output line, question, notice, step announcement) is
// shown as it comes.
func (v *RunView) Handle(ev runlog.Event) {
	switch e := ev.(type) {
	case runlog.Recorded:
		v.fold.Apply(e.Event)
		v.recorded(e.Event)
		if e.Event.StepID != "" {
			v.syncStep(e.Event.StepID)
		}
	case runlog.StepPending:
		s := v.step(e.StepID)
		s.title, s.kind, s.danger = e.Title, e.Kind, e.Danger
		for _, t := range e.Targets {
			s.target(t)
		}
		if v.follow {
			v.selectStep(v.index[e.StepID])
		}
	case runlog.OutputLine:
		s := v.step(e.StepID)
		kind := lineOut
		if e.Stderr {
			kind = lineStderr
		}
		attempt := 0
		for _, t := range s.targets {
			if t.name == e.Target {
				attempt = t.attempt
			}
		}
		v.appendOut(s, outLine{text: clean(capBytes(e.Line, maxLineBytes)), target: e.Target, attempt: attempt, kind: kind})
	case runlog.Question:
		v.waiting, v.waitApproval = clean(e.Prompt), e.Kind == state.WaitApproval
	case runlog.Notice:
		v.notice(e.StepID, e.Target, e.Text)
	}
}

// notice shows an informative line in a step's output and the notices.
func (v *RunView) notice(stepID, target, text string) {
	text = clean(text)
	v.notices = append(v.notices, text)
	if s := v.step(stepID); s != nil {
		v.appendOut(s, outLine{text: "» " + text, target: target, kind: lineNotice})
	}
}

// recordedNotice is the line a recorded decision or operator wait shows
// ("" for other events).
func recordedNotice(ev state.Event) string {
	switch ev.Type {
	case state.EvStepDecision:
		var p state.StepDecision
		if ev.Decode(&p) != nil {
			return ""
		}
		text := "decision: " + p.Decision
		if p.Reason != "" {
			text += " — " + p.Reason
		}
		if p.By != "" {
			text += " (by " + p.By + ")"
		}
		return text
	case state.EvOperatorWait:
		var p state.OperatorWait
		if ev.Decode(&p) != nil {
			return ""
		}
		text := fmt.Sprintf("operator %s answered %q", p.Kind, p.Response)
		if p.By != "" {
			text += " (by " + p.By + ")"
		}
		return text + fmt.Sprintf(" after %s", shortDur(time.Duration(p.DurationMS)*time.Millisecond))
	case state.EvApprovalRequested:
		var p state.ApprovalRequested
		if ev.Decode(&p) != nil {
			return ""
		}
		who := "another person"
		if len(p.Approvers) > 0 {
			who = strings.Join(p.Approvers, ", ")
		}
		return fmt.Sprintf("approval requested (#%d): %d by %s; run by %s", ev.Seq, p.Approvals, who, p.Operator)
	case state.EvApprovalGranted:
		var p state.ApprovalGranted
		if ev.Decode(&p) != nil {
			return ""
		}
		return fmt.Sprintf("approved by %s (%d of %d)", p.Approver, p.Count, p.Needed)
	case state.EvApprovalRefused:
		var p state.ApprovalRefused
		if ev.Decode(&p) != nil {
			return ""
		}
		return fmt.Sprintf("approval refused: %s: %s", p.Approver, p.Reason)
	}
	return ""
}

// liveFolder folds for the run screen: no logs (the screen keeps the tail of
// each step's output, the pager reads the record).
func liveFolder() *runlog.Folder {
	f := runlog.NewFolder()
	f.DropLogs()
	return f
}

// syncStep sets a step's status, times and target rows from the fold of
// the record (runlog), when the record has the step.
func (v *RunView) syncStep(id string) {
	fs, execs, ok := v.fold.Step(id)
	if !ok {
		return
	}
	s := v.step(id)
	if fs.Status != state.StatusPending {
		s.status = fs.Status
		if fs.Status == state.StatusSkipped && fs.Reason != "" {
			s.reason = fs.Reason
		}
	}
	s.start = fs.Start
	s.end = time.Time{}
	if fs.Status != state.StatusRunning {
		s.end = fs.End
	}
	if s.title == "" {
		s.title, s.kind = fs.Title, fs.Kind
	}
	s.danger = s.danger || fs.Danger
	// Done before the last resume: everything the record has of it came
	// before the run.resumed event.
	s.restored = false
	running := false
	if v.resumeSeq > 0 && (fs.Status == state.StatusSucceeded || fs.Status == state.StatusSkipped) {
		s.restored = len(execs) > 0
		for _, x := range execs {
			s.restored = s.restored && x.EndSeq > 0 && x.EndSeq < v.resumeSeq
		}
	}
	for _, x := range execs {
		running = running || x.Status == state.StatusRunning
	}
	if fs.Status.Terminal() && !running && v.shown >= 0 && v.steps[v.shown] != s {
		// Settled and not on screen: keep less of it (the record has all).
		s.out.shrink(doneRingLines, doneRingBytes)
	}
	// Target rows in the order the record first started them, then the
	// ones not started yet.
	var known []*targetRow
	seen := map[string]bool{}
	for _, x := range execs {
		if !x.Ran && x.Attempt == 0 {
			continue // a whole-step skip has no target row
		}
		t := s.target(x.Target)
		t.status, t.attempt, t.start, t.dur, t.exit, t.err = x.Status, x.Attempt, x.StartedAt, x.Duration(), x.ExitCode, x.Error
		if !seen[x.Target] {
			seen[x.Target] = true
			known = append(known, t)
		}
	}
	for _, t := range s.targets {
		if !seen[t.name] {
			known = append(known, t)
		}
	}
	s.targets = known
}

// recorded shows what the screen says of an event of the record beyond
// the fold's statuses: the run's header, the line that heads each
// execution's output, an execution's error, decisions and operator waits,
// the end of the run.
func (v *RunView) recorded(ev state.Event) {
	switch ev.Type {
	case state.EvRunCreated:
		var p state.RunCreated
		if ev.Decode(&p) != nil {
			return
		}
		v.runID = ev.RunID
		if p.RunbookName != "" {
			v.name = p.RunbookName
		}
		if p.RunbookTitle != "" {
			v.title = p.RunbookTitle
		}
		if p.Inventory != nil {
			v.inventory = p.Inventory.Path
		}
		if v.started.IsZero() {
			v.started = ev.Time
		}
		if p.RTO != nil {
			v.rtoBudget, v.rtoSince = time.Duration(p.RTO.BudgetMS)*time.Millisecond, p.RTO.Since
		}
		v.done, v.status = false, state.StatusRunning
	case state.EvRunResumed:
		var p state.RunResumed
		if ev.Decode(&p) != nil {
			return
		}
		v.runID, v.resumed, v.resumeSeq = ev.RunID, true, ev.Seq
		if p.Inventory != nil {
			v.inventory = p.Inventory.Path
		}
		v.done, v.status, v.errText, v.waiting = false, state.StatusRunning, "", ""
		v.notice("", "", fmt.Sprintf("resumed by %s on %s", p.User, p.Host))
		for _, st := range v.steps {
			v.syncStep(st.id)
		}
	case state.EvRunHandover:
		var p state.RunHandover
		if ev.Decode(&p) != nil {
			return
		}
		v.notice("", "", fmt.Sprintf("handover: %s took the run over from %s", p.To.Describe(), p.From.Describe()))
	case state.EvRecordSigned:
		var p state.RecordSigned
		if ev.Decode(&p) != nil {
			return
		}
		who := "(unknown)"
		if p.Actor != nil {
			who = p.Actor.String()
		}
		v.notice(p.StepID, "", fmt.Sprintf("record signed at seq %d (%s) by %s with %s", p.Seq, p.Reason, who, p.Key))
	case state.EvStepStarted:
		var p state.StepStarted
		if ev.Decode(&p) != nil {
			return
		}
		s := v.step(ev.StepID)
		if s.title == "" {
			s.title, s.kind = p.Title, p.Kind
		}
		s.danger = s.danger || p.Danger
		head := "▸ " + orOperator(ev.Target)
		if ev.Attempt > 1 {
			head += fmt.Sprintf(" (attempt %d)", ev.Attempt)
		}
		if sum := strings.TrimSpace(p.Summary); sum != "" {
			first, rest, multi := strings.Cut(sum, "\n")
			head += ": " + first
			if multi {
				head += fmt.Sprintf(" (+%d lines)", strings.Count(rest, "\n")+1)
			}
		}
		v.appendOut(s, outLine{text: clean(head), target: ev.Target, attempt: ev.Attempt, kind: lineHead})
		if v.follow {
			v.selectStep(v.index[ev.StepID])
		}
	case state.EvStepFinished:
		var p state.StepFinished
		if ev.Decode(&p) != nil {
			return
		}
		if p.Error != "" {
			v.appendOut(v.step(ev.StepID), outLine{text: clean("✗ " + orOperator(ev.Target) + ": " + p.Error), target: ev.Target, attempt: ev.Attempt, kind: lineFail})
		}
	case state.EvNote:
		var n state.Note
		if ev.Decode(&n) == nil && n.Data["kind"] == engine.NoteRTOCrossed {
			ms := func(k string) time.Duration {
				v, _ := strconv.ParseInt(n.Data[k], 10, 64)
				return time.Duration(v) * time.Millisecond
			}
			v.notice("", "", fmt.Sprintf("OVER RTO budget %s (machine %s, operator %s)", mmss(ms("budget_ms")), mmss(ms("machine_ms")), mmss(ms("human_ms"))))
		}
	case state.EvApprovalRequested, state.EvApprovalGranted, state.EvApprovalRefused:
		// The approval box (if on screen) counts what the record says.
		if ap, ok := v.prompt.(*approvalPrompt); ok && ap.w.StepID == ev.StepID {
			switch ev.Type {
			case state.EvApprovalGranted:
				var g state.ApprovalGranted
				if ev.Decode(&g) == nil && g.RequestSeq == ap.w.RequestSeq {
					ap.granted = append(ap.granted, g.Approver)
				}
			case state.EvApprovalRefused:
				var r state.ApprovalRefused
				if ev.Decode(&r) == nil && r.RequestSeq == ap.w.RequestSeq {
					ap.refused = append(ap.refused, engine.Refusal{Approver: r.Approver, Reason: r.Reason})
				}
			}
		}
		if text := recordedNotice(ev); text != "" {
			v.notice(ev.StepID, ev.Target, text)
		}
	case state.EvStepDecision, state.EvOperatorWait:
		// Decisions and operator waits are shown as the record has them,
		// live and in replay alike.
		if ev.Type == state.EvOperatorWait {
			v.waiting = ""
		}
		if text := recordedNotice(ev); text != "" {
			v.notice(ev.StepID, ev.Target, text)
		}
	case state.EvRunFinished:
		var p state.RunFinished
		if ev.Decode(&p) != nil {
			return
		}
		v.done, v.status, v.errText, v.finished = true, p.Status, clean(p.Error), ev.Time
		v.waiting = ""
		for _, s := range v.steps {
			if s.status == state.StatusRunning {
				s.status = p.Status
				for _, t := range s.targets {
					if t.status == state.StatusRunning {
						t.status = p.Status
					}
				}
			}
		}
	}
}

// Finish marks the run over when the engine returned without recording
// run.finished (it failed before the run began, or the record could not be
// written).
func (v *RunView) Finish(out engine.Outcome, err error) {
	if v.done {
		return
	}
	v.done, v.status = true, state.StatusFailed
	if out.Status != "" {
		v.status = out.Status
	}
	if v.runID == "" {
		v.runID = out.RunID
	}
	if err != nil {
		v.errText = clean(err.Error())
	}
	v.finished = v.c.Now()
}

func orOperator(t string) string {
	if t == "" {
		return "operator"
	}
	return t
}

// clean makes a line safe for the terminal (termsafe.Cell: escape
// sequences and controls from the remote side shown visibly, never
// interpreted). Lengths are bounded where lines are stored (capBytes).
func clean(s string) string {
	return termsafe.Cell(s)
}

func (v *RunView) appendOut(s *stepRow, l outLine) {
	s.out.add(l)
}

// outputSkipped counts output lines the bridge dropped while the screen was
// behind (they are in the record).
type outputSkipped struct {
	StepID string
	Lines  int
}

func (v *RunView) selectStep(i int) {
	if i < 0 || i >= len(v.steps) {
		return
	}
	v.selected = i
	if v.shown != i {
		if v.shown >= 0 && v.steps[v.shown].status.Terminal() {
			v.steps[v.shown].out.shrink(doneRingLines, doneRingBytes)
		}
		v.shown = i
		v.pinned = false
	}
}

// Update implements Component: the operator's questions, keys for the step
// list and the output, and the pager's messages.
func (v *RunView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case approvalClosedMsg:
		if ap, ok := v.prompt.(*approvalPrompt); ok && ap.w.StepID == msg.stepID {
			v.prompt = nil
			return v.nextPrompt()
		}
		v.queue = slices.DeleteFunc(v.queue, func(q tea.Msg) bool {
			am, ok := q.(approvalMsg)
			return ok && am.wait.StepID == msg.stepID
		})
		return nil
	case confirmMsg, askMsg, decideMsg, approvalMsg:
		// Targets running in parallel may ask at once: one question at a
		// time, in order.
		v.queue = append(v.queue, msg)
		if v.prompt == nil {
			return v.nextPrompt()
		}
		return nil
	case outputSkipped:
		if s := v.step(msg.StepID); s != nil {
			s.out.skip(msg.Lines)
		}
		return nil
	case pagerReadyMsg:
		return v.runPager(msg)
	case pagerDoneMsg:
		v.note = ""
		if msg.err != nil {
			v.note = "pager: " + clean(msg.err.Error())
		}
		return nil
	}
	if v.prompt != nil {
		cmd, done := v.prompt.Update(msg)
		if done {
			v.prompt = nil
			return tea.Batch(cmd, v.nextPrompt())
		}
		return cmd
	}
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	v.note = ""
	k := v.c.Keys
	switch {
	case key.Matches(km, k.Up):
		v.follow = false
		v.selectStep(v.selected - 1)
	case key.Matches(km, k.Down):
		v.follow = false
		v.selectStep(v.selected + 1)
	case key.Matches(km, k.Follow):
		if !v.readOnly {
			v.follow = true
			if i := v.current(); i >= 0 {
				v.selectStep(i)
			}
			v.pinned = false
		}
	case key.Matches(km, k.PageUp):
		v.scroll(-max(1, v.outH-1))
	case key.Matches(km, k.PageDown):
		v.scroll(max(1, v.outH-1))
	case key.Matches(km, k.Top):
		v.scrollTop()
	case key.Matches(km, k.Bottom):
		v.pinned = false
	case key.Matches(km, k.Wrap):
		v.wrap = !v.wrap
		v.topRow = 0
	case key.Matches(km, k.Pager):
		return v.openPager(v.shown)
	case key.Matches(km, k.Help):
		v.help.ShowAll = !v.help.ShowAll
	}
	return nil
}

// Prompting reports whether a question is on screen.
func (v *RunView) Prompting() bool { return v.prompt != nil }

// CancelPrompts drops every question (the run's context ended).
func (v *RunView) CancelPrompts() {
	if v.prompt != nil {
		v.prompt.Cancel()
	}
	v.prompt, v.queue = nil, nil
}

// nextPrompt opens the oldest question still waiting.
func (v *RunView) nextPrompt() tea.Cmd {
	if len(v.queue) == 0 {
		return nil
	}
	msg := v.queue[0]
	v.queue = v.queue[1:]
	switch msg := msg.(type) {
	case confirmMsg:
		if msg.req.Danger || msg.req.Expect != "" {
			v.prompt = newDangerPrompt(v.c, msg, v.user)
			return nil
		}
		v.prompt = newConfirmPrompt(v.c, msg, v.user)
	case approvalMsg:
		if i, ok := v.index[msg.wait.StepID]; ok {
			v.selectStep(i)
		}
		v.prompt = newApprovalPrompt(v.c, msg, v.user)
	case askMsg:
		p, cmd := newAskPrompt(v.c, msg, v.answers)
		v.prompt = p
		return cmd
	case decideMsg:
		if i, ok := v.index[msg.req.StepID]; ok {
			v.selectStep(i)
		}
		v.prompt = newDecidePrompt(v.c, msg, v.user, v.failedOutput(msg.req), func() tea.Cmd { return v.openPager(v.index[msg.req.StepID]) })
	}
	return nil
}

// failedOutput returns, for each target of a failed step (inventory
// order), its last attempt's error and output lines kept on screen.
func (v *RunView) failedOutput(req steps.DecideRequest) []failedTarget {
	s := v.step(req.StepID)
	if s == nil {
		return nil
	}
	var names []string
	for _, t := range strings.Split(req.Target, ",") {
		if t = strings.TrimSpace(t); t != "" || req.Target == "" {
			names = append(names, t)
		}
	}
	slices.SortStableFunc(names, func(a, b string) int { return v.rank(a) - v.rank(b) })
	out := make([]failedTarget, 0, len(names))
	for _, n := range names {
		ft := failedTarget{name: orOperator(n)}
		attempt := 0
		for _, t := range s.targets {
			if t.name == n {
				ft.exit, ft.err, attempt = t.exit, t.err, t.attempt
			}
		}
		ft.lines = s.out.lines(func(l outLine) bool {
			return l.target == n && (attempt == 0 || l.attempt == attempt) && (l.kind == lineOut || l.kind == lineStderr)
		})
		if len(ft.lines) > failLines {
			ft.cut = len(ft.lines) - failLines
			ft.lines = ft.lines[ft.cut:]
		}
		out = append(out, ft)
	}
	return out
}

// failLines is how many of a failed target's last lines the failure prompt
// shows (the pager shows all).
const failLines = 200

// rank is a node's place in the inventory (unknown nodes last).
func (v *RunView) rank(name string) int {
	if r, ok := v.nodeRank[name]; ok {
		return r
	}
	return len(v.nodeRank)
}

// lineRows renders one output line of step s as styled rows of width w.
func (v *RunView) lineRows(s *stepRow, l outLine, w int) []string {
	st := v.c.Styles
	prefix, cont := "", ""
	if (l.kind == lineOut || l.kind == lineStderr) && len(s.targets) > 1 && l.target != "" {
		prefix = l.target + "│ "
		cont = strings.Repeat(" ", ansi.StringWidth(l.target)) + "│ "
	}
	rows := wrapRows(l.text, w-ansi.StringWidth(prefix), v.wrap)
	style := st.Plain
	switch l.kind {
	case lineStderr:
		style = st.Stderr
	case lineHead:
		style = st.Command
	case lineFail:
		style = st.Fail
	case lineNotice:
		style = st.Notice
	}
	for i, r := range rows {
		p := cont
		if i == 0 {
			p = prefix
		}
		rows[i] = p + style.Render(r)
	}
	return rows
}

// outputWindow returns the h rows of the shown step's output on screen:
// the end when following, else from top/topRow.
func (v *RunView) outputWindow(h int) []string {
	if v.shown < 0 || h <= 0 {
		return nil
	}
	s := v.steps[v.shown]
	r := s.out
	w := max(1, v.width)
	if r.n == 0 {
		return nil
	}
	var rows []string
	if v.pinned {
		v.top = max(v.top, r.first())
		if v.top >= r.total {
			v.pinned = false
		}
	}
	if v.pinned {
		for i := v.top; i < r.total && len(rows) < h+v.topRow; i++ {
			rows = append(rows, v.lineRows(s, r.at(i), w)...)
		}
		if len(rows)-v.topRow < h {
			// The rest fits: show the end (and follow it again).
			v.pinned = false
			rows = nil
		} else {
			rows = rows[v.topRow:][:h]
		}
	}
	if !v.pinned {
		v.top, v.topRow = r.total, 0
		for i := r.total - 1; i >= r.first() && len(rows) < h; i-- {
			rows = append(v.lineRows(s, r.at(i), w), rows...)
			v.top = i
		}
		if len(rows) > h {
			v.topRow = len(rows) - h
			rows = rows[v.topRow:]
		}
	}
	if v.top == r.first() && v.topRow == 0 && r.first() > 0 && len(rows) > 0 {
		rows[0] = v.c.Styles.Hint.Render(fit(fmt.Sprintf("↑ %d earlier lines are not kept on screen: %s opens the whole output", r.first(), v.c.Keys.Pager.Help().Key), w))
	}
	return rows
}

// scroll moves the output window by n rows (negative: up).
func (v *RunView) scroll(n int) {
	if v.shown < 0 {
		return
	}
	s := v.steps[v.shown]
	r := s.out
	if r.n == 0 {
		return
	}
	h := max(1, v.outH)
	if !v.pinned {
		v.outputWindow(h) // sets top and topRow to the end's window
	}
	w := max(1, v.width)
	rowsOf := func(i int) int { return len(v.lineRows(s, r.at(i), w)) }
	line, row := max(v.top, r.first()), v.topRow
	for n < 0 {
		if row > 0 {
			d := min(row, -n)
			row -= d
			n += d
			continue
		}
		if line <= r.first() {
			break
		}
		line--
		row = rowsOf(line)
	}
	for n > 0 && line < r.total {
		rc := rowsOf(line)
		if row+n < rc {
			row += n
			break
		}
		n -= rc - row
		line, row = line+1, 0
	}
	v.top, v.topRow, v.pinned = line, row, true
	v.outputWindow(h) // unpins when the end is in view
}

func (v *RunView) scrollTop() {
	if v.shown < 0 {
		return
	}
	v.top, v.topRow, v.pinned = v.steps[v.shown].out.first(), 0, true
	v.outputWindow(max(1, v.outH))
}

// current is the running step, else the last started one.
func (v *RunView) current() int {
	last := -1
	for i, s := range v.steps {
		if s.status == state.StatusRunning {
			return i
		}
		if !s.start.IsZero() {
			last = i
		}
	}
	return last
}

// counts returns settled and total steps.
func (v *RunView) counts() (settled, total int) {
	for _, s := range v.steps {
		if s.status.Terminal() {
			settled++
		}
	}
	return settled, len(v.steps)
}

func (v *RunView) elapsed() time.Duration {
	if v.started.IsZero() {
		return 0
	}
	end := v.c.Now()
	if v.done && !v.finished.IsZero() {
		end = v.finished
	}
	return max(0, end.Sub(v.started))
}

func clock(d time.Duration) string {
	d = d.Truncate(time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

func shortDur(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Truncate(time.Second).String()
}

func (v *RunView) glyph(st state.Status) string {
	s := v.c.Styles
	switch st {
	case state.StatusSucceeded:
		return s.OK.Render("✓")
	case state.StatusFailed, state.StatusAborted:
		return s.Fail.Render("✗")
	case state.StatusRunning:
		return s.Running.Render("▶")
	case state.StatusSkipped:
		return s.Skipped.Render("↷")
	case state.StatusInterrupted:
		return s.Warn.Render("!")
	}
	return s.Pending.Render("·")
}

// spread puts left and right on one line of width w.
func spread(w int, left, right string) string {
	lw, rw := ansi.StringWidth(left), ansi.StringWidth(right)
	if lw+rw+1 > w {
		left = ansi.Truncate(left, max(0, w-rw-1), "…")
		lw = ansi.StringWidth(left)
	}
	return left + strings.Repeat(" ", max(1, w-lw-rw)) + right
}

func fit(s string, w int) string {
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s
}

func (v *RunView) rule(label string) string {
	st := v.c.Styles
	w := v.width
	if label == "" {
		return st.Rule.Render(strings.Repeat("─", max(0, w)))
	}
	label = fit(label, max(0, w-4))
	return st.Rule.Render("── ") + label + " " + st.Rule.Render(strings.Repeat("─", max(0, w-4-ansi.StringWidth(label))))
}

func (v *RunView) header() []string {
	st := v.c.Styles
	w := v.width
	name := v.name
	if v.title != "" {
		name += " — " + v.title
	}
	mode := "RUN"
	switch {
	case v.readOnly:
		mode = "REPLAY"
	case v.resumed:
		mode = "RESUMED"
	}
	line1 := spread(w, st.Accent.Render("drbook")+" "+st.Bold.Render(mode)+" "+name, v.rtoText())
	inv := v.inventory
	if inv == "" {
		inv = "-"
	}
	line2 := "run " + orDash(v.runID)
	if v.readOnly {
		if v.verifyOK {
			line2 += " · " + st.OK.Render(v.verify)
		} else {
			line2 += " · " + st.Fail.Render(v.verify)
		}
	}
	line2 += " · inventory " + inv
	done, total := v.counts()
	pct := 0.0
	if total > 0 {
		pct = float64(done) / float64(total)
	}
	line3 := v.bar.ViewAs(pct) + fmt.Sprintf(" %d/%d steps · ", done, total) + v.statusWord()
	return []string{line1, fit(line2, w), fit(line3, w)}
}

// RTO budget states of the header.
const (
	rtoNone = iota
	rtoOK
	rtoNear // the last 20 % of the budget
	rtoOver
)

// rtoState is where the run stands against its budget, and the time left
// (negative: over by).
func (v *RunView) rtoState() (int, time.Duration) {
	if v.rtoBudget <= 0 || v.rtoSince.IsZero() {
		return rtoNone, 0
	}
	end := v.c.Now()
	if v.done && !v.finished.IsZero() {
		end = v.finished
	}
	left := v.rtoBudget - end.Sub(v.rtoSince)
	switch {
	case left < 0:
		return rtoOver, left
	case left*5 <= v.rtoBudget:
		return rtoNear, left
	}
	return rtoOK, left
}

// rtoText is the header's recovery clock: the time since the run started,
// and with a budget the time left, in words as well as colour (so NO_COLOR
// tells the states apart): "12:03 left", "LOW 04:57 left", "OVER +02:10".
func (v *RunView) rtoText() string {
	st := v.c.Styles
	state, left := v.rtoState()
	if state == rtoNone {
		return st.Bold.Render("RTO " + clock(v.elapsed()))
	}
	spent := v.rtoBudget - left
	text := "RTO " + clock(spent) + " of " + mmss(v.rtoBudget)
	switch state {
	case rtoNear:
		return st.Hint.Render(text + " · LOW " + mmss(left) + " left")
	case rtoOver:
		return st.Danger.Reverse(true).Render(text + " · OVER +" + mmss(-left))
	}
	return st.Bold.Render(text + " · " + mmss(left) + " left")
}

// mmss formats d as MM:SS, or H:MM:SS from an hour up.
func mmss(d time.Duration) string {
	d = d.Truncate(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	return fmt.Sprintf("%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (v *RunView) statusWord() string {
	st := v.c.Styles
	switch {
	case v.waiting != "" && v.waitApproval:
		return st.Hint.Render("awaiting approval")
	case v.waiting != "":
		return st.Hint.Render("waiting for you")
	case !v.done:
		return st.Running.Render("running")
	case v.status == state.StatusSucceeded:
		return st.OK.Render("succeeded")
	case v.status == state.StatusInterrupted:
		return st.Warn.Render("interrupted")
	}
	return st.Fail.Render(string(v.status))
}

// listRow is one display row of the step list.
type listRow struct {
	step   int
	target *targetRow
}

func (v *RunView) rows() []listRow {
	rows := make([]listRow, 0, len(v.steps)+8)
	for i, s := range v.steps {
		rows = append(rows, listRow{step: i})
		if len(s.targets) > 1 {
			for _, t := range s.targets {
				rows = append(rows, listRow{step: i, target: t})
			}
		}
	}
	return rows
}

func (v *RunView) stepDur(s *stepRow) time.Duration {
	switch {
	case s.start.IsZero() || s.restored:
		return 0
	case s.status == state.StatusRunning:
		return v.c.Now().Sub(s.start)
	case !s.end.IsZero():
		return s.end.Sub(s.start)
	}
	var d time.Duration
	for _, t := range s.targets {
		d = max(d, t.dur)
	}
	return d
}

// stepList renders h rows of the step list around the selected step, and
// says how many rows are above and below it. A target row never shows
// without its step: when the window starts inside a fanned-out step, the
// step's row takes the first line.
func (v *RunView) stepList(h int) (out []string, above, below int) {
	if h <= 0 {
		return nil, 0, 0
	}
	st := v.c.Styles
	rows := v.rows()
	sel := 0
	for i, r := range rows {
		if r.step == v.selected && r.target == nil {
			sel = i
			break
		}
	}
	start := 0
	if len(rows) > h {
		start = min(max(0, sel-h/3), len(rows)-h)
	}
	end := min(len(rows), start+h)
	shown := append([]listRow{}, rows[start:end]...)
	if shown[0].target != nil {
		shown[0] = listRow{step: shown[0].step}
	}
	above, below = start, len(rows)-end
	idW := 4
	for _, r := range shown {
		idW = max(idW, ansi.StringWidth(v.steps[r.step].id))
	}
	idW = min(idW, 18)
	out = make([]string, 0, h)
	for _, r := range shown {
		s := v.steps[r.step]
		var line string
		if r.target != nil {
			t := r.target
			right := shortDur(t.dur)
			if t.status == state.StatusRunning && !t.start.IsZero() {
				right = shortDur(v.c.Now().Sub(t.start))
			}
			if t.status == state.StatusFailed && t.exit != 0 {
				right = fmt.Sprintf("exit %d  %s", t.exit, right)
			}
			if t.attempt > 1 {
				right = fmt.Sprintf("try %d  %s", t.attempt, right)
			}
			line = spread(v.width, "     └ "+v.glyph(t.status)+" "+t.name, st.Subtle.Render(right))
		} else {
			mark := "  "
			if s.danger {
				mark = st.Danger.Render("⚠") + " "
			}
			cursor := "  "
			if r.step == v.selected {
				cursor = st.Accent.Render("›") + " "
			}
			id := s.id
			if r.step == v.selected {
				id = st.Bold.Render(fmt.Sprintf("%-*s", idW, fit(id, idW)))
			} else {
				id = fmt.Sprintf("%-*s", idW, fit(id, idW))
			}
			title := s.title
			if s.restored {
				title += " (done before resume)"
			} else if s.status == state.StatusSkipped && s.reason != "" {
				title += " (skipped: " + s.reason + ")"
			}
			right := shortDur(v.stepDur(s))
			if len(s.targets) == 1 && s.targets[0].name != "" {
				right = s.targets[0].name + "  " + right
			}
			line = spread(v.width, cursor+v.glyph(s.status)+" "+mark+id+" "+title, st.Subtle.Render(strings.TrimSpace(right)))
		}
		out = append(out, line)
	}
	return out, above, below
}

// layout returns the heights of the step list and the area below it (the
// output, or the question when want > 0).
func (v *RunView) layout(want int) (listH, bodyH int) {
	helpH := 1
	if v.help.ShowAll {
		for _, col := range v.FullHelp() {
			helpH = max(helpH, len(col))
		}
	}
	body := v.height - 3 - 1 - 1 - 1 - helpH // header, rule, rule, status, help
	rows := len(v.steps)
	for _, s := range v.steps {
		if len(s.targets) > 1 {
			rows += len(s.targets)
		}
	}
	share := body * 2 / 5
	if want > 0 {
		// The question gets the room it needs; the list keeps at least the
		// current step.
		listH = min(rows, max(1, min(share, body-want)))
		return listH, max(1, body-listH)
	}
	listH = min(rows, max(3, share))
	return listH, max(1, body-listH)
}

// View implements Component: the whole run screen, with the question on
// screen (if any) in place of the output.
func (v *RunView) View() string {
	st := v.c.Styles
	if v.width <= 0 || v.height <= 0 {
		return ""
	}
	var over overlay
	var keys []key.Binding
	switch {
	case v.askInt:
		over = &interruptOverlay{c: v.c, runID: v.runID}
	case v.prompt != nil:
		over = v.prompt
	}
	want := 0
	if over != nil {
		want = over.Want(v.width)
		keys = over.Keys()
	}
	listH, bodyH := v.layout(want)
	lines := v.header()
	list, above, below := v.stepList(listH)
	var more []string
	if above > 0 {
		more = append(more, fmt.Sprintf("↑ %d more above", above))
	}
	if below > 0 {
		more = append(more, fmt.Sprintf("↓ %d more below", below))
	}
	moreLabel := ""
	if len(more) > 0 {
		moreLabel = st.Subtle.Render(strings.Join(more, " · "))
	}
	lines = append(lines, v.rule(moreLabel))
	lines = append(lines, list...)
	var body []string
	if over != nil {
		lines = append(lines, v.rule(""))
		body = strings.Split(over.View(v.width, bodyH), "\n")
	} else {
		label := "output"
		if v.shown >= 0 {
			s := v.steps[v.shown]
			label = "output · " + s.id
			if v.follow && !v.readOnly {
				label += " · following"
			}
			if !v.wrap {
				label += " · lines cut (" + v.c.Keys.Wrap.Help().Key + " wraps)"
			}
		}
		v.outH = bodyH
		body = v.outputWindow(bodyH)
		if v.pinned && v.shown >= 0 {
			label += fmt.Sprintf(" · line %d of %d", v.top+1, v.steps[v.shown].out.total)
		}
		lines = append(lines, v.rule(st.Subtle.Render(label)))
	}
	for len(body) < bodyH {
		body = append(body, "")
	}
	for _, l := range body[:bodyH] {
		lines = append(lines, fit(l, v.width))
	}
	lines = append(lines, fit(v.statusLine(), v.width))
	if keys != nil {
		lines = append(lines, fitLines(v.help.ShortHelpView(keys), v.width))
	} else {
		lines = append(lines, fitLines(v.help.View(v), v.width))
	}
	return strings.Join(lines, "\n")
}

func (v *RunView) statusLine() string {
	st := v.c.Styles
	switch {
	case v.note != "":
		return st.Hint.Render(v.note)
	case v.waiting != "":
		return st.Hint.Render("waiting: ") + v.waiting
	case v.done && v.readOnly:
		return "recorded run " + v.statusWord() + " · read-only"
	case v.done && v.status == state.StatusSucceeded:
		return st.OK.Render("run succeeded") + " in " + clock(v.elapsed()) + " · q to quit"
	case v.done && v.runID != "" && v.status != state.StatusAborted:
		return v.statusWord() + " · resume with: drbook resume " + v.runID + " · " + v.errText
	case v.done:
		return v.statusWord() + ": " + v.errText
	case len(v.notices) > 0:
		return st.Notice.Render("» ") + v.notices[len(v.notices)-1]
	}
	return st.Subtle.Render("running · ctrl+c asks before interrupting")
}

// fitLines cuts every line of s to width w (the help bubble can overflow
// when its ellipsis does not fit).
func fitLines(s string, w int) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = fit(l, w)
	}
	return strings.Join(lines, "\n")
}
