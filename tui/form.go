package tui

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/huh/v2"
	"charm.land/lipgloss/v2"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state/termsafe"
)

// formDoneMsg says the operator started the run from the review screen,
// with every answer typed and checked.
type formDoneMsg struct {
	rb     *runbooks.Runbook
	values map[string]runbooks.Value
}

// formCancelMsg says the operator left the form (esc on its first input).
type formCancelMsg struct{}

// field is one huh field for a runbook input and how to read its answer.
type field struct {
	in    *runbooks.Input
	field huh.Field
	get   func() any
	// title, desc and options size a list field (see InputsForm.fit).
	title, desc string
	options     int
}

// newField builds the field of an input asked on its own (an input step):
// every node the input's label allows, validated by runbooks.CoerceInput.
func newField(in *runbooks.Input, inv *runbooks.Inventory, initial any) field {
	return newInputField(in, inv, runbooks.NodeChoices(in, inv, nil), initial, func(v any) error {
		_, err := runbooks.CoerceInput(in, v, inv)
		return err
	})
}

// newInputField builds the huh field for in: a masked input for secrets, a
// confirm for bools, selects for enums and nodes, a multi-select for nodes,
// and text inputs for the rest. choices are the nodes a node or nodes input
// may offer; initial (may be nil) prefills it; validate checks an answer.
func newInputField(in *runbooks.Input, inv *runbooks.Inventory, choices []string, initial any, validate func(any) error) field {
	title := termsafe.Text(in.Prompt)
	if title == "" {
		title = in.Name
	}
	desc := describeInput(in)
	if in.Type == runbooks.InputNode || in.Type == runbooks.InputNodes {
		desc += " · " + plural(len(choices), "node", "nodes") + " to choose from"
	}
	switch in.Type {
	case runbooks.InputBool:
		b, _ := initial.(bool)
		c := huh.NewConfirm().Key(in.Name).Title(title).Description(desc).Value(&b)
		return field{in: in, field: c, get: func() any { return b }}
	case runbooks.InputEnum:
		s, _ := initial.(string)
		sel := huh.NewSelect[string]().Key(in.Name).Title(title).Description(desc).
			Options(huh.NewOptions([]string(in.Options)...)...).Value(&s).
			Validate(func(v string) error { return validate(v) })
		return field{in: in, field: sel, get: func() any { return s }, title: title, desc: desc, options: len(in.Options)}
	case runbooks.InputNode:
		s, _ := initial.(string)
		if !slices.Contains(choices, s) {
			s = ""
		}
		sel := huh.NewSelect[string]().Key(in.Name).Title(title).Description(desc).
			Options(nodeOptions(inv, choices, nil)...).Value(&s).
			Validate(func(v string) error { return validate(v) })
		return field{in: in, field: sel, get: func() any { return s }, title: title, desc: desc, options: len(choices)}
	case runbooks.InputNodes:
		var picked []string
		for _, n := range nodeList(initial) {
			if slices.Contains(choices, n) {
				picked = append(picked, n)
			}
		}
		ms := huh.NewMultiSelect[string]().Key(in.Name).Title(title).Description(desc).
			Options(nodeOptions(inv, choices, picked)...).Value(&picked).
			Validate(func(v []string) error { return validate(v) })
		return field{in: in, field: ms, get: func() any { return slices.Clone(picked) }, title: title, desc: desc, options: len(choices)}
	}
	s := ""
	if initial != nil {
		s = fmt.Sprint(initial)
	}
	inp := huh.NewInput().Key(in.Name).Title(title).Description(desc).Value(&s).
		Validate(func(v string) error { return validate(v) })
	if in.Type == runbooks.InputSecret {
		inp = inp.EchoMode(huh.EchoModePassword)
	}
	return field{in: in, field: inp, get: func() any { return s }}
}

// nodeList reads a nodes answer: []string, a YAML list, or one name.
func nodeList(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	case string:
		if x != "" {
			return []string{x}
		}
	}
	return nil
}

func describeInput(in *runbooks.Input) string {
	parts := []string{in.Type}
	if in.Label != "" {
		parts = append(parts, "label "+in.Label)
	}
	if len(in.DistinctFrom) > 0 {
		parts = append(parts, "not "+strings.Join(in.DistinctFrom, ", "))
	}
	if in.Min != nil {
		parts = append(parts, fmt.Sprintf("min %d", *in.Min))
	}
	if in.Max != nil {
		parts = append(parts, fmt.Sprintf("max %d", *in.Max))
	}
	if in.Optional {
		parts = append(parts, "optional")
	}
	d := strings.Join(parts, " · ")
	if in.Description != "" {
		d = termsafe.Text(in.Description) + " (" + d + ")"
	}
	return d
}

