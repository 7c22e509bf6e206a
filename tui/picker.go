package tui

import (
	"fmt"
	"path/filepath"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/runbooks"
)

// PickerItem is one runbook file offered by the picker: loaded and valid
// (Runbook set), or refused by lint (Problems holds its first errors as
// file:line:col: message).
type PickerItem struct {
	Path     string
	Runbook  *runbooks.Runbook
	Problems []string
}

// Runnable reports whether the item can be run.
func (it PickerItem) Runnable() bool { return it.Runbook != nil && len(it.Problems) == 0 }

// pickMsg says the person picked a runbook.
type pickMsg struct{ item PickerItem }

// Picker lists runbooks with their title, description, step count and
// danger steps; broken ones show their lint errors and cannot be picked.
type Picker struct {
	c       *Common
	title   string
	items   []PickerItem
	cursor  int
	help    help.Model
	width   int
	height  int
	hint    string
	canBack bool
	// noInventory: drbook was started without -i; runbooks that run on
	// nodes cannot be opened, and the picker says how to give one.
	noInventory bool
}

// noInventoryHint says how to give an inventory.
const noInventoryHint = "No inventory: to run on nodes, quit (q) and start drbook -i inventory.yaml"

// NewPicker returns a picker over items; title says where they come from.
func NewPicker(c *Common, title string, items []PickerItem) *Picker {
	h := help.New()
	h.Styles = c.Styles.Help
	return &Picker{c: c, title: title, items: items, help: h}
}

// WithBack makes esc go back to the list of unfinished runs.
func (p *Picker) WithBack(b bool) *Picker {
	p.canBack = b
	return p
}

// WithInventory tells the picker which inventory node inputs choose from
// (nil: none was given).
func (p *Picker) WithInventory(inv *runbooks.Inventory) *Picker {
	p.noInventory = inv == nil
	return p
}

// needsNodes reports whether rb chooses or runs on nodes, so that it needs
// an inventory.
func needsNodes(rb *runbooks.Runbook) bool {
	for _, in := range rb.Inputs {
		if in.Type == runbooks.InputNode || in.Type == runbooks.InputNodes {
			return true
		}
	}
	for _, st := range rb.Steps {
		if len(st.On) > 0 {
			return true
		}
	}
	return false
}

// SetSize implements Component.
func (p *Picker) SetSize(w, h int) {
	p.width, p.height = w, h
	p.help.SetWidth(w)
}

// ShortHelp implements help.KeyMap.
func (p *Picker) ShortHelp() []key.Binding {
	k := p.c.Keys
	up, down, enter := k.Up, k.Down, k.Enter
	up.SetHelp("↑/k", "up")
	down.SetHelp("↓/j", "down")
	enter.SetHelp("enter", "choose")
	b := []key.Binding{up, down, enter}
	if p.canBack {
		b = append(b, k.Back)
	}
	return append(b, k.Quit)
}

// FullHelp implements help.KeyMap.
func (p *Picker) FullHelp() [][]key.Binding { return [][]key.Binding{p.ShortHelp()} }

