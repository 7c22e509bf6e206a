package tui

import (
	"image/color"

	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
)

// Colors of the theme, ANSI 16-colour indexes only (no true-colour
// assumption; NO_COLOR is honoured by the renderer, which drops them).
const (
	// dangerColor is the one red every danger element uses.
	dangerColor = "1"
	okColor     = "2"
	warnColor   = "3"
	accentColor = "4"
	subtleColor = "8"
)

// Styles is the theme, built once by DefaultStyles and shared through Common.
type Styles struct {
	Title, Subtle, Bold, Rule lipgloss.Style
	// Plain is no style at all (output lines).
	Plain    lipgloss.Style
	Accent   lipgloss.Style
	Selected lipgloss.Style

	OK, Fail, Warn, Running, Pending, Skipped lipgloss.Style

	Danger      lipgloss.Style
	DangerBox   lipgloss.Style
	DangerTitle lipgloss.Style
	Box         lipgloss.Style
	Hint        lipgloss.Style

	Stderr, Notice, Command lipgloss.Style

	Help          help.Styles
	ProgressFull  color.Color
	ProgressEmpty color.Color
}

// DefaultStyles returns drbook's theme.
func DefaultStyles() *Styles {
	red := lipgloss.Color(dangerColor)
	subtle := lipgloss.Color(subtleColor)
	s := &Styles{
		Title:    lipgloss.NewStyle().Bold(true),
		Plain:    lipgloss.NewStyle(),
		Subtle:   lipgloss.NewStyle().Foreground(subtle),
		Bold:     lipgloss.NewStyle().Bold(true),
		Rule:     lipgloss.NewStyle().Foreground(subtle),
		Accent:   lipgloss.NewStyle().Foreground(lipgloss.Color(accentColor)).Bold(true),
		Selected: lipgloss.NewStyle().Bold(true).Reverse(true),

		OK:      lipgloss.NewStyle().Foreground(lipgloss.Color(okColor)),
		Fail:    lipgloss.NewStyle().Foreground(red).Bold(true),
		Warn:    lipgloss.NewStyle().Foreground(lipgloss.Color(warnColor)),
		Running: lipgloss.NewStyle().Foreground(lipgloss.Color(accentColor)).Bold(true),
		Pending: lipgloss.NewStyle().Foreground(subtle),
		Skipped: lipgloss.NewStyle().Foreground(lipgloss.Color(warnColor)),

		Danger:      lipgloss.NewStyle().Foreground(red).Bold(true),
		DangerTitle: lipgloss.NewStyle().Foreground(red).Bold(true).Underline(true),
		DangerBox:   lipgloss.NewStyle().Border(lipgloss.ThickBorder()).BorderForeground(red).Padding(0, 1),
		Box:         lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(lipgloss.Color(accentColor)).Padding(0, 1),
		Hint:        lipgloss.NewStyle().Foreground(lipgloss.Color(warnColor)).Bold(true),

		Stderr:  lipgloss.NewStyle().Foreground(lipgloss.Color(warnColor)),
		Notice:  lipgloss.NewStyle().Foreground(lipgloss.Color(accentColor)),
		Command: lipgloss.NewStyle().Foreground(subtle),

		ProgressFull:  lipgloss.Color(okColor),
		ProgressEmpty: subtle,
	}
	key := lipgloss.NewStyle().Bold(true)
	desc := lipgloss.NewStyle().Foreground(subtle)
	s.Help = help.Styles{
		Ellipsis: desc, ShortKey: key, ShortDesc: desc, ShortSeparator: desc,
		FullKey: key, FullDesc: desc, FullSeparator: desc,
	}
	return s
}