// nodeOptions lists the nodes in choices (already in inventory order and
// filtered by runbooks.NodeChoices) with their host, picked ones selected.
func nodeOptions(inv *runbooks.Inventory, choices, picked []string) []huh.Option[string] {
	opts := make([]huh.Option[string], 0, len(choices))
	for _, name := range choices {
		label := name
		if inv != nil {
			if n := inv.Node(name); n != nil && n.Host != "" {
				label += "  " + n.Host
			}
		}
		opts = append(opts, huh.NewOption(label, name).Selected(slices.Contains(picked, name)))
	}
	return opts
}

// formKeyMap is huh's keymap with Quit on esc: ctrl+c belongs to the root
// (interrupt prompt).
func formKeyMap() *huh.KeyMap {
	km := huh.NewDefaultKeyMap()
	km.Quit = key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))
	return km
}

// newHuhForm is a form of the run screen's prompts.
func newHuhForm(width int, groups ...*huh.Group) *huh.Form {
	f := huh.NewForm(groups...).
		WithTheme(huh.ThemeFunc(huh.ThemeBase16)).
		WithKeyMap(formKeyMap()).
		WithShowHelp(true)
	if width > 0 {
		f = f.WithWidth(width)
	}
	return f
}

// inputsKeyMap is huh's keymap without its quit key: in the inputs form esc
// (back) belongs to InputsForm and ctrl+c (quit) to the root.
func inputsKeyMap() *huh.KeyMap {
	km := huh.NewDefaultKeyMap()
	km.Quit = key.NewBinding(key.WithDisabled())
	return km
}

// formStage is what the form shows: one input, or the review of all.
type formStage int

const (
	stageField formStage = iota
	stageReview
)

// InputsForm asks for the runbook's inputs before a run, one input per page,
// prefilled from the answers file (or the input's default), then shows every
// answer on a review screen where the run is started or an input changed.
// Node inputs offer only runbooks.NodeChoices given the earlier answers, and
// answers are checked with runbooks.CoerceInput and runbooks.CheckDistinct.
// Errors show once the operator acted on the field. It tells the root what
// happened through formDoneMsg and formCancelMsg.
type InputsForm struct {
	c   *Common
	rb  *runbooks.Runbook
	inv *runbooks.Inventory
	// back says what esc on the first input does ("back to the runbooks",
	// "quit").
	back string

	// raw holds each input's answer as its field holds it.
	raw map[string]any

	stage formStage
	// idx is the input shown; fromReview sends it back to the review once
	// answered (esc there cancels the change).
	idx        int
	fromReview bool
	cur        field
	form       *huh.Form
	// note replaces the field when a node input has nothing to offer.
	note string
	// acted turns validation on: nothing is an error before a key.
	acted bool

	// cursor is the review row; problem says why the run cannot start.
	cursor  int
	problem string

	help   help.Model
	width  int
	height int
}

// NewInputsForm builds the form for rb's inputs. back names what esc on the
// first input does (for the help line): the root acts on formCancelMsg.
func NewInputsForm(c *Common, rb *runbooks.Runbook, inv *runbooks.Inventory, answers *runbooks.Answers, back string) *InputsForm {
	h := help.New()
	h.Styles = c.Styles.Help
	f := &InputsForm{c: c, rb: rb, inv: inv, back: back, raw: map[string]any{}, help: h, width: c.Width, height: c.Height}
	// Resolved answers and defaults ({env:}/{file:} read, values typed);
	// problems with them are shown by the fields' validation.
	known, _, _ := runbooks.ResolveInputs(rb, inv, answers, false)
	for i := range rb.Inputs {
		in := &rb.Inputs[i]
		if v, ok := known[in.Name]; ok {
			f.raw[in.Name] = v.V
		} else if answers != nil {
			if a, ok := answers.Inputs[in.Name]; ok {
				switch a.Value.(type) { // not {env:}/{file:} references
				case string, bool, int64, float64, []any:
					f.raw[in.Name] = a.Value
				}
			}
		}
	}
	if len(rb.Inputs) == 0 {
		f.stage = stageReview
	} else {
		f.open(0)
	}
	return f
}

