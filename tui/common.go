package tui

import (
	"time"

	"charm.land/bubbles/v2/help"
	tea "charm.land/bubbletea/v2"
)

// Common is what every component shares: the screen size, the theme, the
// keys and the clock (injected so tests render deterministically).
type Common struct {
	Width, Height int
	Styles        *Styles
	Keys          *KeyMap
	Now           func() time.Time
}

// NewCommon returns a Common with the default theme and keys; now may be nil
// for the wall clock.
func NewCommon(now func() time.Time) *Common {
	if now == nil {
		now = time.Now
	}
	return &Common{Styles: DefaultStyles(), Keys: DefaultKeyMap(), Now: now}
}

// Component is one screen or part of a screen. Only the root Model returns a
// tea.View; components return strings the root joins.
type Component interface {
	help.KeyMap
	// Update handles a message and returns a command.
	Update(msg tea.Msg) tea.Cmd
	// View renders the component at the size given by SetSize.
	View() string
	// SetSize tells the component how much room it has.
	SetSize(width, height int)
}

var (
	_ Component = (*RunView)(nil)
	_ Component = (*Picker)(nil)
	_ Component = (*ResumeList)(nil)
	_ Component = (*InputsForm)(nil)
	_ tea.Model = (*Model)(nil)
)
