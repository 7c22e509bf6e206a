package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/huh/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
)

// overlay is drawn in place of the output area of the run screen.
type overlay interface {
	// Want is the height the overlay would like at width w.
	Want(w int) int
	// View renders the overlay in exactly w columns and at most h rows.
	View(w, h int) string
	// Keys are its key bindings for the help line; they name the way out.
	Keys() []key.Binding
}

// prompt is a question of the engine shown over the run screen.
type prompt interface {
	overlay
	// Update handles a message; done reports that the prompt answered.
	Update(msg tea.Msg) (cmd tea.Cmd, done bool)
	// Cancel gives up on the question (the run's context ended).
	Cancel()
}

// boxHeight is the height a boxed overlay of these parts wants.
func boxHeight(head, body, foot []string) int { return 2 + len(head) + len(body) + len(foot) }

// scrollBox is the scroll state of a boxed overlay whose body may be taller
// than the screen: draw remembers the page height its scroll keys use.
type scrollBox struct{ off, page int }

// draw lays the parts out with boxed, in style, and keeps the page height.
func (b *scrollBox) draw(c *Common, style lipgloss.Style, w, h int, head, body, foot []string) string {
	b.page = h - 2 - len(head) - len(foot) - 2
	return boxed(c, style, w, h, head, body, foot, &b.off)
}

// boxed draws head, a scrollable body and foot in a bordered box of w×h:
// head and foot always show; the body scrolls from *off, with a row saying
// how much is above and below and which keys scroll. The inner width is
// w-4 (border and padding).
func boxed(c *Common, style lipgloss.Style, w, h int, head, body, foot []string, off *int) string {
	ih := max(1, h-2)
	// The foot (what to type, the keys) wins over the head, the head over
	// the body.
	if len(foot) > ih {
		foot = foot[len(foot)-ih:]
	}
	if len(head)+len(foot) > ih {
		head = head[:ih-len(foot)]
	}
	bh := ih - len(head) - len(foot)
	rows := make([]string, 0, ih)
	rows = append(rows, head...)
	rows = append(rows, scrollRows(c, body, bh, off)...)
	rows = append(rows, foot...)
	iw := max(1, w-4)
	for i, r := range rows {
		rows[i] = fit(r, iw)
	}
	return style.Width(w).Render(strings.Join(rows, "\n"))
}

// scrollRows returns at most h rows of body from *off (clamped), with
// indicator rows for what is above and below.
func scrollRows(c *Common, body []string, h int, off *int) []string {
	if h <= 0 {
		return nil
	}
	if len(body) <= h {
		*off = 0
		return body
	}
	hint := c.Styles.Hint
	k := c.Keys
	if h == 1 {
		return []string{hint.Render(fmt.Sprintf("↕ %d lines do not fit: enlarge the terminal", len(body)))}
	}
	maxOff := len(body) - (h - 1)
	*off = max(0, min(*off, maxOff))
	up := func() string {
		return hint.Render(fmt.Sprintf("↑ %s above (%s)", moreLines(*off), k.BoxPageUp.Help().Key))
	}
	down := func(n int) string {
		return hint.Render(fmt.Sprintf("↓ %s below (%s)", moreLines(n), k.BoxPageDown.Help().Key))
	}
	switch {
	case *off == 0:
		return append(append([]string{}, body[:h-1]...), down(len(body)-(h-1)))
	case *off == maxOff:
		return append([]string{up()}, body[*off:]...)
	}
	n := h - 2
	out := append([]string{up()}, body[*off:*off+n]...)
	return append(out, down(len(body)-*off-n))
}

func moreLines(n int) string {
	if n == 1 {
		return "1 more line"
	}
	return fmt.Sprintf("%d more lines", n)
}

