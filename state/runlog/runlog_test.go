package runlog_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

type ev struct {
	typ          state.EventType
	step, target string
	attempt      int
	payload      any
}

func finished(st state.Status, log string) state.StepFinished {
	p := state.StepFinished{Status: st, Outputs: map[string]string{"k": "v"}, DurationMS: 7}
	p.SetLog([]byte(log))
	return p
}

// record makes a real database holding a run with the given events.
func record(t *testing.T, evs []ev) (*state.DB, string) {
	t.Helper()
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(t.TempDir(), "drbook.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := state.Run{RunbookName: "rb", RunbookTitle: "The runbook", RunbookPath: "rb.yaml", RunbookSource: []byte("name: rb\n"),
		RunbookSHA256: "00", Mode: state.ModeHeadless, Labels: map[string]string{"ticket": "INC-1"}}
	if err := db.CreateRun(ctx, &r); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		b, err := json.Marshal(e.payload)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Append(ctx, state.Event{RunID: r.ID, Type: e.typ, StepID: e.step, Target: e.target, Attempt: e.attempt, Data: b}); err != nil {
			t.Fatal(err)
		}
	}
	return db, r.ID
}

// TestFoldMatchesCaches: the reducer and the tables Append writes agree on
// every rule (start, chunks, finish, skips, interruptions, answers, resume).
func TestFoldMatchesCaches(t *testing.T) {
	started := state.StepStarted{Title: "Stop", Kind: "shell", Summary: "systemctl stop x"}
	cases := []struct {
		name   string
		evs    []ev
		status map[string]state.Status
	}{
		{"succeeded", []ev{
			{state.EvAnswer, "", "", 0, state.Answer{Name: "seed", Value: `"n1"`}},
			{state.EvStepStarted, "a", "n1", 1, started},
			{state.EvStepFinished, "a", "n1", 1, finished(state.StatusSucceeded, "ok\n")},
			{state.EvRunFinished, "", "", 0, state.RunFinished{Status: state.StatusSucceeded}},
		}, map[string]state.Status{"a": state.StatusSucceeded}},
		{"failed then retried on two targets", []ev{
			{state.EvStepStarted, "a", "n1", 1, started},
			{state.EvStepStarted, "a", "n2", 1, started},
			{state.EvStepFinished, "a", "n1", 1, finished(state.StatusFailed, "! boom\n")},
			{state.EvStepFinished, "a", "n2", 1, finished(state.StatusSucceeded, "")},
			{state.EvStepDecision, "a", "n1", 1, state.StepDecision{Decision: state.DecisionRetry, By: "alice"}},
			{state.EvStepStarted, "a", "n1", 2, started},
			{state.EvStepFinished, "a", "n1", 2, finished(state.StatusSucceeded, "ok\n")},
		}, map[string]state.Status{"a": state.StatusSucceeded}},
		{"interrupted with partial output, then skipped with outputs", []ev{
			{state.EvStepStarted, "a", "n1", 1, started},
			{state.EvStepOutput, "a", "n1", 1, state.NewStepOutput(0, []byte("half\n"))},
			{state.EvStepOutput, "a", "n1", 1, state.NewStepOutput(5, []byte("more\n"))},
			{state.EvStepOutput, "a", "n1", 1, state.NewStepOutput(3, []byte("out of order\n"))},
			{state.EvRunFinished, "", "", 0, state.RunFinished{Status: state.StatusInterrupted}},
			{state.EvRunResumed, "", "", 0, state.RunResumed{Host: "h2", PID: 9, User: "bob"}},
			{state.EvStepDecision, "a", "n1", 1, state.StepDecision{Decision: state.DecisionInterrupted, By: "engine"}},
			{state.EvStepDecision, "a", "n1", 1, state.StepDecision{Decision: state.DecisionSkip, Reason: "done by hand", By: "bob",
				Outputs: map[string]string{"k": "x"}}},
		}, map[string]state.Status{"a": state.StatusSkipped}},
		{"whole step skipped by a guard", []ev{
			{state.EvStepDecision, "g", "", 0, state.StepDecision{Decision: state.DecisionSkip, Reason: "guard false", By: "engine"}},
			{state.EvStepStarted, "b", "", 1, started},
		}, map[string]state.Status{"g": state.StatusSkipped, "b": state.StatusRunning}},
		{"answer changed on resume", []ev{
			{state.EvAnswer, "", "", 0, state.Answer{Name: "seed", Value: `"n1"`}},
			{state.EvAnswer, "", "", 0, state.Answer{Name: "seed", Value: `"n2"`, Changed: true, By: "bob", Reason: "typo"}},
		}, map[string]state.Status{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, id := record(t, tc.evs)
			events, err := db.Events(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			v := runlog.Fold(events)
			if len(v.Problems) > 0 {
				t.Fatalf("problems: %v", v.Problems)
			}
			execs, err := db.Execs(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.StateExecs(); !reflect.DeepEqual(got, execs) && !(len(got) == 0 && len(execs) == 0) {
				t.Errorf("fold execs:\n%+v\ncache:\n%+v", got, execs)
			}
			answers, err := db.Answers(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			folded := map[string]state.Answer{}
			for k, a := range v.Answers {
				folded[k] = state.Answer{Name: a.Name, Value: a.Value, Secret: a.Secret} // the cache keeps no history
			}
			if !reflect.DeepEqual(folded, answers) {
				t.Errorf("fold answers %+v, cache %+v", v.Answers, answers)
			}
			run, err := db.GetRun(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if d := runlog.CacheDiff(v, run, execs, answers); len(d) > 0 {
				t.Errorf("caches differ from the fold: %q", d)
			}
			got := v.Run()
			if got.Status != run.Status || got.Host != run.Host || got.User != run.User || got.PID != run.PID ||
				got.RunbookTitle != run.RunbookTitle || got.RunbookPath != run.RunbookPath || !got.FinishedAt.Equal(run.FinishedAt) ||
				!reflect.DeepEqual(got.Labels, run.Labels) {
				t.Errorf("fold header %+v\nrow %+v", got, run)
			}
			// A live folder (no logs, one step at a time) says the same.
			live := runlog.NewFolder()
			live.DropLogs()
			for _, e := range events {
				live.Apply(e)
			}
			for step, want := range tc.status {
				s := v.Step(step)
				if s == nil || s.Status != want {
					t.Errorf("step %s: %+v, want %s", step, s, want)
				}
				ls, lx, ok := live.Step(step)
				if !ok || ls.Status != want || ls.Reason != s.Reason || !ls.Start.Equal(s.Start) || !ls.End.Equal(s.End) || len(lx) != len(s.Execs) {
					t.Errorf("live step %s: %+v %d execs, fold %+v", step, ls, len(lx), s)
				}
				for i, x := range lx {
					y := v.Execs[s.Execs[i]]
					if x.Log != "" || x.Status != y.Status || x.Duration() != y.Duration() || x.Target != y.Target {
						t.Errorf("live exec %+v, fold %+v", x, y)
					}
				}
			}
		})
	}
}
