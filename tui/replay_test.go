package tui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
)

func ev(t testing.TB, ms int, typ state.EventType, step, target string, attempt int, payload any) state.Event {
	t.Helper()
	e, err := state.NewEvent("r20261121-030405-ab12", typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	e.StepID, e.Target, e.Attempt, e.Time = step, target, attempt, at(ms)
	return e
}

// recorded is a finished run's record with fixed times: a fanned-out step,
// a confirmed danger step, a failed step skipped with a reason.
func recorded(t testing.TB) Replay {
	src, err := os.ReadFile("testdata/e2e/drill.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run := state.Run{ID: "r20261121-030405-ab12", RunbookName: "tui-drill", RunbookTitle: "Drill for the TUI end-to-end test",
		RunbookPath: "testdata/e2e/drill.yaml", RunbookSource: src, InventoryPath: "testdata/inventory.yaml",
		Status: state.StatusSucceeded, CreatedAt: at(0), UpdatedAt: at(95000)}
	evs := []state.Event{ev(t, 0, state.EvRunCreated, "", "", 0, state.RunCreated{RunbookName: "tui-drill", Runbook: state.NewRecordedFile("testdata/e2e/drill.yaml", src), Inventory: state.NewRecordedFile("testdata/inventory.yaml", []byte("nodes: []\n"))})}
	for i, n := range []string{"node1", "node2", "node3"} {
		evs = append(evs, ev(t, 100+i, state.EvStepStarted, "hello", n, 1, state.StepStarted{Title: "Say hello everywhere", Kind: "shell", Summary: "echo hello from " + n}))
	}
	for i, n := range []string{"node1", "node2", "node3"} {
		evs = append(evs, ev(t, 300+i, state.EvStepFinished, "hello", n, 1, state.StepFinished{Status: state.StatusSucceeded, Log: "hello from " + n + "\nsecond line\n", DurationMS: int64(200 + i)}))
	}
	evs = append(evs,
		ev(t, 60000, state.EvOperatorWait, "wipe", "", 0, state.OperatorWait{Kind: state.WaitConfirm, Response: "node2", By: "alice", DurationMS: 59000}),
		ev(t, 60001, state.EvStepStarted, "wipe", "node2", 1, state.StepStarted{Title: "Wipe the scratch marker on the seed", Kind: "shell", Summary: "wipe node2", Danger: true}),
		ev(t, 60050, state.EvStepFinished, "wipe", "node2", 1, state.StepFinished{Status: state.StatusSucceeded, Log: "wiped marker drill on node2\n", DurationMS: 49}),
		ev(t, 60100, state.EvStepStarted, "report", "node2", 1, state.StepStarted{Title: "Report", Kind: "shell", Summary: "echo done drill"}),
		ev(t, 60200, state.EvStepFinished, "report", "node2", 1, state.StepFinished{Status: state.StatusFailed, ExitCode: 2, Error: "command failed with exit status 2", Log: "no such file\n", DurationMS: 100}),
		ev(t, 90000, state.EvStepDecision, "report", "node2", 0, state.StepDecision{Decision: state.DecisionSkip, Reason: "report sent by hand", By: "alice"}),
		ev(t, 95000, state.EvRunFinished, "", "", 0, state.RunFinished{Status: state.StatusSucceeded, MachineMS: 1000, HumanMS: 94000}),
	)
	return Replay{Run: run, Events: evs, Verify: state.VerifyReport{OK: true, Events: len(evs)}}
}

func TestTUIReplayGolden(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			rep := recorded(t)
			m := New(context.Background(), Options{Replay: &rep, Now: fixedNow, NoTick: true})
			d := drive(m)
			got := sized(t, d, sz.w, sz.h)
			for _, want := range []string{"REPLAY", "chain verified ✓ (14 events)", "3/3 steps", "RTO 00:01:35", "hello from node1", "skipped: report sent by hand"} {
				if !strings.Contains(got, want) {
					t.Errorf("replay lacks %q:\n%s", want, got)
				}
			}
			golden(t, fmt.Sprintf("replay_%dx%d", sz.w, sz.h), got)
			// Scroll through each step's recorded output.
			d.send(press("down"))
			if got := frame(m); !strings.Contains(got, "operator confirm answered \"node2\" (by alice) after 59.0s") || !strings.Contains(got, "wiped marker drill on node2") {
				t.Errorf("wipe step's record not shown:\n%s", got)
			}
			d.send(press("down"))
			if got := frame(m); !strings.Contains(got, "decision: skip — report sent by hand (by alice)") {
				t.Errorf("skip decision not shown:\n%s", got)
			}
			// Read-only: q quits, nothing runs.
			_, cmd := m.Update(press("q"))
			if cmd == nil {
				t.Error("q does not quit the replay")
			}
		})
	}
}