// scrollKeys moves *off for the box scrolling keys; it reports whether km
// was one of them.
func scrollKeys(c *Common, km tea.KeyPressMsg, off *int, page int, lines bool) bool {
	k := c.Keys
	switch {
	case key.Matches(km, k.BoxPageUp):
		*off -= max(1, page)
	case key.Matches(km, k.BoxPageDown):
		*off += max(1, page)
	case lines && key.Matches(km, k.BoxUp):
		*off--
	case lines && key.Matches(km, k.BoxDown):
		*off++
	default:
		return false
	}
	*off = max(0, *off)
	return true
}

// wrapLines wraps s (several lines) to w cells, unstyled.
func wrapLines(s string, w int) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, wrapRows(clean(l), w, true)...)
	}
	return out
}

// commandRows shows what runs on each target exactly: every line of every
// command on its own numbered row, long lines wrapped (a ┊ marks the rows
// that continue a line), nothing joined or cut.
func commandRows(c *Common, targets, summaries []string, w int, danger bool) []string {
	st := c.Styles
	var out []string
	for i, t := range targets {
		name := st.Bold.Render(orOperator(t))
		if danger {
			name = st.Danger.Render(orOperator(t))
		}
		out = append(out, "on "+name+":")
		sum := ""
		if i < len(summaries) {
			sum = summaries[i]
		}
		lines := strings.Split(strings.TrimRight(sum, "\n"), "\n")
		for n, l := range lines {
			l = clean(expandTabs(l))
			gutter := "  │ "
			if len(lines) > 1 {
				gutter = fmt.Sprintf("%3d│ ", n+1)
			}
			cont := strings.Repeat(" ", ansi.StringWidth(gutter)-2) + "┊ "
			for j, r := range exactRows(l, w-ansi.StringWidth(gutter)) {
				g := cont
				if j == 0 {
					g = gutter
				}
				out = append(out, st.Subtle.Render(g)+st.Command.Render(r))
			}
		}
	}
	return out
}

// dangerPrompt is the red box before a destructive step: it says exactly
// what runs where and needs a word typed (the runbook's confirm word, else
// the target's name), as GitHub asks for a repository's name before
// deleting it.
type dangerPrompt struct {
	c       *Common
	req     steps.ConfirmRequest
	reply   chan steps.ConfirmResponse
	user    string
	input   textinput.Model
	hint    string
	refuseP bool // esc pressed once: a second esc refuses
	scrollBox
}

const escAgain = "press esc again to refuse: the run stops (aborted, recorded)"

func newDangerPrompt(c *Common, m confirmMsg, user string) *dangerPrompt {
	ti := textinput.New()
	ti.Prompt = "> "
	ti.CharLimit = 200
	ti.Focus()
	return &dangerPrompt{c: c, req: m.req, reply: m.reply, user: user, input: ti}
}

func (p *dangerPrompt) Update(msg tea.Msg) (tea.Cmd, bool) {
	k := p.c.Keys
	if km, ok := msg.(tea.KeyPressMsg); ok {
		if scrollKeys(p.c, km, &p.off, p.page, true) {
			return nil, false
		}
		switch {
		case key.Matches(km, k.Confirm):
			typed := strings.TrimSpace(p.input.Value())
			if typed != p.req.Expect {
				p.hint = fmt.Sprintf("%q is not %q: nothing was run. Type the word exactly.", typed, p.req.Expect)
				p.input.SetValue("")
				p.refuseP = false
				return nil, false
			}
			p.reply <- steps.ConfirmResponse{OK: true, Typed: typed, By: p.user}
			return nil, true
		case key.Matches(km, k.Refuse):
			if p.refuseP {
				p.reply <- steps.ConfirmResponse{OK: false, Typed: strings.TrimSpace(p.input.Value()), By: p.user}
				return nil, true
			}
			p.refuseP = true
			p.hint = escAgain
			return nil, false
		}
		if p.refuseP {
			p.refuseP, p.hint = false, ""
		}
	}
	var cmd tea.Cmd
	p.input, cmd = p.input.Update(msg)
	return cmd, false
}

