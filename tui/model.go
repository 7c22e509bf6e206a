package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

// StartFunc starts a new run of rb with inputs and blocks until it ends; it
// must send every event to observe and ask op for every operator decision.
type StartFunc func(ctx context.Context, rb *runbooks.Runbook, inputs map[string]runbooks.Value, observe func(runlog.Event), op steps.Operator) (engine.Outcome, error)

// ResumeFunc resumes a recorded run, like StartFunc.
type ResumeFunc func(ctx context.Context, run state.Run, observe func(runlog.Event), op steps.Operator) (engine.Outcome, error)

// Options configure the program. Exactly what opens first follows from
// them: a replay, a run to resume, a runbook to run, the list of unfinished
// runs, or the picker.
type Options struct {
	// Items are the runbooks the picker offers; PickerTitle says from where.
	Items       []PickerItem
	PickerTitle string
	// Runbook, when set, skips the picker.
	Runbook *PickerItem
	// Unfinished runs are offered first.
	Unfinished []state.Run
	// ResumeRun, when set, resumes that run at once.
	ResumeRun *state.Run
	// Replay, when set, opens that recorded run read-only.
	Replay *Replay
	// Record reads the recorded output of a step for the pager (the run
	// screen keeps only the tail of each step in memory). *state.DB is one.
	Record Record

	Inventory *runbooks.Inventory
	Answers   *runbooks.Answers
	Start     StartFunc
	Resume    ResumeFunc

	// User is recorded as who confirmed and decided ($USER).
	User string
	// Now is the clock (nil: time.Now); tests inject a fixed one.
	Now func() time.Time
	// NoTick disables the one-second clock tick (tests).
	NoTick bool
}

// Result is what the program did, for the command's exit code.
type Result struct {
	// Started is true when a run was started or resumed.
	Started bool
	Outcome engine.Outcome
	Err     error
}

type screen int

const (
	screenResume screen = iota
	screenPicker
	screenForm
	screenRun
)

type tickMsg time.Time

// Model is the root of the program: it owns the screens and the engine's
// goroutine, and is the only part that returns a tea.View.
type Model struct {
	c    *Common
	opts Options
	ctx  context.Context

	screen  screen
	resume  *ResumeList
	picker  *Picker
	form    *InputsForm
	run     *RunView
	confirm bool // the interrupt question is showing

	bridge  *Bridge
	op      *Operator
	cancel  context.CancelFunc
	running bool
	// engineDone is closed when the engine's goroutine returned.
	engineDone chan struct{}
	result     Result
	note       string
	// interrupted is set by ctrl+c before a run started (Run returns
	// ErrInterrupted).
	interrupted bool
}

// New returns the root model. ctx bounds any run it starts.
func New(ctx context.Context, opts Options) *Model {
	c := NewCommon(opts.Now)
	if opts.User == "" {
		opts.User = engine.Operator()
	}
	b := NewBridge()
	m := &Model{c: c, opts: opts, ctx: ctx, bridge: b, op: NewOperator(b)}
	title := opts.PickerTitle
	m.picker = NewPicker(c, title, opts.Items).WithInventory(opts.Inventory)
	switch {
	case opts.Replay != nil:
		m.screen = screenRun
		m.run = NewRunView(c, replayRunbook(*opts.Replay))
		m.run.SetContext(RunContext{Ctx: ctx, User: opts.User, Record: replayRecord{opts.Replay}})
		txt, ok := verifyText(*opts.Replay)
		m.run.SetReadOnly(txt, ok)
		for _, ev := range replayEvents(*opts.Replay) {
			m.run.Handle(ev)
		}
		m.run.selectStep(0)
	case opts.ResumeRun != nil:
		m.screen = screenRun
	case opts.Runbook != nil && len(opts.Runbook.Runbook.Inputs) == 0:
		m.screen = screenRun
	case opts.Runbook != nil:
		m.screen = screenForm
		m.form = NewInputsForm(c, opts.Runbook.Runbook, opts.Inventory, opts.Answers, m.formBack())
	case len(opts.Unfinished) > 0:
		m.screen = screenResume
		m.resume = NewResumeList(c, opts.Unfinished)
		m.picker = m.picker.WithBack(true)
	default:
		m.screen = screenPicker
	}
	return m
}

// Result returns what happened, once the program ended.
func (m *Model) Result() Result { return m.result }

// Init implements tea.Model.
func (m *Model) Init() tea.Cmd {
	var cmds []tea.Cmd
	switch {
	case m.opts.ResumeRun != nil:
		cmds = append(cmds, m.startResume(*m.opts.ResumeRun))
	case m.opts.Runbook != nil && m.screen == screenRun:
		cmds = append(cmds, m.startRun(m.opts.Runbook.Runbook, map[string]runbooks.Value{}))
	case m.screen == screenForm:
		cmds = append(cmds, m.form.Init())
	}
	return tea.Batch(cmds...)
}

