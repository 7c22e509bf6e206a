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

// runningEvents is a run of the drill runbook stopped while its last step
// runs: a fanned-out step done, a danger step done, output streaming.
func runningEvents() []engine.Event {
	evs := []engine.Event{
		engine.RunStarted{RunID: "r20261121-030405-ab12", Runbook: "tui-drill", Title: "Drill for the TUI end-to-end test",
			Inventory: "testdata/inventory.yaml", Time: at(0), Steps: []string{"hello", "wipe", "report"}},
		engine.StepPending{StepID: "hello", Title: "Say hello everywhere", Kind: "shell", Targets: []string{"node1", "node2", "node3"}, Time: at(10)},
	}
	for i, n := range []string{"node1", "node2", "node3"} {
		evs = append(evs,
			engine.StepStarted{StepID: "hello", Target: n, Attempt: 1, Summary: "echo hello from " + n, Time: at(20 + i)},
			engine.OutputLine{StepID: "hello", Target: n, Line: "hello from " + n, Time: at(30 + i)},
		)
	}
	for i, n := range []string{"node1", "node2", "node3"} {
		evs = append(evs, engine.StepFinished{StepID: "hello", Target: n, Attempt: 1, Status: state.StatusSucceeded, Duration: time.Duration(100+i*50) * time.Millisecond, Time: at(200 + i*50)})
	}
	evs = append(evs,
		engine.StepDone{StepID: "hello", Status: state.StatusSucceeded, Time: at(300)},
		engine.StepPending{StepID: "wipe", Title: "Wipe the scratch marker on the seed", Kind: "shell", Targets: []string{"node2"}, Danger: true, Time: at(310)},
		engine.StepStarted{StepID: "wipe", Target: "node2", Attempt: 1, Summary: `echo "wiped marker drill on node2"`, Time: at(9000)},
		engine.OutputLine{StepID: "wipe", Target: "node2", Line: "wiped marker drill on node2", Time: at(9010)},
		engine.StepFinished{StepID: "wipe", Target: "node2", Attempt: 1, Status: state.StatusSucceeded, Duration: 40 * time.Millisecond, Time: at(9040)},
		engine.StepDone{StepID: "wipe", Status: state.StatusSucceeded, Time: at(9040)},
		engine.StepPending{StepID: "report", Title: "Report", Kind: "shell", Targets: []string{"node2"}, Time: at(9050)},
		engine.StepStarted{StepID: "report", Target: "node2", Attempt: 1, Summary: "long-report --verbose", Time: at(60000)},
	)
	for i := range 30 {
		evs = append(evs, engine.OutputLine{StepID: "report", Target: "node2", Line: fmt.Sprintf("report line %02d: \x1b[31mcolour stripped\x1b[0m and a tab\there", i), Stderr: i%10 == 9, Time: at(60000 + i)})
	}
	return evs
}

// runModel returns a model showing a live run fed with evs.
func runModel(t testing.TB, evs []engine.Event) *Model {
	inv := loadInv(t)
	rb := loadRB(t, "testdata/e2e/drill.yaml", inv)
	m := New(context.Background(), Options{Now: fixedNow, NoTick: true, User: "alice", Inventory: inv,
		Start: func(ctx context.Context, _ *runbooks.Runbook, _ map[string]runbooks.Value, _ func(engine.Event), _ steps.Operator) (engine.Outcome, error) {
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