func (p *dangerPrompt) parts(w int) (head, body, foot []string) {
	st := p.c.Styles
	iw := max(10, w-4)
	title := st.DangerTitle.Render("DANGER") + st.Danger.Render(" step "+p.req.StepID)
	if p.req.Title != "" {
		title += " — " + clean(p.req.Title)
	}
	head = wrapRows(title, iw, true)
	if p.req.Message != "" {
		body = append(body, wrapLines(strings.TrimSpace(p.req.Message), iw)...)
	}
	body = append(body, st.Bold.Render("This will run:"))
	body = append(body, commandRows(p.c, p.req.Targets, p.req.Summaries, iw, true)...)
	foot = wrapRows("Type "+st.Danger.Render(p.req.Expect)+" to go ahead.", iw, true)
	if r := strings.TrimSpace(p.req.Reason); r != "" {
		why := wrapLines("Why "+p.req.Expect+": "+r, iw)
		if len(why) > 3 {
			// The word and the input stay on screen; the whole reason is
			// in the runbook.
			why = append(why[:2], fit(why[2], iw-1)+"…")
		}
		foot = append(foot, why...)
	}
	p.input.SetWidth(max(10, iw-4))
	foot = append(foot, p.input.View())
	if p.hint != "" {
		foot = append(foot, wrapRows(st.Hint.Render(p.hint), iw, true)...)
	}
	return head, body, foot
}

func (p *dangerPrompt) Want(w int) int { return boxHeight(p.parts(w)) }

func (p *dangerPrompt) View(w, h int) string {
	head, body, foot := p.parts(w)
	return p.draw(p.c, p.c.Styles.DangerBox, w, h, head, body, foot)
}

func (p *dangerPrompt) Cancel() {}

func (p *dangerPrompt) Keys() []key.Binding {
	k := p.c.Keys
	return []key.Binding{k.Confirm, k.Refuse, k.Interrupt, k.BoxScroll}
}

// confirmPrompt is a yes/no confirmation (a confirm step).
type confirmPrompt struct {
	c     *Common
	req   steps.ConfirmRequest
	reply chan steps.ConfirmResponse
	user  string
	scrollBox
}

func newConfirmPrompt(c *Common, m confirmMsg, user string) *confirmPrompt {
	return &confirmPrompt{c: c, req: m.req, reply: m.reply, user: user}
}

func (p *confirmPrompt) Update(msg tea.Msg) (tea.Cmd, bool) {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil, false
	}
	k := p.c.Keys
	switch {
	case scrollKeys(p.c, km, &p.off, p.page, true):
	case key.Matches(km, k.Answer):
		p.reply <- steps.ConfirmResponse{OK: true, Typed: "y", By: p.user}
		return nil, true
	case key.Matches(km, k.Decline):
		p.reply <- steps.ConfirmResponse{OK: false, Typed: "n", By: p.user}
		return nil, true
	}
	return nil, false
}

func (p *confirmPrompt) parts(w int) (head, body, foot []string) {
	st := p.c.Styles
	iw := max(10, w-4)
	head = wrapRows(st.Bold.Render("Confirm step "+p.req.StepID)+" — "+clean(p.req.Title), iw, true)
	if p.req.Message != "" {
		body = append(body, wrapLines(strings.TrimSpace(p.req.Message), iw)...)
	}
	var sums []string
	var targets []string
	for i, t := range p.req.Targets {
		if i < len(p.req.Summaries) && p.req.Summaries[i] != "" {
			targets = append(targets, t)
			sums = append(sums, p.req.Summaries[i])
		}
	}
	body = append(body, commandRows(p.c, targets, sums, iw, false)...)
	k := p.c.Keys
	foot = []string{st.Bold.Render(k.Answer.Help().Key) + " confirm · " + st.Bold.Render(k.Decline.Help().Key) + " refuse"}
	return head, body, foot
}

func (p *confirmPrompt) Want(w int) int { return boxHeight(p.parts(w)) }

func (p *confirmPrompt) View(w, h int) string {
	head, body, foot := p.parts(w)
	return p.draw(p.c, p.c.Styles.Box, w, h, head, body, foot)
}

func (p *confirmPrompt) Cancel() {}

