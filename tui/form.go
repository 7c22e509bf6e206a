package tui

import (
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/huh/v2"

	"github.com/drbook/drbook/runbooks"
)

// field is one huh field for a runbook input and how to read its answer.
type field struct {
	in    *runbooks.Input
	field huh.Field
	get   func() any
}

// newField builds the huh field for in: a masked input for secrets, a
// confirm for bools, selects for enums and nodes (filtered by the input's
// label), a multi-select for nodes, and text inputs validated by
// runbooks.CoerceInput for the rest. initial (may be nil) prefills it.
func newField(in *runbooks.Input, inv *runbooks.Inventory, initial any) field {
	title := in.Prompt
	if title == "" {
		title = in.Name
	}
	desc := describeInput(in)
	validate := func(raw any) error {
		_, err := runbooks.CoerceInput(in, raw, inv)
		return err
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
		return field{in: in, field: sel, get: func() any { return s }}
	case runbooks.InputNode:
		s, _ := initial.(string)
		sel := huh.NewSelect[string]().Key(in.Name).Title(title).Description(desc).
			Options(nodeOptions(in, inv, nil)...).Value(&s).
			Validate(func(v string) error { return validate(v) })
		return field{in: in, field: sel, get: func() any { return s }}
	case runbooks.InputNodes:
		var picked []string
		switch x := initial.(type) {
		case []string:
			picked = append(picked, x...)
		case []any:
			for _, e := range x {
				picked = append(picked, fmt.Sprint(e))
			}
		}
		ms := huh.NewMultiSelect[string]().Key(in.Name).Title(title).Description(desc).
			Options(nodeOptions(in, inv, picked)...).Value(&picked).
			Validate(func(v []string) error { return validate(v) })
		return field{in: in, field: ms, get: func() any { return picked }}
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

func describeInput(in *runbooks.Input) string {
	parts := []string{in.Type}
	if in.Label != "" {
		parts = append(parts, "label "+in.Label)
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
		d = in.Description + " (" + d + ")"
	}
	return d
}

// nodeOptions lists the inventory nodes an input may take, in inventory
// order, with picked ones preselected.
func nodeOptions(in *runbooks.Input, inv *runbooks.Inventory, picked []string) []huh.Option[string] {
	var opts []huh.Option[string]
	if inv == nil {
		return opts
	}
	sel := map[string]bool{}
	for _, p := range picked {
		sel[p] = true
	}
	for i := range inv.Nodes {
		n := &inv.Nodes[i]
		if in.Label != "" && !runbooks.HasLabel(n, in.Label) {
			continue
		}
		label := n.Name
		if n.Host != "" {
			label += "  " + n.Host
		}
		opts = append(opts, huh.NewOption(label, n.Name).Selected(sel[n.Name]))
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

// InputsForm asks for the runbook's inputs before a run, one field per page,
// prefilled from the answers file (or the input's default).
type InputsForm struct {
	c      *Common
	rb     *runbooks.Runbook
	inv    *runbooks.Inventory
	fields []field
	form   *huh.Form
	err    string
	width  int
	height int
}

// NewInputsForm builds the form for rb's inputs.
func NewInputsForm(c *Common, rb *runbooks.Runbook, inv *runbooks.Inventory, answers *runbooks.Answers) *InputsForm {
	f := &InputsForm{c: c, rb: rb, inv: inv}
	// Resolved answers and defaults ({env:}/{file:} read, values typed);
	// problems with them are shown by the fields' validation.
	known, _, _ := runbooks.ResolveInputs(rb, inv, answers, false)
	var groups []*huh.Group
	for i := range rb.Inputs {
		in := &rb.Inputs[i]
		var initial any
		if v, ok := known[in.Name]; ok {
			initial = v.V
		} else if answers != nil {
			if a, ok := answers.Inputs[in.Name]; ok {
				switch a.Value.(type) { // not {env:}/{file:} references
				case string, bool, int64, float64, []any:
					initial = a.Value
				}
			}
		}
		fl := newField(in, inv, initial)
		f.fields = append(f.fields, fl)
		groups = append(groups, huh.NewGroup(fl.field))
	}
	f.form = newHuhForm(0, groups...)
	return f
}

// Init starts the form.
func (f *InputsForm) Init() tea.Cmd { return f.form.Init() }

// SetSize implements Component.
func (f *InputsForm) SetSize(w, h int) {
	f.width, f.height = w, h
	f.form = f.form.WithWidth(min(w, 100))
}

// Update implements Component.
func (f *InputsForm) Update(msg tea.Msg) tea.Cmd {
	m, cmd := f.form.Update(msg)
	if ff, ok := m.(*huh.Form); ok {
		f.form = ff
	}
	return cmd
}

// State is the huh form state.
func (f *InputsForm) State() huh.FormState { return f.form.State }

// Values coerces every answer; an error names the first bad input.
func (f *InputsForm) Values() (map[string]runbooks.Value, error) {
	vals := map[string]runbooks.Value{}
	var errs []error
	for _, fl := range f.fields {
		v, err := runbooks.CoerceInput(fl.in, fl.get(), f.inv)
		if err != nil {
			if fl.in.Optional {
				vals[fl.in.Name] = runbooks.Value{V: zeroValue(fl.in.Type), Secret: fl.in.Type == runbooks.InputSecret}
				continue
			}
			errs = append(errs, fmt.Errorf("input %s: %w", fl.in.Name, err))
			continue
		}
		vals[fl.in.Name] = runbooks.Value{V: v, Secret: fl.in.Type == runbooks.InputSecret}
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

// View implements Component.
func (f *InputsForm) View() string {
	st := f.c.Styles
	head := st.Accent.Render("drbook") + " " + st.Bold.Render("inputs") + " · " + f.rb.Name
	if f.rb.Title != "" {
		head += " — " + f.rb.Title
	}
	lines := []string{fit(head, f.width), st.Rule.Render(strings.Repeat("─", max(0, f.width)))}
	if f.err != "" {
		lines = append(lines, st.Fail.Render(fit(f.err, f.width)))
	}
	lines = append(lines, f.form.View())
	return strings.Join(lines, "\n")
}

// ShortHelp implements help.KeyMap.
func (f *InputsForm) ShortHelp() []key.Binding { return f.form.KeyBinds() }

// FullHelp implements help.KeyMap.
func (f *InputsForm) FullHelp() [][]key.Binding { return [][]key.Binding{f.form.KeyBinds()} }