// Init starts the form.
func (f *InputsForm) Init() tea.Cmd {
	if f.form != nil {
		return f.form.Init()
	}
	return nil
}

// SetSize implements Component.
func (f *InputsForm) SetSize(w, h int) {
	f.width, f.height = w, h
	f.help.SetWidth(w)
	if f.stage == stageField && f.form != nil {
		f.fit()
	}
}

// fit sizes the open field to the screen: a list shows every option that
// fits, and scrolls beyond.
func (f *InputsForm) fit() {
	width := min(max(20, f.width), 100)
	fl := f.cur.field.WithWidth(width)
	// huh sizes a list's options as its height less its title and
	// description (as it wraps them inside the field's 2-cell frame).
	wrapped := func(s string) int {
		if s == "" {
			return 0
		}
		return lipgloss.Height(lipgloss.Wrap(s, width-2, ",.-; "))
	}
	h := min(wrapped(f.cur.title)+wrapped(f.cur.desc)+max(1, f.cur.options), f.fieldRoom())
	switch x := fl.(type) {
	case *huh.MultiSelect[string]:
		x.Height(h)
	case *huh.Select[string]:
		x.Height(h)
	}
	f.form = f.form.WithWidth(width).WithHeight(lipgloss.Height(fl.View()))
	// The group renders its fields on Update: render them at the new size.
	if m, _ := f.form.Update(formResizedMsg{}); m != nil {
		if ff, ok := m.(*huh.Form); ok {
			f.form = ff
		}
	}
}

// formResizedMsg makes huh render a field again after a resize.
type formResizedMsg struct{}

// chosen returns the checked node answers of the inputs other than name, as
// runbooks.NodeChoices and runbooks.CheckDistinct take them.
func (f *InputsForm) chosen(name string) map[string]any {
	out := map[string]any{}
	for i := range f.rb.Inputs {
		in := &f.rb.Inputs[i]
		if in.Name == name || (in.Type != runbooks.InputNode && in.Type != runbooks.InputNodes) {
			continue
		}
		raw, ok := f.raw[in.Name]
		if !ok {
			continue
		}
		if v, err := runbooks.CoerceInput(in, raw, f.inv); err == nil {
			out[in.Name] = v
		}
	}
	return out
}