func (p *confirmPrompt) Keys() []key.Binding {
	k := p.c.Keys
	return []key.Binding{k.Answer, k.Decline, k.Interrupt, k.BoxScroll}
}

// failedTarget is what the failure prompt shows of one failed target.
type failedTarget struct {
	name  string
	exit  int
	err   string
	lines []outLine
	cut   int // earlier lines not shown here
}

// decidePrompt asks what to do with a failed or interrupted step. It shows
// the failed targets' last output beside the choices, so the error can be
// read while deciding; skip needs a reason, and esc in the reason goes back
// to the choices.
type decidePrompt struct {
	c       *Common
	req     steps.DecideRequest
	reply   chan steps.Decision
	user    string
	failed  []failedTarget
	choice  int
	reason  textinput.Model
	typing  bool // the skip reason is being typed
	hint    string
	off     int
	page    int
	atEnd   bool // the body starts scrolled to its end
	pagerFn func() tea.Cmd
}

func newDecidePrompt(c *Common, m decideMsg, user string, failed []failedTarget, pager func() tea.Cmd) *decidePrompt {
	ti := textinput.New()
	ti.Prompt = "> "
	ti.CharLimit = 500
	ti.Placeholder = "why it is done or not needed"
	return &decidePrompt{c: c, req: m.req, reply: m.reply, user: user, failed: failed, reason: ti, atEnd: true, pagerFn: pager}
}

func (p *decidePrompt) Update(msg tea.Msg) (tea.Cmd, bool) {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		if p.typing {
			var cmd tea.Cmd
			p.reason, cmd = p.reason.Update(msg)
			return cmd, false
		}
		return nil, false
	}
	k := p.c.Keys
	if scrollKeys(p.c, km, &p.off, p.page, false) {
		p.atEnd = false
		return nil, false
	}
	if p.typing {
		switch {
		case key.Matches(km, k.BackToChoices):
			p.typing, p.hint = false, ""
			p.reason.Blur()
			return nil, false
		case key.Matches(km, k.Record):
			r := strings.TrimSpace(p.reason.Value())
			if r == "" {
				p.hint = "a reason is required to skip (it is recorded); esc goes back to the choices"
				return nil, false
			}
			p.reply <- steps.Decision{Kind: steps.DecisionSkip, Reason: r, By: p.user}
			return nil, true
		}
		var cmd tea.Cmd
		p.reason, cmd = p.reason.Update(msg)
		return cmd, false
	}
	opts := p.req.Options
	switch {
	case km.String() == "up" || km.String() == "k":
		p.choice = (p.choice + len(opts) - 1) % max(1, len(opts))
		p.hint = ""
	case km.String() == "down" || km.String() == "j":
		p.choice = (p.choice + 1) % max(1, len(opts))
		p.hint = ""
	case key.Matches(km, k.Pager) && p.pagerFn != nil:
		return p.pagerFn(), false
	case key.Matches(km, k.Select) && len(opts) > 0:
		d := opts[p.choice]
		if d == steps.DecisionSkip {
			p.typing, p.hint = true, ""
			return p.reason.Focus(), false
		}
		p.reply <- steps.Decision{Kind: d, By: p.user}
		return nil, true
	case key.Matches(km, k.Back):
		p.hint = "choose what happens next: " + choiceNames(opts) + " (ctrl+c interrupts the run, it can be resumed)"
	}
	return nil, false
}

func choiceNames(opts []steps.DecisionKind) string {
	names := make([]string, len(opts))
	for i, o := range opts {
		names[i] = string(o)
	}
	return strings.Join(names, ", ")
}

