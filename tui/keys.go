package tui

import "charm.land/bubbles/v2/key"

// KeyMap holds every key binding of the TUI, in one place.
type KeyMap struct {
	Up, Down         key.Binding
	PageUp, PageDown key.Binding
	Top, Bottom      key.Binding
	Follow           key.Binding
	Enter            key.Binding
	New              key.Binding
	Back             key.Binding
	Quit             key.Binding
	Interrupt        key.Binding
	Help             key.Binding
	Yes, No          key.Binding
	// Start starts the run from the inputs' review; Edit changes the input
	// under the cursor there.
	Start, Edit key.Binding
}

// DefaultKeyMap returns drbook's key bindings.
func DefaultKeyMap() *KeyMap {
	return &KeyMap{
		Up:        key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "previous step")),
		Down:      key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "next step")),
		PageUp:    key.NewBinding(key.WithKeys("pgup", "b"), key.WithHelp("pgup/b", "scroll output up")),
		PageDown:  key.NewBinding(key.WithKeys("pgdown", "space"), key.WithHelp("pgdn/space", "scroll output down")),
		Top:       key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "output top")),
		Bottom:    key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "output end")),
		Follow:    key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "follow running step")),
		Enter:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "select")),
		New:       key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "new run")),
		Back:      key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Quit:      key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		Interrupt: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "interrupt")),
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "more keys")),
		Yes:       key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "yes")),
		No:        key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n", "no")),
		Start:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "start the run")),
		Edit:      key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "change")),
	}
}
