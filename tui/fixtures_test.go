package tui

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

func loadInv(t testing.TB) *runbooks.Inventory {
	t.Helper()
	src, err := runbooks.ReadFile("testdata/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := runbooks.ParseInventory("testdata/inventory.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func loadRB(t testing.TB, path string, inv *runbooks.Inventory) *runbooks.Runbook {
	t.Helper()
	src, err := runbooks.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := runbooks.LoadRunbook(path, src, steps.NewRegistry(), inv)
	if err != nil {
		t.Fatal(err)
	}
	return rb
}

func pickerItems(t testing.TB, inv *runbooks.Inventory) []PickerItem {
	return []PickerItem{
		{Path: "testdata/e2e/broken.yaml", Problems: []string{
			`testdata/e2e/broken.yaml:6:10: step "one": unknown step kind "shelll" (did you mean "shell"?)`,
			`testdata/e2e/broken.yaml:10:9: step "two": unknown input "nope"`,
		}},
		{Path: "testdata/e2e/drill.yaml", Runbook: loadRB(t, "testdata/e2e/drill.yaml", inv)},
		{Path: "testdata/inputs.yaml", Runbook: loadRB(t, "testdata/inputs.yaml", inv)},
	}
}

// at is t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// fixtureChain is the record of the fixture run.
func fixtureChain() *chain { return &chain{runID: "r20261121-030405-ab12"} }

// runningEvents is a run of the drill runbook stopped while its last step
// runs: a fanned-out step done, a danger step done, output streaming.
func runningEvents() []runlog.Event {
	c := fixtureChain()
	evs := []runlog.Event{
		c.created("tui-drill", "Drill for the TUI end-to-end test", "testdata/inventory.yaml", at(0)),
		runlog.StepPending{StepID: "hello", Title: "Say hello everywhere", Kind: "shell", Targets: []string{"node1", "node2", "node3"}, Time: at(10)},
	}
	for i, n := range []string{"node1", "node2", "node3"} {
		evs = append(evs,
			c.started("hello", n, 1, "Say hello everywhere", "echo hello from "+n, at(20+i)),
			runlog.OutputLine{StepID: "hello", Target: n, Line: "hello from " + n, Time: at(30 + i)},
		)
	}
	for i, n := range []string{"node1", "node2", "node3"} {
		evs = append(evs, c.finished("hello", n, 1, state.StatusSucceeded, 0, "", time.Duration(100+i*50)*time.Millisecond, at(200+i*50)))
	}
	evs = append(evs,
		runlog.StepPending{StepID: "wipe", Title: "Wipe the scratch marker on the seed", Kind: "shell", Targets: []string{"node2"}, Danger: true, Time: at(310)},
		c.started("wipe", "node2", 1, "Wipe the scratch marker on the seed", `echo "wiped marker drill on node2"`, at(9000)),
		runlog.OutputLine{StepID: "wipe", Target: "node2", Line: "wiped marker drill on node2", Time: at(9010)},
		c.finished("wipe", "node2", 1, state.StatusSucceeded, 0, "", 40*time.Millisecond, at(9040)),
		runlog.StepPending{StepID: "report", Title: "Report", Kind: "shell", Targets: []string{"node2"}, Time: at(9050)},
		c.started("report", "node2", 1, "Report", "long-report --verbose", at(60000)),
	)
	for i := range 30 {
		evs = append(evs, runlog.OutputLine{StepID: "report", Target: "node2", Line: fmt.Sprintf("report line %02d: \x1b[31mcolour stripped\x1b[0m and a tab\there", i), Stderr: i%10 == 9, Time: at(60000 + i)})
	}
	return evs
}

// runModel returns a model showing a live run fed with evs.
func runModel(t testing.TB, evs []runlog.Event) *Model {
	inv := loadInv(t)
	rb := loadRB(t, "testdata/e2e/drill.yaml", inv)
	m := New(context.Background(), Options{Now: fixedNow, NoTick: true, User: "alice", Inventory: inv,
		Start: func(ctx context.Context, _ *runbooks.Runbook, _ map[string]runbooks.Value, _ func(runlog.Event), _ steps.Operator) (engine.Outcome, error) {
			<-ctx.Done()
			return engine.Outcome{RunID: "r20261121-030405-ab12", Status: state.StatusInterrupted}, fmt.Errorf("%w: %w", engine.ErrInterrupted, ctx.Err())
		}})
	m.launch(rb, func(ctx context.Context) (engine.Outcome, error) {
		return m.opts.Start(ctx, rb, nil, nil, nil)
	})
	t.Cleanup(m.cancel)
	msgs := batchMsg{}
	for _, e := range evs {
		msgs = append(msgs, EventMsg{Event: e})
	}
	m.Update(msgs)
	return m
}

var errBoom = errors.New("command failed with exit status 3")