func (p *decidePrompt) parts(w int, compact bool) (head, body, foot []string) {
	st := p.c.Styles
	iw := max(10, w-4)
	what := "failed"
	if p.req.Interrupted {
		what = "was interrupted"
	}
	where := orOperator(p.req.Target)
	if len(p.failed) > 0 {
		names := make([]string, len(p.failed))
		for i, f := range p.failed {
			names[i] = f.name
		}
		where = strings.Join(names, ", ")
	}
	title := st.Fail.Render(fmt.Sprintf("Step %s %s on %s", p.req.StepID, what, where))
	head = wrapRows(title, iw, true)
	errText := ""
	if p.req.Err != nil {
		errText = p.req.Err.Error()
		errRows := wrapLines(errText, iw)
		if len(errRows) > 3 {
			errRows = append(errRows[:2], fit(errRows[2], iw-1)+"…")
		}
		head = append(head, errRows...)
	}
	for _, f := range p.failed {
		label := "── " + f.name
		if f.exit != 0 {
			label += fmt.Sprintf(" · exit %d", f.exit)
		}
		body = append(body, st.Bold.Render(fit(label, iw)))
		if f.err != "" && f.err != errText {
			for _, r := range wrapLines(f.err, iw) {
				body = append(body, st.Fail.Render(r))
			}
		}
		if f.cut > 0 {
			body = append(body, st.Subtle.Render(fmt.Sprintf("(%d earlier lines: %s opens the whole output)", f.cut, p.c.Keys.Pager.Help().Key)))
		}
		if len(f.lines) == 0 {
			body = append(body, st.Subtle.Render("(no output)"))
		}
		for _, l := range f.lines {
			text, style := l.text, st.Plain
			if l.kind == lineStderr {
				text, style = "! "+text, st.Stderr
			}
			for _, r := range wrapRows(text, iw, true) {
				body = append(body, style.Render(r))
			}
		}
	}
	if !compact {
		foot = append(foot, st.Subtle.Render(strings.Repeat("╌", iw)))
	}
	switch {
	case p.typing && compact:
		p.reason.SetWidth(max(10, iw-4))
		foot = append(foot, p.reason.View())
	case p.typing:
		p.reason.SetWidth(max(10, iw-4))
		foot = append(foot, st.Bold.Render("Why skip it? (recorded)"), p.reason.View())
	case compact:
		// A short terminal: the choices on one row, the current one marked.
		var cs []string
		for i, o := range p.req.Options {
			if i == p.choice {
				cs = append(cs, st.Accent.Render("›")+st.Bold.Render(string(o)))
			} else {
				cs = append(cs, " "+string(o))
			}
		}
		foot = append(foot, strings.Join(cs, "  "))
	default:
		foot = append(foot, st.Bold.Render("What now?"))
		for i, o := range p.req.Options {
			cur := "  "
			label := decisionLabel(o)
			if i == p.choice {
				cur = st.Accent.Render("›") + " "
				label = st.Bold.Render(label)
			}
			foot = append(foot, cur+label)
		}
	}
	if p.hint != "" {
		foot = append(foot, wrapRows(st.Hint.Render(p.hint), iw, true)...)
	}
	return head, body, foot
}

func (p *decidePrompt) Want(w int) int { return boxHeight(p.parts(w, false)) }

func (p *decidePrompt) View(w, h int) string {
	head, body, foot := p.parts(w, false)
	if 2+len(head)+len(foot)+2 > h {
		head, body, foot = p.parts(w, true)
	}
	p.page = h - 2 - len(head) - len(foot) - 2
	if p.atEnd {
		p.off = len(body)
	}
	return boxed(p.c, p.c.Styles.Box, w, h, head, body, foot, &p.off)
}

func (p *decidePrompt) Cancel() {}

func (p *decidePrompt) Keys() []key.Binding {
	k := p.c.Keys
	if p.typing {
		return []key.Binding{k.Record, k.BackToChoices, k.Interrupt, k.BoxPages}
	}
	return []key.Binding{k.Choose, k.Select, k.Interrupt, k.BoxPages, k.Pager}
}

func decisionLabel(k steps.DecisionKind) string {
	switch k {
	case steps.DecisionRetry:
		return "retry — run it again on the failed targets"
	case steps.DecisionRedo:
		return "redo — run it again"
	case steps.DecisionSkip:
		return "skip — it is done or not needed (reason required)"
	case steps.DecisionAbort:
		return "abort — stop the run here"
	}
	return string(k)
}

