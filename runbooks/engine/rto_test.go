package engine_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// TestRTOCrossing: a run slower than its rto: budget records one note of
// kind rto.crossed before run.finished (run.created records the budget); a run within
// it records none; Config.RTO (a drill's budget) overrides the runbook's.
func TestRTOCrossing(t *testing.T) {
	cases := []struct {
		name     string
		rto      string
		override time.Duration
		sleep    string
		crossed  bool
		budget   time.Duration
	}{
		{"over budget", "rto: 300ms\n", 0, "1", true, 300 * time.Millisecond},
		{"within budget", "rto: 1h\n", 0, "0.2", false, time.Hour},
		{"drill override", "rto: 1h\n", 400 * time.Millisecond, "1", true, 400 * time.Millisecond},
		{"no budget", "", 0, "0.5", false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 1)
			cfg := f.config(t, header+c.rto+"steps:\n  - id: slow\n    run: shell\n    on: node1\n    with: {command: 'sleep "+c.sleep+"'}\n", nil)
			cfg.RTO = c.override
			out, err := engine.Start(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			events, err := f.db.Events(context.Background(), out.RunID)
			if err != nil {
				t.Fatal(err)
			}
			crossedAt, finishedAt := -1, -1
			for i, ev := range events {
				switch ev.Type {
				case state.EvNote:
					var n state.Note
					if err := ev.Decode(&n); err != nil {
						t.Fatal(err)
					}
					if n.Data["kind"] == engine.NoteRTOCrossed {
						if crossedAt >= 0 {
							t.Errorf("two crossings recorded")
						}
						crossedAt = i
						if n.Data["budget_ms"] != itoa(c.budget.Milliseconds()) {
							t.Errorf("budget_ms %s, want %d", n.Data["budget_ms"], c.budget.Milliseconds())
						}
					}
				case state.EvRunFinished:
					finishedAt = i
				}
			}
			if (crossedAt >= 0) != c.crossed {
				t.Fatalf("crossing recorded: %v, want %v", crossedAt >= 0, c.crossed)
			}
			if c.crossed && crossedAt > finishedAt {
				t.Errorf("crossing recorded after run.finished")
			}
			h := runlog.Fold(events).Header
			switch {
			case c.budget == 0 && h.RTO != nil:
				t.Errorf("run.created records a budget %+v, want none", *h.RTO)
			case c.budget > 0 && (h.RTO == nil || h.RTO.BudgetMS != c.budget.Milliseconds()):
				t.Errorf("run.created records budget %+v, want %s", h.RTO, c.budget)
			}
			if crossedAt >= 0 {
				var n state.Note
				_ = events[crossedAt].Decode(&n)
				num := func(k string) int64 { v, _ := strconv.ParseInt(n.Data[k], 10, 64); return v }
				if num("elapsed_ms") < c.budget.Milliseconds() || num("machine_ms")+num("human_ms") != num("elapsed_ms") {
					t.Errorf("crossing figures: %v", n.Data)
				}
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRTOResume: the RTO clock of a resumed run counts from the run's
// creation, and a crossing already recorded is not recorded again.
func TestRTOResume(t *testing.T) {
	f := newFixture(t, 1)
	marker := filepath.Join(f.dir, "second-try")
	src := header + "rto: 300ms\nsteps:\n  - id: flaky\n    run: shell\n    on: node1\n    with: {command: 'test -f " + marker + " || { touch " + marker + "; sleep 1; exit 1; }'}\n"
	out, err := engine.Start(context.Background(), f.config(t, src, nil), nil)
	if err == nil {
		t.Fatal("the first try should fail")
	}
	f.rec = &recorder{}
	cfg := f.config(t, src, nil)
	if _, err := engine.Resume(context.Background(), cfg, out.RunID, engine.ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	events, err := f.db.Events(context.Background(), out.RunID)
	if err != nil {
		t.Fatal(err)
	}
	crossings := 0
	for _, ev := range events {
		var n state.Note
		if ev.Type == state.EvNote && ev.Decode(&n) == nil && n.Data["kind"] == engine.NoteRTOCrossed {
			crossings++
		}
	}
	if crossings != 1 {
		t.Errorf("%d crossings recorded over a run and its resume, want 1", crossings)
	}
	h := runlog.Fold(events).Header
	if h.RTO == nil || h.RTO.Since.After(h.Created) || h.Created.Sub(h.RTO.Since) > time.Second {
		t.Errorf("recorded budget %+v, want the clock to start at the run's creation %s", h.RTO, h.Created)
	}
}