func TestTUIReplayBrokenChain(t *testing.T) {
	rep := recorded(t)
	rep.Verify = state.VerifyReport{OK: false, Events: 13, FirstBadSeq: 7, Reason: "hash mismatch"}
	m := New(context.Background(), Options{Replay: &rep, Now: fixedNow, NoTick: true})
	got := sized(t, drive(m), 120, 40)
	if !strings.Contains(got, "CHAIN BROKEN ✗ at seq 7: hash mismatch") {
		t.Errorf("broken chain not shown:\n%s", got)
	}
}

// TestTUIReplayRealRecord runs the drill with the real engine into a real
// SQLite record (local transport) and replays it.
func TestTUIReplayRealRecord(t *testing.T) {
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(t.TempDir(), "drbook.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inv := loadInv(t)
	rb := loadRB(t, "testdata/e2e/drill.yaml", inv)
	inputs := map[string]runbooks.Value{
		"seed": {V: "node2"}, "passphrase": {V: "hunter2-secret", Secret: true}, "label": {V: "drill"},
	}
	cfg := engine.Config{Runbook: rb, Inventory: inv, Registry: steps.NewRegistry(), Store: db,
		Dial: func(context.Context, *runbooks.Node) (transport.Transport, error) {
			return &transport.Local{BaseEnv: os.Environ()}, nil
		},
		Operator: &engine.Headless{Yes: true}, Mode: state.ModeHeadless}
	out, err := engine.Start(ctx, cfg, inputs)
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
	rep := Replay{Run: run, Events: events}
	rep.Verify, rep.VerifyErr = db.Verify(ctx, run.ID)
	m := New(ctx, Options{Replay: &rep, NoTick: true})
	d := drive(m)
	got := sized(t, d, 100, 30)
	for _, want := range []string{"chain verified ✓", "3/3 steps", "succeeded", run.ID} {
		if !strings.Contains(got, want) {
			t.Errorf("replay lacks %q:\n%s", want, got)
		}
	}
	d.send(press("down"))
	got = frame(m)
	if !strings.Contains(got, "wiped marker drill on node2") {
		t.Errorf("wipe output not replayed:\n%s", got)
	}
	if strings.Contains(got, "hunter2-secret") {
		t.Error("secret in clear on the replay screen")
	}
}

// TestTUIReplayCheckpointedOutput: a replay shows what a step printed
// before the runner died (its step.output checkpoints) and, for a step
// that finished, each line of its log once — checkpoints and the rest.
func TestTUIReplayCheckpointedOutput(t *testing.T) {
	rep := recorded(t)
	evs := rep.Events[:1:1]
	evs = append(evs,
		ev(t, 100, state.EvStepStarted, "hello", "node1", 1, state.StepStarted{Title: "Say hello everywhere", Kind: "shell", Summary: "long"}),
		ev(t, 2100, state.EvStepOutput, "hello", "node1", 1, state.NewStepOutput(0, []byte("chunk one\n"))),
		ev(t, 4100, state.EvStepOutput, "hello", "node1", 1, state.NewStepOutput(10, []byte("chunk two\n"))),
		ev(t, 5000, state.EvStepFinished, "hello", "node1", 1, state.StepFinished{Status: state.StatusSucceeded, Log: "chunk one\nchunk two\nthe rest\n", DurationMS: 4900}),
		ev(t, 5100, state.EvStepStarted, "wipe", "node2", 1, state.StepStarted{Title: "Wipe", Kind: "shell", Summary: "killed"}),
		ev(t, 7100, state.EvStepOutput, "wipe", "node2", 1, state.NewStepOutput(0, []byte("before the kill\n"))),
	)
	rep.Events = evs
	v := NewRunView(NewCommon(fixedNow), replayRunbook(rep))
	for _, e := range replayEvents(rep) {
		v.Handle(e)
	}
	text := func(id string) string {
		var b strings.Builder
		for _, l := range v.steps[v.index[id]].out.lines(nil) {
			b.WriteString(l.text + "\n")
		}
		return b.String()
	}
	hello := text("hello")
	for _, line := range []string{"chunk one", "chunk two", "the rest"} {
		if n := strings.Count(hello, line+"\n"); n != 1 {
			t.Errorf("hello shows %q %d times, want once:\n%s", line, n, hello)
		}
	}
	if wipe := text("wipe"); !strings.Contains(wipe, "before the kill") {
		t.Errorf("the killed step's checkpointed output is not shown:\n%s", wipe)
	}
}