func (m *Model) tick() tea.Cmd {
	if m.opts.NoTick {
		return nil
	}
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

func (m *Model) launch(rb *runbooks.Runbook, fn func(ctx context.Context) (engine.Outcome, error)) tea.Cmd {
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancel = cancel
	m.running = true
	m.result.Started = true
	m.screen = screenRun
	m.run = NewRunView(m.c, rb)
	m.run.SetContext(RunContext{Ctx: m.ctx, User: m.opts.User, Answers: m.opts.Answers, Inventory: m.opts.Inventory, Record: m.opts.Record})
	m.run.SetSize(m.c.Width, m.c.Height)
	b := m.bridge
	done := make(chan struct{})
	m.engineDone = done
	go func() {
		defer close(done)
		out, err := fn(ctx)
		b.Send(runDoneMsg{out: out, err: err})
	}()
	return tea.Batch(b.Wait(), m.tick())
}

func (m *Model) startRun(rb *runbooks.Runbook, inputs map[string]runbooks.Value) tea.Cmd {
	if m.opts.Start == nil {
		m.note = "this drbook cannot start runs here"
		return nil
	}
	return m.launch(rb, func(ctx context.Context) (engine.Outcome, error) {
		return m.opts.Start(ctx, rb, inputs, m.bridge.Observe, m.op)
	})
}

func (m *Model) startResume(run state.Run) tea.Cmd {
	if m.opts.Resume == nil {
		m.note = "this drbook cannot resume runs here"
		return nil
	}
	cmd := m.launch(recordedRunbook(run), func(ctx context.Context) (engine.Outcome, error) {
		return m.opts.Resume(ctx, run, m.bridge.Observe, m.op)
	})
	m.run.SetResumed(run.ID, run.CreatedAt)
	return cmd
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.c.Width, m.c.Height = msg.Width, msg.Height
		m.picker.SetSize(msg.Width, msg.Height)
		if m.resume != nil {
			m.resume.SetSize(msg.Width, msg.Height)
		}
		if m.run != nil {
			m.run.SetSize(msg.Width, msg.Height)
		}
		if m.form != nil {
			m.form.SetSize(msg.Width, msg.Height)
		}
		return m, nil
	case tickMsg:
		if m.running {
			return m, m.tick()
		}
		return m, nil
	case batchMsg:
		var cmds []tea.Cmd
		for _, one := range msg {
			cmds = append(cmds, m.handleBridge(one))
		}
		if m.running {
			cmds = append(cmds, m.bridge.Wait())
		}
		return m, tea.Batch(cmds...)
	case pickMsg:
		it := msg.item
		if len(it.Runbook.Inputs) == 0 {
			return m, m.startRun(it.Runbook, map[string]runbooks.Value{})
		}
		m.form = NewInputsForm(m.c, it.Runbook, m.opts.Inventory, m.opts.Answers, m.formBack())
		m.screen = screenForm
		return m, m.form.Init()
	case formDoneMsg:
		cmd := m.startRun(msg.rb, msg.values)
		if m.screen == screenRun {
			m.form = nil
		}
		return m, cmd
	case formCancelMsg:
		if m.opts.Runbook != nil && len(m.opts.Items) == 0 {
			return m, tea.Quit
		}
		m.form = nil
		m.screen = screenPicker
		return m, nil
	case resumeMsg:
		return m, m.startResume(msg.run)
	case newRunMsg:
		m.screen = screenPicker
		return m, nil
	case tea.KeyPressMsg:
		return m, m.handleKey(msg)
	}
	return m, m.forward(msg)
}

// forward passes other messages (huh's internal ones, cursor blinks, the
// pager's) to the active screen.
func (m *Model) forward(msg tea.Msg) tea.Cmd {
	switch {
	case m.screen == screenRun && m.run != nil:
		return m.run.Update(msg)
	case m.screen == screenForm && m.form != nil:
		return m.form.Update(msg)
	}
	return nil
}

// formBack says what esc on a form's first input does: back to the picker,
// or quit when drbook was opened on one runbook.
func (m *Model) formBack() string {
	if m.opts.Runbook != nil && len(m.opts.Items) == 0 {
		return "quit"
	}
	return "back to the runbooks"
}