// askPrompt shows an input step's question as a huh form. Esc does not
// answer: the question starts again, with a hint.
type askPrompt struct {
	c     *Common
	title string
	build func() (*huh.Form, func() any)
	form  *huh.Form
	get   func() any
	reply chan string
	width int
	hint  string
}

// newAskPrompt asks an input step's question with the field of its type.
// An answer given ahead (the answers file's steps: section) prefills it.
func newAskPrompt(c *Common, m askMsg, answers *runbooks.Answers) (*askPrompt, tea.Cmd) {
	in := m.req.Input
	prefill := in.Default
	if answers != nil {
		if a, ok := answers.Steps[m.req.StepID]; ok {
			prefill = a.Value
		}
	}
	p := &askPrompt{c: c, title: "Step " + m.req.StepID + " asks", reply: m.reply}
	p.build = func() (*huh.Form, func() any) {
		fl := newField(&in, nil, prefill)
		return newHuhForm(0, huh.NewGroup(fl.field)), fl.get
	}
	p.form, p.get = p.build()
	return p, p.form.Init()
}

func (p *askPrompt) Update(msg tea.Msg) (tea.Cmd, bool) {
	m, cmd := p.form.Update(msg)
	if f, ok := m.(*huh.Form); ok {
		p.form = f
	}
	switch p.form.State {
	case huh.StateCompleted:
		p.reply <- answerText(p.get())
		return cmd, true
	case huh.StateAborted:
		// Esc does not answer: ask again (a fresh form, never an empty box).
		p.form, p.get = p.build()
		p.width = 0
		p.hint = "the run waits for this answer (ctrl+c interrupts it; it can be resumed)"
		return p.form.Init(), false
	}
	return cmd, false
}

func (p *askPrompt) parts(w int) string {
	if p.width != w {
		p.width = w
		p.form = p.form.WithWidth(max(20, w-4))
	}
	st := p.c.Styles
	s := st.Bold.Render(p.title) + "\n" + p.form.View()
	if p.hint != "" {
		s += "\n" + st.Hint.Render(p.hint)
	}
	return s
}

func (p *askPrompt) Want(w int) int { return 2 + strings.Count(p.parts(w), "\n") + 1 }

func (p *askPrompt) View(w, h int) string {
	rows := strings.Split(p.parts(w), "\n")
	var off int
	return boxed(p.c, p.c.Styles.Box, w, h, nil, rows, nil, &off)
}

func (p *askPrompt) Cancel() {}

func (p *askPrompt) Keys() []key.Binding {
	return append(p.form.KeyBinds(), p.c.Keys.Interrupt)
}

// answerText is the string form of a field's answer, as steps.Input parses it.
func answerText(v any) string {
	switch x := v.(type) {
	case []string:
		return strings.Join(x, ",")
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return fmt.Sprint(v)
}

// interruptOverlay asks before cancelling the run.
type interruptOverlay struct {
	c     *Common
	runID string
}

func (o *interruptOverlay) parts(w int) (head, body, foot []string) {
	st := o.c.Styles
	k := o.c.Keys
	head = []string{st.Hint.Render("Interrupt the run?")}
	text := "Running steps are stopped and recorded as interrupted."
	if o.runID != "" {
		text += "\nIt can be resumed: drbook resume " + o.runID
	}
	body = wrapLines(text, max(10, w-4))
	foot = []string{st.Bold.Render(k.Yes.Help().Key) + " interrupt · " + st.Bold.Render(k.No.Help().Key) + " keep running"}
	return head, body, foot
}

func (o *interruptOverlay) Want(w int) int { return boxHeight(o.parts(w)) }

func (o *interruptOverlay) View(w, h int) string {
	head, body, foot := o.parts(w)
	var off int
	return boxed(o.c, o.c.Styles.Box, w, h, head, body, foot, &off)
}

func (o *interruptOverlay) Keys() []key.Binding {
	k := o.c.Keys
	return []key.Binding{k.Yes, k.No}
}
