package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/state"
)

// resumeMsg says the person chose a run to resume; newRunMsg that they want
// a new run instead.
type (
	resumeMsg struct{ run state.Run }
	newRunMsg struct{}
)

// ResumeList offers the unfinished runs (running, interrupted, failed)
// before anything else, newest first.
type ResumeList struct {
	c      *Common
	runs   []state.Run
	cursor int
	help   help.Model
	width  int
	height int
}

// NewResumeList returns the list over runs.
func NewResumeList(c *Common, runs []state.Run) *ResumeList {
	h := help.New()
	h.Styles = c.Styles.Help
	return &ResumeList{c: c, runs: runs, help: h}
}

// SetSize implements Component.
func (r *ResumeList) SetSize(w, h int) {
	r.width, r.height = w, h
	r.help.SetWidth(w)
}

// ShortHelp implements help.KeyMap.
func (r *ResumeList) ShortHelp() []key.Binding {
	k := r.c.Keys
	enter := key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "resume"))
	up, down := k.Up, k.Down
	up.SetHelp("↑/k", "up")
	down.SetHelp("↓/j", "down")
	return []key.Binding{up, down, enter, k.New, k.Quit}
}

// FullHelp implements help.KeyMap.
func (r *ResumeList) FullHelp() [][]key.Binding { return [][]key.Binding{r.ShortHelp()} }

// Update implements Component.
func (r *ResumeList) Update(msg tea.Msg) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	k := r.c.Keys
	switch {
	case key.Matches(km, k.Up):
		r.cursor = max(0, r.cursor-1)
	case key.Matches(km, k.Down):
		r.cursor = min(len(r.runs)-1, r.cursor+1)
	case key.Matches(km, k.New):
		return func() tea.Msg { return newRunMsg{} }
	case key.Matches(km, k.Enter):
		if r.cursor >= 0 && r.cursor < len(r.runs) {
			run := r.runs[r.cursor]
			return func() tea.Msg { return resumeMsg{run: run} }
		}
	}
	return nil
}

func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// View implements Component.
func (r *ResumeList) View() string {
	st := r.c.Styles
	w := r.width
	lines := []string{
		spread(w, st.Accent.Render("drbook")+" "+st.Bold.Render("unfinished runs"), st.Subtle.Render(plural(len(r.runs), "run", "runs")+" can be resumed")),
		st.Rule.Render(strings.Repeat("─", max(0, w))),
	}
	now := r.c.Now()
	listH := max(3, r.height-len(lines)-6)
	start := 0
	if len(r.runs) > listH {
		start = min(max(0, r.cursor-listH/2), len(r.runs)-listH)
	}
	nameW := 8
	for _, run := range r.runs {
		nameW = max(nameW, len(run.RunbookName))
	}
	nameW = min(nameW, 28)
	for i := start; i < min(len(r.runs), start+listH); i++ {
		run := r.runs[i]
		cur := "  "
		id := run.ID
		if i == r.cursor {
			cur = st.Accent.Render("›") + " "
			id = st.Bold.Render(id)
		}
		status := string(run.Status)
		switch run.Status {
		case state.StatusFailed:
			status = st.Fail.Render(status)
		case state.StatusInterrupted, state.StatusRunning:
			status = st.Warn.Render(status)
		}
		upd := run.UpdatedAt
		if upd.IsZero() {
			upd = run.CreatedAt
		}
		lines = append(lines, spread(w, cur+id+"  "+fmt.Sprintf("%-*s", nameW, fit(run.RunbookName, nameW))+"  "+status, st.Subtle.Render(ago(now, upd)+" · "+run.Host)))
	}
	lines = append(lines, st.Rule.Render(strings.Repeat("─", max(0, w))))
	if r.cursor >= 0 && r.cursor < len(r.runs) {
		run := r.runs[r.cursor]
		title := run.RunbookTitle
		if title == "" {
			title = run.RunbookName
		}
		lines = append(lines,
			fit(title, w),
			st.Subtle.Render(fit("runbook "+run.RunbookPath+" · inventory "+orDash(run.InventoryPath), w)),
			fit("enter resumes it where it stopped: done steps are not run again; interrupted steps are checked or asked.", w),
		)
	}
	body := strings.Join(lines, "\n")
	if gap := r.height - strings.Count(body, "\n") - 2; gap > 0 {
		body += strings.Repeat("\n", gap)
	}
	return body + "\n" + fitLines(r.help.View(r), r.width)
}