// check coerces raw for in and checks it against the inputs it must be
// distinct from.
func (f *InputsForm) check(in *runbooks.Input, raw any) (any, error) {
	v, err := runbooks.CoerceInput(in, raw, f.inv)
	if err != nil {
		if in.Optional && isEmpty(raw) {
			return zeroValue(in.Type), nil
		}
		return nil, err
	}
	if in.Type == runbooks.InputNode || in.Type == runbooks.InputNodes {
		if err := runbooks.CheckDistinct(in, v, f.chosen(in.Name)); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []string:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// fieldRoom is the number of lines a field may take: the screen less the
// header (2), the error lines huh adds below the field (2) and the help
// line with a blank line above it (2).
func (f *InputsForm) fieldRoom() int { return max(4, f.height-6) }

// open shows input i, with the nodes it may offer given the other answers.
func (f *InputsForm) open(i int) {
	f.stage, f.idx, f.acted, f.note, f.problem = stageField, i, false, "", ""
	in := &f.rb.Inputs[i]
	var choices []string
	if in.Type == runbooks.InputNode || in.Type == runbooks.InputNodes {
		choices = runbooks.NodeChoices(in, f.inv, f.chosen(in.Name))
		switch {
		case f.inv == nil:
			f.note = "No inventory was given, so there are no nodes to choose from.\nQuit (ctrl+c) and start drbook with one: drbook -i inventory.yaml"
		case len(choices) == 0:
			f.note = "No node is left to choose for this input" + leftOut(in) + ".\nPress esc to change an earlier answer, or fix the inventory."
		}
	}
	if f.note != "" {
		f.cur, f.form = field{in: in, get: func() any { return []string(nil) }}, nil
		return
	}
	validate := func(v any) error {
		if !f.acted {
			return nil
		}
		_, err := f.check(in, v)
		return err
	}
	f.cur = newInputField(in, f.inv, choices, f.raw[in.Name], validate)
	theme := huh.ThemeFunc(huh.ThemeBase16)
	f.form = huh.NewForm(huh.NewGroup(f.cur.field.WithTheme(theme))).
		WithTheme(theme).
		WithKeyMap(inputsKeyMap()).
		WithShowHelp(false)
	f.fit()
}

// leftOut says why a node input may offer nothing.
func leftOut(in *runbooks.Input) string {
	var why []string
	if in.Label != "" {
		why = append(why, "label "+in.Label)
	}
	if len(in.DistinctFrom) > 0 {
		why = append(why, "the nodes of "+strings.Join(in.DistinctFrom, ", ")+" are left out")
	}
	if len(why) == 0 {
		return ""
	}
	return " (" + strings.Join(why, "; ") + ")"
}

// next moves on after input idx was answered.
func (f *InputsForm) next() tea.Cmd {
	if f.fromReview || f.idx+1 >= len(f.rb.Inputs) {
		return f.review()
	}
	f.open(f.idx + 1)
	return f.Init()
}

// review shows the review screen, the cursor on the first input with a
// problem if any.
func (f *InputsForm) review() tea.Cmd {
	f.stage, f.fromReview, f.form, f.problem = stageReview, false, nil, ""
	for i := range f.rb.Inputs {
		in := &f.rb.Inputs[i]
		if _, err := f.check(in, f.raw[in.Name]); err != nil {
			f.cursor = i
			return nil
		}
	}
	return nil
}

// Update implements Component.
func (f *InputsForm) Update(msg tea.Msg) tea.Cmd {
	if f.stage == stageReview {
		if km, ok := msg.(tea.KeyPressMsg); ok {
			return f.updateReview(km)
		}
		return nil
	}
	k := f.c.Keys
	if km, ok := msg.(tea.KeyPressMsg); ok {
		if key.Matches(km, k.Back) && !f.fieldOwns(km) {
			return f.back1()
		}
		f.acted = true
		if f.form == nil {
			if key.Matches(km, k.Enter) && f.cur.in.Optional {
				f.raw[f.cur.in.Name] = []string{}
				return f.next()
			}
			return nil
		}
	}
	if f.form == nil {
		return nil
	}
	m, cmd := f.form.Update(msg)
	if ff, ok := m.(*huh.Form); ok {
		f.form = ff
	}
	if f.form.State == huh.StateCompleted {
		f.raw[f.cur.in.Name] = f.cur.get()
		if _, err := f.check(f.cur.in, f.raw[f.cur.in.Name]); err != nil {
			// huh let it through (an input it does not validate): ask again.
			f.open(f.idx)
			f.acted = true
			f.problem = err.Error()
			return f.Init()
		}
		f.problem = ""
		return f.next()
	}
	return cmd
}

// fieldOwns reports whether the open field has a use for km right now (esc
// sets or clears a filter while one is typed or applied).
func (f *InputsForm) fieldOwns(km tea.KeyPressMsg) bool {
	if f.form == nil {
		return false
	}
	for _, kb := range f.cur.field.KeyBinds() {
		if kb.Enabled() && key.Matches(km, kb) {
			return true
		}
	}
	return false
}

// back1 is esc on a field: cancel a change made from the review, or go back
// to the previous input (keeping what was typed), or leave the form.
func (f *InputsForm) back1() tea.Cmd {
	switch {
	case f.fromReview:
		return f.review()
	case f.idx > 0:
		if f.form != nil {
			f.raw[f.cur.in.Name] = f.cur.get()
		}
		f.open(f.idx - 1)
		return f.Init()
	}
	return func() tea.Msg { return formCancelMsg{} }
}

func (f *InputsForm) updateReview(km tea.KeyPressMsg) tea.Cmd {
	k := f.c.Keys
	n := len(f.rb.Inputs)
	switch {
	case key.Matches(km, k.Up):
		f.cursor = max(0, f.cursor-1)
	case key.Matches(km, k.Down):
		f.cursor = max(0, min(n-1, f.cursor+1))
	case key.Matches(km, k.Edit):
		if f.cursor < n {
			f.open(f.cursor)
			f.fromReview = true
			return f.Init()
		}
	case key.Matches(km, k.Back):
		if n == 0 {
			return func() tea.Msg { return formCancelMsg{} }
		}
		f.open(n - 1)
		f.fromReview = true
		return f.Init()
	case key.Matches(km, k.Start):
		vals, err := f.Values()
		if err != nil {
			f.problem = "cannot start: " + err.Error()
			return nil
		}
		rb := f.rb
		return func() tea.Msg { return formDoneMsg{rb: rb, values: vals} }
	}
	return nil
}

// Values checks every answer; an error names the bad inputs.
func (f *InputsForm) Values() (map[string]runbooks.Value, error) {
	vals := map[string]runbooks.Value{}
	var errs []error
	for i := range f.rb.Inputs {
		in := &f.rb.Inputs[i]
		v, err := f.check(in, f.raw[in.Name])
		if err != nil {
			errs = append(errs, fmt.Errorf("input %s: %w", in.Name, err))
			continue
		}
		vals[in.Name] = runbooks.Value{V: v, Secret: in.Type == runbooks.InputSecret}
	}
	return vals, errors.Join(errs...)
}

func zeroValue(typ string) any {
	switch typ {
	case runbooks.InputBool:
		return false
	case runbooks.InputInt:
		return int64(0)
	case runbooks.InputNodes:
		return []string{}
	}
	return ""
}

// showValue renders an answer for the review: secrets masked (never their
// length), node lists joined, nothing as "(none)".
func showValue(in *runbooks.Input, v any) string {
	if isEmpty(v) {
		return "(none)"
	}
	switch {
	case in.Type == runbooks.InputSecret:
		return "•••••• (secret, hidden)"
	case in.Type == runbooks.InputBool:
		if b, _ := v.(bool); b {
			return "yes"
		}
		return "no"
	case in.Type == runbooks.InputNodes:
		return strings.Join(nodeList(v), ", ")
	}
	return fmt.Sprint(v)
}

// View implements Component.
func (f *InputsForm) View() string {
	st := f.c.Styles
	w := f.width
	what, where := "inputs", fmt.Sprintf("input %d of %d", f.idx+1, len(f.rb.Inputs))
	if f.stage == stageReview {
		what, where = "review", plural(len(f.rb.Inputs), "input", "inputs")
	}
	head := st.Accent.Render("drbook") + " " + st.Bold.Render(what) + " · " + f.rb.Name
	if f.rb.Title != "" {
		head += " — " + f.rb.Title
	}
	lines := []string{spread(w, head, st.Subtle.Render(where)), st.Rule.Render(strings.Repeat("─", max(0, w)))}
	if f.stage == stageReview {
		lines = append(lines, f.reviewLines()...)
	} else {
		if f.form != nil {
			lines = append(lines, fitLines(f.form.View(), w))
		} else {
			in := f.cur.in
			title := termsafe.Cell(in.Prompt)
			if title == "" {
				title = in.Name
			}
			lines = append(lines, st.Bold.Render(fit(title, w)), st.Subtle.Render(fit(describeInput(in), w)), "")
			for _, l := range strings.Split(wrapText(f.note, w), "\n") {
				lines = append(lines, st.Hint.Render(fit(l, w)))
			}
		}
		if f.problem != "" {
			lines = append(lines, st.Fail.Render(fit(f.problem, w)))
		}
	}
	body := strings.Join(lines, "\n")
	if gap := f.height - strings.Count(body, "\n") - 2; gap > 0 {
		body += strings.Repeat("\n", gap)
	}
	return body + "\n" + fitLines(f.help.View(f), w)
}

// reviewLines lists every input with its answer; the cursor row can be
// changed with enter.
func (f *InputsForm) reviewLines() []string {
	st := f.c.Styles
	w := f.width
	out := strings.Split(wrapText("Check every answer before the run starts: s starts it, enter changes the input under the cursor.", w), "\n")
	out = append(out, "")
	nameW := 6
	for i := range f.rb.Inputs {
		nameW = max(nameW, len(f.rb.Inputs[i].Name))
	}
	nameW = min(nameW, 20)
	promptW := 0
	for i := range f.rb.Inputs {
		promptW = max(promptW, len(f.rb.Inputs[i].Prompt))
	}
	promptW = min(promptW, max(0, w/3))
	// One block per input: its row, and under it why it needs a change.
	n := len(f.rb.Inputs)
	blocks := make([][]string, n)
	bad := 0
	for i := range f.rb.Inputs {
		in := &f.rb.Inputs[i]
		_, err := f.check(in, f.raw[in.Name])
		cur := "  "
		name := fmt.Sprintf("%-*s", nameW, fit(in.Name, nameW))
		if i == f.cursor {
			cur = st.Accent.Render("›") + " "
			name = st.Bold.Render(name)
		}
		row := cur + name + "  "
		if promptW > 0 {
			row += st.Subtle.Render(fmt.Sprintf("%-*s", promptW, fit(termsafe.Cell(in.Prompt), promptW))) + "  "
		}
		if err != nil {
			bad++
			row += st.Fail.Render("✗ needs a change")
		} else {
			row += showValue(in, f.raw[in.Name])
		}
		blocks[i] = []string{fit(row, w)}
		if err != nil {
			why := strings.Split(wrapText(err.Error(), max(10, w-4)), "\n")
			for _, l := range why[:min(2, len(why))] {
				blocks[i] = append(blocks[i], "    "+st.Fail.Render(fit(l, max(10, w-4))))
			}
		}
	}
	// The blocks around the cursor that fit between the header, the
	// intro, the status, the help and the two "more" lines.
	budget := max(1, f.height-9-len(out))
	first, last, used := 0, 0, 0
	if n > 0 {
		c := min(max(0, f.cursor), n-1)
		first, last, used = c, c+1, len(blocks[c])
		for grew := true; grew; {
			grew = false
			if last < n && used+len(blocks[last]) <= budget {
				used += len(blocks[last])
				last++
				grew = true
			}
			if first > 0 && used+len(blocks[first-1]) <= budget {
				first--
				used += len(blocks[first])
				grew = true
			}
		}
	}
	if first > 0 {
		out = append(out, st.Subtle.Render(fmt.Sprintf("  ↑ %d more", first)))
	}
	for _, b := range blocks[first:last] {
		out = append(out, b...)
	}
	if last < n {
		out = append(out, st.Subtle.Render(fmt.Sprintf("  ↓ %d more", n-last)))
	}
	out = append(out, "")
	switch {
	case f.problem != "":
		out = append(out, st.Fail.Render(fit(f.problem, w)))
	case bad > 0:
		out = append(out, st.Fail.Render(fit(plural(bad, "answer needs", "answers need")+" a change before the run can start (enter on it).", w)))
	default:
		out = append(out, st.OK.Render(fit("All answers are valid: press s to start the run.", w)))
	}
	return out
}

// ShortHelp implements help.KeyMap: the way out first, so it is never cut.
func (f *InputsForm) ShortHelp() []key.Binding {
	k := f.c.Keys
	back := k.Back
	quit := k.Interrupt
	quit.SetHelp("ctrl+c", "quit")
	if f.stage == stageReview {
		back.SetHelp("esc", "previous input")
		up, down := k.Up, k.Down
		up.SetHelp("↑/k", "up")
		down.SetHelp("↓/j", "down")
		return []key.Binding{k.Start, k.Edit, back, quit, up, down}
	}
	switch {
	case f.fromReview:
		back.SetHelp("esc", "back to the review")
	case f.idx > 0:
		back.SetHelp("esc", "previous input")
	default:
		back.SetHelp("esc", f.back)
	}
	if f.fieldOwns(tea.KeyPressMsg{Code: tea.KeyEscape}) {
		back.SetEnabled(false) // esc clears the filter first
	}
	b := []key.Binding{back, quit}
	if !f.fromReview && f.idx == 0 && f.back == "quit" {
		b = b[:1] // one way out named once; ctrl+c works too
	}
	if f.form != nil {
		var fb []key.Binding
		for _, kb := range f.cur.field.KeyBinds() {
			if kb.Enabled() {
				fb = append(fb, kb)
			}
		}
		// esc (filter), enter and toggle before the rest: they are cut
		// last.
		rank := func(kb key.Binding) int {
			switch ks := kb.Keys(); {
			case slices.Contains(ks, "esc"):
				return -2
			case slices.Contains(ks, "enter"):
				return -1
			case slices.Contains(ks, "x"), slices.Contains(ks, "space"):
				return 1
			case slices.Contains(ks, "up"), slices.Contains(ks, "down"):
				return 3
			}
			return 2
		}
		slices.SortStableFunc(fb, func(a, b key.Binding) int { return rank(a) - rank(b) })
		if i := slices.IndexFunc(fb, func(kb key.Binding) bool { return rank(kb) == -1 }); i >= 0 {
			next := "next input"
			if f.fromReview || f.idx+1 >= len(f.rb.Inputs) {
				next = "review"
			}
			fb[i].SetHelp("enter", next)
		}
		b = append(b, fb...)
	}
	return b
}

// FullHelp implements help.KeyMap.
func (f *InputsForm) FullHelp() [][]key.Binding { return [][]key.Binding{f.ShortHelp()} }