func (m *Model) handleKey(km tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	if m.screen != screenRun {
		if key.Matches(km, k.Interrupt) {
			m.interrupted = true
			return tea.Quit
		}
		switch m.screen {
		case screenResume:
			if key.Matches(km, k.Quit) {
				return tea.Quit
			}
			return m.resume.Update(km)
		case screenPicker:
			if key.Matches(km, k.Quit) {
				return tea.Quit
			}
			if key.Matches(km, k.Back) && m.resume != nil {
				m.screen = screenResume
				return nil
			}
			return m.picker.Update(km)
		case screenForm:
			return m.form.Update(km)
		}
		return nil
	}
	// Run screen.
	if m.run == nil {
		// Nothing started (this drbook cannot start or resume runs here).
		if key.Matches(km, k.Quit) || key.Matches(km, k.Interrupt) {
			return tea.Quit
		}
		return nil
	}
	if m.confirm {
		switch {
		case key.Matches(km, k.Yes), key.Matches(km, k.Interrupt):
			m.setConfirm(false)
			m.interrupt()
		case key.Matches(km, k.No):
			m.setConfirm(false)
		}
		return nil
	}
	if key.Matches(km, k.Interrupt) {
		if m.running {
			m.setConfirm(true)
			return nil
		}
		return tea.Quit
	}
	if m.run.Prompting() {
		return m.run.Update(km)
	}
	if key.Matches(km, k.Quit) {
		if m.running {
			m.note = "the run is still going: ctrl+c interrupts it (it can be resumed)"
			return nil
		}
		return tea.Quit
	}
	m.note = ""
	return m.run.Update(km)
}

func (m *Model) setConfirm(on bool) {
	m.confirm = on
	m.run.AskInterrupt(on)
}

// interrupt cancels the engine's context; the engine records the running
// steps as interrupted and returns.
func (m *Model) interrupt() {
	if m.cancel != nil {
		m.cancel()
	}
	m.run.CancelPrompts()
	m.note = "interrupting: waiting for the engine to record the interrupted steps…"
}

func (m *Model) handleBridge(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case EventMsg:
		m.run.Handle(msg.Event)
	case confirmMsg, askMsg, decideMsg, outputSkipped, approvalMsg, approvalClosedMsg:
		return m.run.Update(msg)
	case runDoneMsg:
		m.running = false
		m.run.CancelPrompts()
		m.setConfirm(false)
		if m.cancel != nil {
			m.cancel()
		}
		m.result.Outcome, m.result.Err = msg.out, msg.err
		m.run.Finish(msg.out, msg.err)
		m.note = ""
	}
	return nil
}

// View implements tea.Model.
func (m *Model) View() tea.View {
	v := tea.NewView(m.content())
	v.AltScreen = true
	v.WindowTitle = "drbook"
	return v
}

func (m *Model) content() string {
	if m.c.Width <= 0 || m.c.Height <= 0 {
		return ""
	}
	var s string
	switch m.screen {
	case screenResume:
		s = m.resume.View()
	case screenPicker:
		s = m.picker.View()
	case screenForm:
		s = m.form.View()
	case screenRun:
		if m.run == nil {
			return "starting…"
		}
		s = m.run.View()
		if m.note != "" {
			lines := strings.Split(s, "\n")
			if len(lines) >= 2 {
				lines[len(lines)-2] = m.c.Styles.Hint.Render(fit(m.note, m.c.Width))
			}
			s = strings.Join(lines, "\n")
		}
	}
	return clip(s, m.c.Height)
}

// clip keeps a frame inside the terminal: at most h lines (every part
// already fits its lines to the width).
func clip(s string, h int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

// drainResult takes the engine's result from the bridge when the program
// ended before it could show it.
func (m *Model) drainResult() {
	m.bridge.mu.Lock()
	defer m.bridge.mu.Unlock()
	for _, msg := range m.bridge.pending {
		if d, ok := msg.(runDoneMsg); ok {
			m.result.Outcome, m.result.Err = d.out, d.err
			m.running = false
		}
	}
}

// Run runs the program on the terminal until the person quits, and returns
// what happened. progOpts are passed to tea.NewProgram (tests give input,
// output and size).
func Run(ctx context.Context, opts Options, progOpts ...tea.ProgramOption) (Result, error) {
	m := New(ctx, opts)
	p := tea.NewProgram(m, progOpts...)
	if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return m.Result(), fmt.Errorf("terminal UI: %w", err)
	}
	if m.engineDone != nil {
		// The program ended while the engine may still run (a signal): let
		// it record the interruption before the process exits.
		m.cancel()
		select {
		case <-m.engineDone:
		case <-time.After(30 * time.Second):
		}
		if m.running {
			m.drainResult()
		}
	}
	if m.interrupted && !m.result.Started {
		return m.Result(), ErrInterrupted
	}
	return m.Result(), nil
}
