package engine_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
)

// TestRTOCrossing: a run slower than its rto: budget records one note of
// kind rto.crossed before run.finished and emits RTOCrossed; a run within
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
			var seen *engine.RTOCrossed
			var started engine.RunStarted
			f.rec.mu.Lock()
			for _, ev := range f.rec.events {
				switch e := ev.(type) {
				case engine.RTOCrossed:
					seen = &e
				case engine.RunStarted:
					started = e
				}
			}
			f.rec.mu.Unlock()
			if started.RTO != c.budget {
				t.Errorf("RunStarted.RTO = %s, want %s", started.RTO, c.budget)
			}
			if (seen != nil) != c.crossed {
				t.Fatalf("RTOCrossed emitted: %v, want %v", seen != nil, c.crossed)
			}
			if seen != nil && (seen.Elapsed < c.budget || seen.Machine+seen.Human != seen.Elapsed) {
				t.Errorf("crossing figures: %+v", *seen)
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
	run, err := f.db.GetRun(context.Background(), out.RunID)
	if err != nil {
		t.Fatal(err)
	}
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	for _, ev := range f.rec.events {
		if rs, ok := ev.(engine.RunStarted); ok && (!rs.Resumed || !rs.RTOSince.Equal(run.CreatedAt)) {
			t.Errorf("resumed RunStarted: resumed %v, clock from %s, want the run's creation %s", rs.Resumed, rs.RTOSince, run.CreatedAt)
		}
		if _, ok := ev.(engine.RTOCrossed); ok {
			t.Errorf("the resume emitted a second crossing")
		}
	}
}
