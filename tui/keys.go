package tui

import "charm.land/bubbles/v2/key"

// KeyMap holds every key binding of the TUI, in one place.
type KeyMap struct {
	Up, Down         key.Binding
	PageUp, PageDown key.Binding
	Top, Bottom      key.Binding
	Follow           key.Binding
	Wrap             key.Binding
	Pager            key.Binding
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
	// Steps and Scroll only name Up/Down and PageUp/PageDown in the short
	// help line.
	Steps, Scroll key.Binding

	// Keys of the questions asked over the run screen. Letters are typed
	// there, so scrolling uses only keys that type nothing.
	BoxScroll              key.Binding // names the box's scrolling keys in the help
	BoxPages               key.Binding // names the box's page keys in the help
	BoxUp, BoxDown         key.Binding // scroll a question's box by a line
	BoxPageUp, BoxPageDown key.Binding // scroll a question's box by a page
	Choose                 key.Binding // move between a question's choices
	Confirm                key.Binding // the danger box: go ahead
	Refuse                 key.Binding // the danger box: esc twice refuses
	Answer                 key.Binding // yes/no question: yes
	Decline                key.Binding // yes/no question: no
	Select                 key.Binding // pick the choice under the cursor
	Record                 key.Binding // record the typed skip reason
	BackToChoices          key.Binding // leave the reason, back to the choices
	StopWaiting            key.Binding // the approval box: esc twice aborts the run
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
		Wrap:      key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "wrap")),
		Pager:     key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pager")),
		Enter:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "select")),
		New:       key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "new run")),
		Back:      key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Quit:      key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		Interrupt: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "interrupt")),
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "more keys")),
		Yes:       key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "yes")),
		Start:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "start the run")),
		Edit:      key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "change")),
		No:        key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n/esc", "no")),

		Steps:  key.NewBinding(key.WithKeys("up", "down", "k", "j"), key.WithHelp("↑/↓", "step")),
		Scroll: key.NewBinding(key.WithKeys("pgup", "pgdown", "b", "space"), key.WithHelp("pgup/pgdn", "scroll")),

		BoxScroll:     key.NewBinding(key.WithKeys("up", "down", "pgup", "pgdown"), key.WithHelp("↑/↓/pgup/pgdn", "scroll")),
		BoxPages:      key.NewBinding(key.WithKeys("pgup", "pgdown"), key.WithHelp("pgup/pgdn", "scroll")),
		BoxUp:         key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "scroll")),
		BoxDown:       key.NewBinding(key.WithKeys("down")),
		BoxPageUp:     key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "scroll up")),
		BoxPageDown:   key.NewBinding(key.WithKeys("pgdown"), key.WithHelp("pgdn", "scroll down")),
		Choose:        key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "choose")),
		Confirm:       key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "confirm")),
		Refuse:        key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc esc", "refuse")),
		Answer:        key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "confirm")),
		Decline:       key.NewBinding(key.WithKeys("n", "N"), key.WithHelp("n", "refuse")),
		Select:        key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "select")),
		Record:        key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "record skip")),
		BackToChoices: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		StopWaiting:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc esc", "abort run")),
	}
}
