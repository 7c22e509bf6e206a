package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/termsafe"
)

// maxLineWidth caps a stored output line; longer lines are cut once, when
// they arrive, so no frame ever measures them again.
const maxLineWidth = 400

// stepRow is one step of the run screen.
type stepRow struct {
	id, title, kind string
	danger          bool
	status          state.Status
	restored        bool
	reason          string
	start, end      time.Time
	targets         []*targetRow
	// out holds the step's output lines, styled once when they arrived.
	out []string
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
// step list with per-target rows, the live output of the followed step, and
// the key help. It is fed engine events; a replay feeds it recorded ones.
type RunView struct {
	c *Common

	runID, name, title, inventory string
	resumed, readOnly             bool
	verify                        string
	verifyOK                      bool

	started, finished time.Time
	done              bool
	status            state.Status
	errText           string
	waiting           string
	notices           []string

	steps []*stepRow
	index map[string]int

	selected int
	follow   bool
	// shown is the step whose output the viewport holds; -1 for none.
	shown   int
	vpDirty bool
	pinned  bool // the person scrolled away from the end
	// top is the first line of the shown step's output in the viewport.
	// The viewport holds only the visible window, so a frame never
	// measures the whole output again (10k lines stay cheap).
	top int

	vp   viewport.Model
	help help.Model
	bar  progress.Model

	width, height int
	// promptKeys, when set, replace the help line (a prompt is open).
	promptKeys []key.Binding
}

// NewRunView returns an empty run screen; rb (may be nil) names the steps
// before they start.
func NewRunView(c *Common, rb *runbooks.Runbook) *RunView {
	v := &RunView{c: c, index: map[string]int{}, follow: true, shown: -1, status: state.StatusRunning}
	v.vp = viewport.New()
	v.vp.MouseWheelEnabled = false
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

func (s *stepRow) setDef(d *runbooks.Step) {
	s.title, s.kind, s.danger = d.Title, d.Run, d.Danger
}

func (v *RunView) addStep(id string) *stepRow {
	if i, ok := v.index[id]; ok {
		return v.steps[i]
	}
	s := &stepRow{id: id, status: state.StatusPending}
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
	v.vp.SetWidth(w)
}

// ShortHelp implements help.KeyMap.
func (v *RunView) ShortHelp() []key.Binding {
	k := v.c.Keys
	if v.readOnly || v.done {
		return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Quit, k.Help}
	}
	return []key.Binding{k.Up, k.Down, k.PageUp, k.Follow, k.Interrupt, k.Help}
}

// FullHelp implements help.KeyMap.
func (v *RunView) FullHelp() [][]key.Binding {
	k := v.c.Keys
	return [][]key.Binding{
		{k.Up, k.Down, k.Follow},
		{k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Interrupt, k.Quit, k.Help},
	}
}

// Handle applies one engine event.
func (v *RunView) Handle(ev engine.Event) {
	switch e := ev.(type) {
	case engine.RunStarted:
		v.runID, v.inventory, v.resumed = e.RunID, e.Inventory, e.Resumed
		if e.Runbook != "" {
			v.name = e.Runbook
		}
		if e.Title != "" {
			v.title = e.Title
		}
		if v.started.IsZero() {
			v.started = e.Time
		}
		v.done, v.status = false, state.StatusRunning
		for _, id := range e.Steps {
			v.addStep(id)
		}
	case engine.StepPending:
		s := v.step(e.StepID)
		s.title, s.kind, s.danger = e.Title, e.Kind, e.Danger
		for _, t := range e.Targets {
			s.target(t)
		}
		if v.follow {
			v.selectStep(v.index[e.StepID])
		}
	case engine.StepStarted:
		s := v.step(e.StepID)
		s.status = state.StatusRunning
		if s.start.IsZero() {
			s.start = e.Time
		}
		t := s.target(e.Target)
		t.status, t.attempt, t.start = state.StatusRunning, e.Attempt, e.Time
		head := "▸ " + orOperator(e.Target)
		if e.Attempt > 1 {
			head += fmt.Sprintf(" (attempt %d)", e.Attempt)
		}
		if e.Summary != "" {
			head += ": " + e.Summary
		}
		v.appendOut(s, v.c.Styles.Command.Render(clean(head)))
		if v.follow {
			v.selectStep(v.index[e.StepID])
		}
	case engine.OutputLine:
		s := v.step(e.StepID)
		line := clean(e.Line)
		if len(s.targets) > 1 && e.Target != "" {
			line = e.Target + "│ " + line
		}
		if e.Stderr {
			line = v.c.Styles.Stderr.Render(line)
		}
		v.appendOut(s, line)
	case engine.StepFinished:
		s := v.step(e.StepID)
		t := s.target(e.Target)
		t.status, t.dur, t.exit, t.err, t.attempt = e.Status, e.Duration, e.ExitCode, e.Err, e.Attempt
		if t.start.IsZero() {
			t.start = e.Time.Add(-e.Duration)
		}
		if e.Err != "" {
			v.appendOut(s, v.c.Styles.Fail.Render(clean("✗ "+orOperator(e.Target)+": "+e.Err)))
		}
	case engine.StepDone:
		s := v.step(e.StepID)
		s.status, s.restored, s.reason, s.end = e.Status, e.Restored, e.Reason, e.Time
		if s.start.IsZero() {
			s.start = e.Time
		}
		if e.Restored {
			for _, t := range s.targets {
				if t.status == state.StatusPending {
					t.status = e.Status
				}
			}
		}
	case engine.NeedsOperator:
		v.waiting = clean(e.Prompt)
	case engine.WaitOver:
		v.waiting = ""
	case engine.Notice:
		text := clean(e.Text)
		v.notices = append(v.notices, text)
		if s := v.step(e.StepID); s != nil {
			v.appendOut(s, v.c.Styles.Notice.Render("» "+text))
		}
	case engine.RunFinished:
		v.done, v.status, v.errText, v.finished = true, e.Status, clean(e.Err), e.Time
		v.waiting = ""
		for _, s := range v.steps {
			if s.status == state.StatusRunning {
				s.status = e.Status
				for _, t := range s.targets {
					if t.status == state.StatusRunning {
						t.status = e.Status
					}
				}
			}
		}
	}
}

// Finish marks the run over when the engine returned without a RunFinished
// event (it failed before the run began).
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
// interpreted) and bounds its width.
func clean(s string) string {
	s = termsafe.Cell(s)
	if len(s) > maxLineWidth {
		s = ansi.Truncate(s, maxLineWidth, "…")
	}
	return s
}

func (v *RunView) appendOut(s *stepRow, line string) {
	s.out = append(s.out, line)
	if v.shown >= 0 && v.steps[v.shown] == s {
		v.vpDirty = true
	}
}

func (v *RunView) selectStep(i int) {
	if i < 0 || i >= len(v.steps) {
		return
	}
	v.selected = i
	if v.shown != i {
		v.shown = i
		v.vpDirty = true
		v.pinned = false
	}
}

// sync refreshes the viewport after events: only when the shown step's
// output changed, and only with the visible window of it.
func (v *RunView) sync() {
	if v.shown < 0 && len(v.steps) > 0 {
		v.selectStep(0)
	}
	if !v.vpDirty || v.shown < 0 {
		return
	}
	v.vpDirty = false
	out := v.steps[v.shown].out
	h := max(1, v.vp.Height())
	if !v.pinned {
		v.top = max(0, len(out)-h)
	}
	v.top = max(0, min(v.top, len(out)-h))
	win := make([]string, 0, h)
	win = append(win, out[v.top:min(len(out), v.top+h)]...)
	v.vp.SetContentLines(win)
}

// scroll moves the output window by n lines (negative: up).
func (v *RunView) scroll(n int) {
	if v.shown < 0 {
		return
	}
	total := len(v.steps[v.shown].out)
	h := max(1, v.vp.Height())
	v.top = max(0, min(v.top+n, total-h))
	v.pinned = v.top < total-h
	v.vpDirty = true
}

// Update implements Component: keys for the step list and the output.
func (v *RunView) Update(msg tea.Msg) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
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
			v.vpDirty = true
		}
	case key.Matches(km, k.PageUp):
		v.scroll(-max(1, v.vp.Height()-1))
	case key.Matches(km, k.PageDown):
		v.scroll(max(1, v.vp.Height()-1))
	case key.Matches(km, k.Top):
		v.scroll(-1 << 30)
	case key.Matches(km, k.Bottom):
		v.pinned = false
		v.vpDirty = true
	case key.Matches(km, k.Help):
		v.help.ShowAll = !v.help.ShowAll
	}
	v.sync()
	return nil
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
	rto := "RTO " + clock(v.elapsed())
	line1 := spread(w, st.Accent.Render("drbook")+" "+st.Bold.Render(mode)+" "+name, st.Bold.Render(rto))
	inv := v.inventory
	if inv == "" {
		inv = "-"
	}
	line2 := "run " + orDash(v.runID)
	if v.readOnly {
		if v.verifyOK {
			line2 += " · " + st.OK.Render("chain verified ✓ "+v.verify)
		} else {
			line2 += " · " + st.Fail.Render("CHAIN BROKEN ✗ "+v.verify)
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (v *RunView) statusWord() string {
	st := v.c.Styles
	switch {
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

func (v *RunView) stepList(h int) []string {
	if h <= 0 {
		return nil
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
	idW := 4
	for _, r := range rows[start:end] {
		idW = max(idW, ansi.StringWidth(v.steps[r.step].id))
	}
	idW = min(idW, 18)
	out := make([]string, 0, h)
	for _, r := range rows[start:end] {
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
	return out
}

// layout returns the heights of the step list and the output area.
func (v *RunView) layout(overlayH int) (listH, bodyH int) {
	helpH := 1
	if v.help.ShowAll {
		helpH = 3
	}
	body := v.height - 3 - 1 - 1 - 1 - helpH // header, rule, rule, status, help
	rows := len(v.steps)
	for _, s := range v.steps {
		if len(s.targets) > 1 {
			rows += len(s.targets)
		}
	}
	share := body * 2 / 5
	if overlayH > 0 {
		// The question gets the room it needs; the list keeps at least the
		// current step.
		listH = min(rows, max(1, min(share, body-overlayH)))
		return listH, max(1, body-listH)
	}
	listH = min(rows, max(3, share))
	return listH, max(1, body-listH)
}

// View implements Component: the whole run screen.
func (v *RunView) View() string { return v.render("") }

// render draws the run screen; a non-empty overlay replaces the output area.
// It sizes the viewport to the room left and refreshes its window when that
// changed (Update and View run on the same goroutine in bubbletea).
func (v *RunView) render(overlay string) string {
	st := v.c.Styles
	if v.width <= 0 || v.height <= 0 {
		return ""
	}
	overlayH := 0
	if overlay != "" {
		overlayH = strings.Count(overlay, "\n") + 1
	}
	listH, bodyH := v.layout(overlayH)
	lines := v.header()
	lines = append(lines, v.rule(""))
	lines = append(lines, v.stepList(listH)...)
	if overlay != "" {
		lines = append(lines, v.rule(""))
		box := strings.Split(overlay, "\n")
		if len(box) > bodyH && bodyH >= 4 {
			// Keep the question's head and its input at the bottom.
			cut := len(box) - bodyH + 1
			head := box[:2]
			tail := box[2+cut:]
			box = append(append(append([]string{}, head...), v.c.Styles.Hint.Render(fmt.Sprintf("  … %d lines not shown: enlarge the terminal to see them", cut))), tail...)
		}
		for len(box) < bodyH {
			box = append(box, "")
		}
		for _, l := range box[:bodyH] {
			lines = append(lines, fit(l, v.width))
		}
	} else {
		label := "output"
		if v.shown >= 0 {
			s := v.steps[v.shown]
			label = "output · " + s.id
			if v.follow && !v.readOnly {
				label += " · following"
			}
			if v.pinned {
				label += fmt.Sprintf(" · line %d of %d", v.top+1, len(s.out))
			}
		}
		lines = append(lines, v.rule(st.Subtle.Render(label)))
		if v.vp.Height() != bodyH {
			v.vp.SetHeight(bodyH)
			v.vpDirty = true
		}
		v.sync()
		lines = append(lines, v.vp.View())
	}
	lines = append(lines, fit(v.statusLine(), v.width))
	if v.promptKeys != nil {
		lines = append(lines, fitLines(v.help.ShortHelpView(v.promptKeys), v.width))
	} else {
		lines = append(lines, fitLines(v.help.View(v), v.width))
	}
	return strings.Join(lines, "\n")
}

func (v *RunView) statusLine() string {
	st := v.c.Styles
	switch {
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
