package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// withRTO is ev (a run.created) recording an RTO budget counted from since.
func withRTO(t *testing.T, ev state.Event, budget time.Duration, since time.Time) state.Event {
	t.Helper()
	var p state.RunCreated
	if err := ev.Decode(&p); err != nil {
		t.Fatal(err)
	}
	p.RTO = &state.RTOBudget{BudgetMS: budget.Milliseconds(), Since: since}
	out, err := state.NewEvent(ev.RunID, ev.Type, p)
	if err != nil {
		t.Fatal(err)
	}
	out.Seq, out.Time = ev.Seq, ev.Time
	return out
}

// TestRTOHeader: at 80x24 the header shows the time left against the
// budget, "LOW" in the last 20 % and "OVER +MM:SS" past it — in words, so
// the states differ without colour — and the alarm is drawn in the danger
// style; the frames are golden.
func TestRTOHeader(t *testing.T) {
	budget := 10 * time.Minute
	cases := []struct {
		name    string
		spent   time.Duration
		want    string
		notWant []string
	}{
		{"ok", 3 * time.Minute, "RTO 00:03:00 of 10:00 · 07:00 left", []string{"LOW", "OVER"}},
		{"near", 8*time.Minute + 30*time.Second, "RTO 00:08:30 of 10:00 · LOW 01:30 left", []string{"OVER"}},
		{"over", 12*time.Minute + 5*time.Second, "RTO 00:12:05 of 10:00 · OVER +02:05", []string{"LOW", "left"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := t0.Add(c.spent)
			v := NewRunView(NewCommon(func() time.Time { return now }), nil)
			v.SetSize(80, 24)
			var last state.Event
			for _, ev := range runningEvents() {
				if rec, ok := ev.(runlog.Recorded); ok {
					if rec.Event.Type == state.EvRunCreated {
						rec.Event = withRTO(t, rec.Event, budget, t0)
						ev = rec
					}
					last = rec.Event
				}
				v.Handle(ev)
			}
			if c.name == "over" {
				note, err := state.NewEvent(last.RunID, state.EvNote, state.Note{Text: "RTO budget crossed", Data: map[string]string{
					"kind": engine.NoteRTOCrossed, "budget_ms": "600000", "elapsed_ms": "600000", "machine_ms": "540000", "human_ms": "60000"}})
				if err != nil {
					t.Fatal(err)
				}
				note.Seq, note.Time = last.Seq+1, t0.Add(budget)
				v.Handle(runlog.Recorded{Event: note})
			}
			raw := v.View()
			plain := ansi.Strip(raw)
			checkFrame(t, c.name, plain, 80, 24)
			head := strings.SplitN(plain, "\n", 2)[0]
			if !strings.Contains(head, c.want) {
				t.Errorf("header %q lacks %q", head, c.want)
			}
			for _, nw := range c.notWant {
				if strings.Contains(head, nw) {
					t.Errorf("header %q holds %q", head, nw)
				}
			}
			if c.name == "over" && !strings.Contains(plain, "OVER RTO budget 10:00 (machine 09:00, operator 01:00)") {
				t.Errorf("no crossing notice:\n%s", plain)
			}
			// The alarm is drawn reversed in the danger colour (the one
			// palette's red), the warning in the hint colour.
			rawHead := strings.SplitN(raw, "\n", 2)[0]
			if c.name == "over" && !strings.Contains(rawHead, "\x1b[1;7;31m") {
				t.Errorf("alarm not in the danger style: %q", rawHead)
			}
			if c.name == "near" && !strings.Contains(rawHead, "\x1b[1;33m") {
				t.Errorf("warning not in the hint style: %q", rawHead)
			}
			golden(t, "rto_"+c.name+"_80x24", trimFrame(plain))
		})
	}
	// Without a budget the header keeps the plain clock.
	v := NewRunView(NewCommon(fixedNow), nil)
	v.SetSize(80, 24)
	for _, ev := range runningEvents() {
		v.Handle(ev)
	}
	if head := strings.SplitN(ansi.Strip(v.View()), "\n", 2)[0]; !strings.HasSuffix(strings.TrimRight(head, " "), "RTO 00:01:23") || strings.Contains(head, "left") {
		t.Errorf("header without a budget: %q", head)
	}
}

func trimFrame(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}