// Update implements Component.
func (p *Picker) Update(msg tea.Msg) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	k := p.c.Keys
	switch {
	case key.Matches(km, k.Up):
		p.cursor = max(0, p.cursor-1)
		p.hint = ""
	case key.Matches(km, k.Down):
		p.cursor = min(len(p.items)-1, p.cursor+1)
		p.hint = ""
	case key.Matches(km, k.Enter):
		if p.cursor < 0 || p.cursor >= len(p.items) {
			return nil
		}
		it := p.items[p.cursor]
		if !it.Runnable() {
			p.hint = "this runbook has problems: fix them (drbook lint " + it.Path + ")"
			return nil
		}
		if p.noInventory && needsNodes(it.Runbook) {
			p.hint = it.Runbook.Name + " runs on nodes and needs an inventory: quit (q) and start drbook -i inventory.yaml (nodes and how to reach them)"
			return nil
		}
		return func() tea.Msg { return pickMsg{item: it} }
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// View implements Component.
func (p *Picker) View() string {
	st := p.c.Styles
	w := p.width
	lines := []string{
		spread(w, st.Accent.Render("drbook")+" "+st.Bold.Render("pick a runbook"), st.Subtle.Render(p.title)),
		st.Rule.Render(strings.Repeat("─", max(0, w))),
	}
	if len(p.items) == 0 {
		lines = append(lines, "No runbooks found. Pass --dir with runbook files.")
	}
	if p.noInventory {
		for _, l := range strings.Split(wrapText(noInventoryHint, w), "\n") {
			lines = append(lines, st.Hint.Render(fit(l, w)))
		}
	}
	nameW := 8
	for _, it := range p.items {
		nameW = max(nameW, len(itemName(it)))
	}
	nameW = min(nameW, 28)
	detailH := 8
	hintH := 0
	if p.hint != "" {
		hintH = strings.Count(wrapText(p.hint, w), "\n") + 1
	}
	listH := max(3, p.height-len(lines)-detailH-3-hintH)
	start := 0
	if len(p.items) > listH {
		start = min(max(0, p.cursor-listH/2), len(p.items)-listH)
	}
	for i := start; i < min(len(p.items), start+listH); i++ {
		it := p.items[i]
		cur := "  "
		name := fmt.Sprintf("%-*s", nameW, fit(clean(itemName(it)), nameW))
		if i == p.cursor {
			cur = st.Accent.Render("›") + " "
			name = st.Bold.Render(name)
		}
		var right, mid string
		if it.Runnable() {
			rb := it.Runbook
			mid = clean(rb.Title)
			right = plural(len(rb.Steps), "step", "steps")
			if d := rb.DangerCount(); d > 0 {
				right += " · " + st.Danger.Render(plural(d, "danger", "danger"))
			}
		} else {
			mid = st.Fail.Render("✗ " + plural(len(p.problems(it)), "problem", "problems"))
		}
		lines = append(lines, spread(w, cur+name+"  "+mid, right))
	}
	lines = append(lines, st.Rule.Render(strings.Repeat("─", max(0, w))))
	if p.cursor >= 0 && p.cursor < len(p.items) {
		lines = append(lines, p.detail(p.items[p.cursor], detailH)...)
	}
	if p.hint != "" {
		for _, l := range strings.Split(wrapText(p.hint, w), "\n") {
			lines = append(lines, st.Hint.Render(fit(l, w)))
		}
	}
	body := strings.Join(lines, "\n")
	gap := p.height - strings.Count(body, "\n") - 2
	if gap > 0 {
		body += strings.Repeat("\n", gap)
	}
	return body + "\n" + fitLines(p.help.View(p), p.width)
}

func itemName(it PickerItem) string {
	if it.Runnable() && it.Runbook.Name != "" {
		return it.Runbook.Name
	}
	return filepath.Base(it.Path)
}

func (p *Picker) problems(it PickerItem) []string {
	if len(it.Problems) == 0 && it.Runbook == nil {
		return []string{it.Path + ": could not be loaded"}
	}
	return it.Problems
}

func (p *Picker) detail(it PickerItem, h int) []string {
	st := p.c.Styles
	w := p.width
	var out []string
	out = append(out, st.Subtle.Render(fit(it.Path, w)))
	if !it.Runnable() {
		for _, pr := range p.problems(it) {
			out = append(out, st.Fail.Render(fit(pr, w)))
		}
		return out[:min(len(out), h)]
	}
	rb := it.Runbook
	if rb.Description != "" {
		out = append(out, strings.Split(wrapText(strings.TrimSpace(rb.Description), w), "\n")...)
	}
	var ins []string
	for _, in := range rb.Inputs {
		ins = append(ins, in.Name+" ("+in.Type+")")
	}
	if len(ins) > 0 {
		out = append(out, fit("inputs: "+strings.Join(ins, ", "), w))
	}
	var danger []string
	for _, s := range rb.Steps {
		if s.Danger {
			danger = append(danger, s.ID)
		}
	}
	if len(danger) > 0 {
		out = append(out, st.Danger.Render(fit("danger steps: "+strings.Join(danger, ", "), w)))
	}
	return out[:min(len(out), h)]
}

// wrapText wraps s at word boundaries to width w.
func wrapText(s string, w int) string {
	if w <= 0 {
		return s
	}
	var b strings.Builder
	for i, para := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteString("\n")
		}
		n := 0
		for j, word := range strings.Fields(para) {
			if j > 0 && n+1+len(word) > w {
				b.WriteString("\n")
				n = 0
			} else if j > 0 {
				b.WriteString(" ")
				n++
			}
			b.WriteString(word)
			n += len(word)
		}
	}
	return b.String()
}
