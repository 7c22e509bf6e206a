package tui

import (
	"fmt"
	"github.com/drbook/drbook/runbooks"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/huh/v2"

	"github.com/drbook/drbook/steps"
)

// prompt is a question shown over the output area of the run screen.
type prompt interface {
	// Update handles a message; done reports that the prompt answered.
	Update(msg tea.Msg) (cmd tea.Cmd, done bool)
	// View renders the prompt in a box of width w.
	View(w int) string
	// Cancel gives up on the question (the run's context ended).
	Cancel()
	// Keys are the prompt's key bindings for the help line.
	Keys() []key.Binding
}

// dangerPrompt is the red box before a destructive step: it says exactly
// what runs where and needs the target's name typed, as GitHub asks for a
// repository's name before deleting it.
type dangerPrompt struct {
	c       *Common
	req     steps.ConfirmRequest
	reply   chan steps.ConfirmResponse
	user    string
	input   textinput.Model
	hint    string
	refuseP bool // esc pressed once: a second esc refuses
}

func newDangerPrompt(c *Common, m confirmMsg, user string) *dangerPrompt {
	ti := textinput.New()
	ti.Prompt = "> "
	ti.CharLimit = 200
	ti.Focus()
	return &dangerPrompt{c: c, req: m.req, reply: m.reply, user: user, input: ti}
}

func (p *dangerPrompt) Update(msg tea.Msg) (tea.Cmd, bool) {
	if km, ok := msg.(tea.KeyPressMsg); ok {
		switch km.String() {
		case "enter":
			typed := strings.TrimSpace(p.input.Value())
			if typed != p.req.Expect {
				p.hint = fmt.Sprintf("%q is not %q: nothing was run. Type the name exactly.", typed, p.req.Expect)
				p.input.SetValue("")
				p.refuseP = false
				return nil, false
			}
			p.reply <- steps.ConfirmResponse{OK: true, Typed: typed, By: p.user}
			return nil, true
		case "esc":
			if p.refuseP {
				p.reply <- steps.ConfirmResponse{OK: false, Typed: strings.TrimSpace(p.input.Value()), By: p.user}
				return nil, true
			}
			p.refuseP = true
			p.hint = "press esc again to refuse: the run stops (aborted, recorded)"
			return nil, false
		}
		p.refuseP = false
	}
	var cmd tea.Cmd
	p.input, cmd = p.input.Update(msg)
	return cmd, false
}

func (p *dangerPrompt) View(w int) string {
	st := p.c.Styles
	inner := max(20, w-4)
	var b strings.Builder
	b.WriteString(st.DangerTitle.Render("DANGER") + st.Danger.Render(" step "+p.req.StepID))
	if p.req.Title != "" {
		b.WriteString(" — " + p.req.Title)
	}
	b.WriteString("\n")
	if p.req.Message != "" {
		b.WriteString(strings.TrimSpace(p.req.Message) + "\n")
	}
	b.WriteString(st.Bold.Render("This will run:") + "\n")
	for i, t := range p.req.Targets {
		sum := ""
		if i < len(p.req.Summaries) {
			sum = p.req.Summaries[i]
		}
		b.WriteString("  on " + st.Danger.Render(t) + ": " + clean(sum) + "\n")
	}
	b.WriteString("Type " + st.Danger.Render(p.req.Expect) + " to go ahead.\n")
	p.input.SetWidth(max(10, inner-4))
	b.WriteString(p.input.View() + "\n")
	if p.hint != "" {
		b.WriteString(st.Hint.Render(p.hint) + "\n")
	}
	b.WriteString(st.Subtle.Render("enter confirm · esc esc refuse · ctrl+c interrupt"))
	return st.DangerBox.Width(min(w, inner+4)).Render(b.String())
}

func (p *dangerPrompt) Cancel() {}

func (p *dangerPrompt) Keys() []key.Binding {
	return []key.Binding{
		key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "confirm")),
		key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc esc", "refuse")),
		p.c.Keys.Interrupt,
	}
}

// confirmPrompt is a yes/no confirmation (a confirm step).
type confirmPrompt struct {
	c     *Common
	req   steps.ConfirmRequest
	reply chan steps.ConfirmResponse
	user  string
}

func (p *confirmPrompt) Update(msg tea.Msg) (tea.Cmd, bool) {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil, false
	}
	switch km.String() {
	case "y", "Y":
		p.reply <- steps.ConfirmResponse{OK: true, Typed: "y", By: p.user}
		return nil, true
	case "n", "N":
		p.reply <- steps.ConfirmResponse{OK: false, Typed: "n", By: p.user}
		return nil, true
	}
	return nil, false
}

