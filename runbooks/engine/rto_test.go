package engine_test

import (
	"context"
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
