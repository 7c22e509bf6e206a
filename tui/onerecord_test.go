package tui

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
)

// skipper answers every failure with a skip, like an operator would.
type skipper struct{ engine.Headless }

func (skipper) Decide(context.Context, steps.DecideRequest) (steps.Decision, error) {
	return steps.Decision{Kind: steps.DecisionSkip, Reason: "done by hand", By: "alice"}, nil
}

// TestLiveAndReplayOneTable runs a runbook with the real engine into a real
// SQLite record while the run screen follows it live, then replays the
// record: the step tables (glyphs, targets, durations) are the same, a step
// the operator skipped after it failed shows ↷ in both.
func TestLiveAndReplayOneTable(t *testing.T) {
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(t.TempDir(), "drbook.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inv := loadInv(t)
	rb := loadRB(t, "testdata/onerecord.yaml", inv)
	now := func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
	live := NewRunView(NewCommon(now), rb)
	cfg := engine.Config{Runbook: rb, Inventory: inv, Registry: steps.NewRegistry(), Store: db,
		Dial: func(context.Context, *runbooks.Node) (transport.Transport, error) {
			return &transport.Local{BaseEnv: os.Environ()}, nil
		},
		Operator: &skipper{engine.Headless{Yes: true}}, Mode: state.ModeHeadless, Observer: live.Handle}
	out, err := engine.Start(ctx, cfg, map[string]runbooks.Value{"seed": {V: "node2"}, "dir": {V: t.TempDir()}})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	run, err := db.GetRun(ctx, out.RunID)
	if err != nil {
		t.Fatal(err)
	}
	events, err := db.Events(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	rec := Replay{Run: state.Run{ID: run.ID}, Events: events} // the chain alone
	replayed := NewRunView(NewCommon(now), replayRunbook(rec))
	for _, ev := range replayEvents(rec) {
		replayed.Handle(ev)
	}
	table := func(v *RunView) string {
		v.SetSize(100, 60)
		v.selected = 0
		lines, _, _ := v.stepList(40)
		return strings.Join(lines, "\n")
	}
	lt, rt := table(live), table(replayed)
	if lt != rt {
		t.Errorf("live and replayed step tables differ:\n--- live\n%s\n--- replay\n%s", lt, rt)
	}
	for _, want := range []string{"✓", "↷", "hello", "broken", "skipped: done by hand", "never", "skipped: guard", "last", "node1", "node3",
		"flaky", "each"} {
		if !strings.Contains(lt, want) {
			t.Errorf("step table lacks %q:\n%s", want, lt)
		}
	}
	if strings.Contains(lt, "✗") {
		t.Errorf("a skipped step shows ✗ live:\n%s", lt)
	}
	// Durations come from the record: the fanned-out step took its sleep.
	if !strings.Contains(lt, "ms") && !strings.Contains(lt, "s\n") {
		t.Errorf("no durations in the table:\n%s", lt)
	}
	// The operator's decision is recorded, and shown live as in replay.
	for _, v := range []*RunView{live, replayed} {
		if !strings.Contains(strings.Join(v.notices, "\n"), "decision: skip — done by hand (by alice)") {
			t.Errorf("decision not shown: %q", v.notices)
		}
	}
	// The retried step succeeded on its second attempt, live as in replay.
	for _, v := range []*RunView{live, replayed} {
		s := v.steps[v.index["flaky"]]
		if s.status != state.StatusSucceeded || len(s.targets) != 1 || s.targets[0].attempt != 2 {
			t.Errorf("flaky: status %s, targets %+v; want succeeded on attempt 2", s.status, s.targets)
		}
		if e := v.steps[v.index["each"]]; len(e.targets) != 3 || e.status != state.StatusSucceeded {
			t.Errorf("each: status %s, %d target rows; want succeeded, one row per item", e.status, len(e.targets))
		}
	}
	if live.status != replayed.status || live.status != state.StatusSucceeded {
		t.Errorf("run status live %s, replayed %s", live.status, replayed.status)
	}
}