func (p *confirmPrompt) View(w int) string {
	st := p.c.Styles
	var b strings.Builder
	b.WriteString(st.Bold.Render("Confirm step "+p.req.StepID) + " — " + p.req.Title + "\n")
	if p.req.Message != "" {
		b.WriteString(strings.TrimSpace(p.req.Message) + "\n")
	}
	for i, t := range p.req.Targets {
		if i < len(p.req.Summaries) {
			b.WriteString("  on " + t + ": " + clean(p.req.Summaries[i]) + "\n")
		}
	}
	b.WriteString(st.Bold.Render("y") + " confirm · " + st.Bold.Render("n") + " refuse")
	return st.Box.Width(w).Render(b.String())
}

func (p *confirmPrompt) Cancel() {}

func (p *confirmPrompt) Keys() []key.Binding {
	k := p.c.Keys
	return []key.Binding{k.Yes, key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "refuse"))}
}

// formPrompt shows a huh form (a decision, an input step's question) and
// answers with onDone when the form completes.
type formPrompt struct {
	c      *Common
	title  string
	form   *huh.Form
	onDone func()
	width  int
}

func (p *formPrompt) Update(msg tea.Msg) (tea.Cmd, bool) {
	m, cmd := p.form.Update(msg)
	if f, ok := m.(*huh.Form); ok {
		p.form = f
	}
	switch p.form.State {
	case huh.StateCompleted:
		p.onDone()
		return cmd, true
	case huh.StateAborted:
		// Esc does not answer: start the question again.
		p.form.State = huh.StateNormal
	}
	return cmd, false
}

func (p *formPrompt) View(w int) string {
	if p.width != w {
		p.width = w
		p.form = p.form.WithWidth(max(20, w-4))
	}
	st := p.c.Styles
	return st.Box.Width(w).Render(st.Bold.Render(p.title) + "\n" + p.form.View())
}

func (p *formPrompt) Cancel() {}

func (p *formPrompt) Keys() []key.Binding { return p.form.KeyBinds() }

// newDecidePrompt asks what to do with a failed or interrupted step; skip
// needs a reason.
func newDecidePrompt(c *Common, m decideMsg, user string) (*formPrompt, tea.Cmd) {
	choice := ""
	reason := ""
	var opts []huh.Option[string]
	for _, o := range m.req.Options {
		opts = append(opts, huh.NewOption(decisionLabel(o), string(o)))
	}
	if len(opts) > 0 {
		choice = string(m.req.Options[0])
	}
	what := "failed"
	if m.req.Interrupted {
		what = "was interrupted"
	}
	title := fmt.Sprintf("Step %s %s on %s", m.req.StepID, what, orOperator(m.req.Target))
	desc := ""
	if m.req.Err != nil {
		desc = clean(m.req.Err.Error())
	}
	sel := huh.NewSelect[string]().Title("What now?").Description(desc).Options(opts...).Value(&choice)
	in := huh.NewInput().Title("Why skip it? (recorded)").Value(&reason).Validate(func(s string) error {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("a reason is required to skip")
		}
		return nil
	})
	form := newHuhForm(0,
		huh.NewGroup(sel),
		huh.NewGroup(in).WithHideFunc(func() bool { return choice != string(steps.DecisionSkip) }),
	)
	p := &formPrompt{c: c, title: title, form: form}
	p.onDone = func() {
		d := steps.Decision{Kind: steps.DecisionKind(choice), By: user}
		if d.Kind == steps.DecisionSkip {
			d.Reason = strings.TrimSpace(reason)
		}
		m.reply <- d
	}
	return p, form.Init()
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

// newAskPrompt asks an input step's question with the field of its type.
// An answer given ahead (the answers file's steps: section) prefills it.
func newAskPrompt(c *Common, m askMsg, answers *runbooks.Answers) (*formPrompt, tea.Cmd) {
	in := m.req.Input
	prefill := in.Default
	if answers != nil {
		if a, ok := answers.Steps[m.req.StepID]; ok {
			prefill = a.Value
		}
	}
	fl := newField(&in, nil, prefill)
	form := newHuhForm(0, huh.NewGroup(fl.field))
	p := &formPrompt{c: c, title: "Step " + m.req.StepID + " asks", form: form}
	p.onDone = func() { m.reply <- answerText(fl.get()) }
	return p, form.Init()
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

// interruptPrompt asks before cancelling the run.
func interruptView(c *Common, w int, runID string) string {
	st := c.Styles
	var b strings.Builder
	b.WriteString(st.Hint.Render("Interrupt the run?") + "\n")
	b.WriteString("Running steps are stopped and recorded as interrupted.\n")
	if runID != "" {
		b.WriteString("It can be resumed: drbook resume " + runID + "\n")
	}
	b.WriteString(st.Bold.Render("y") + " interrupt · " + st.Bold.Render("n") + "/esc keep running")
	return st.Box.Width(w).Render(b.String())
}
