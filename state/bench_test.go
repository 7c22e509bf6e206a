package state

import (
	"context"
	"strings"
	"testing"
)

// BenchmarkAppend measures one durable append (WAL, synchronous=FULL: one
// fsync per event) of a typical step.finished payload.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	r := newRun(b, db)
	data := mustJSON(b, StepFinished{Status: StatusSucceeded, Outputs: map[string]string{"leader": "n1"},
		Log: strings.Repeat("raft: entering follower state\n", 8), DurationMS: 1234})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Append(ctx, Event{RunID: r.ID, Type: EvStepFinished, StepID: "join", Target: "n2", Attempt: 1, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpointPerStep measures the checkpoint cost of one step
// execution: a step.started and a step.finished, each durable.
func BenchmarkCheckpointPerStep(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	r := newRun(b, db)
	started := mustJSON(b, StepStarted{Title: "Join node", Kind: "agent.join", Summary: "join n2 to n1"})
	finished := mustJSON(b, StepFinished{Status: StatusSucceeded, Log: "joined\n", DurationMS: 900})
	b.ReportAllocs()
	attempt := 0
	for b.Loop() {
		attempt++
		if _, err := db.Append(ctx, Event{RunID: r.ID, Type: EvStepStarted, StepID: "join", Target: "n2", Attempt: attempt, Data: started}); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Append(ctx, Event{RunID: r.ID, Type: EvStepFinished, StepID: "join", Target: "n2", Attempt: attempt, Data: finished}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures verifying a 1000-event run.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	r := newRun(b, db)
	data := mustJSON(b, StepFinished{Status: StatusSucceeded, Log: "ok\n"})
	for i := 0; i < 999; i++ {
		if _, err := db.Append(ctx, Event{RunID: r.ID, Type: EvStepFinished, StepID: "s", Target: "n1", Attempt: i, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if rep, err := db.Verify(ctx, r.ID); err != nil || rep.Events != 1000 {
			b.Fatal(rep, err)
		}
	}
}

// BenchmarkFinishRun measures the end of a run that holds a secret input and
// a secret output: with shred, the run.finished append deletes the run key,
// blanks the projections and truncates the WAL; without (a failed run keeps
// its secrets) it is a plain append.
func BenchmarkFinishRun(b *testing.B) {
	for _, tc := range []struct {
		name   string
		status Status
	}{{"shred", StatusSucceeded}, {"keep", StatusFailed}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			db, _ := openTest(b)
			for b.Loop() {
				b.StopTimer()
				r := newRun(b, db)
				s, err := db.Seal(ctx, r.ID, "backup passphrase")
				if err != nil {
					b.Fatal(err)
				}
				appendEvent(b, db, r.ID, EvAnswer, "", "", 0, Answer{Name: "k", Value: s, Secret: true})
				appendEvent(b, db, r.ID, EvStepFinished, "mint", "n1", 1, StepFinished{Status: StatusSucceeded,
					Outputs: map[string]string{"token": s}, SecretOutputs: []string{"token"}})
				fin := mustJSON(b, RunFinished{Status: tc.status})
				b.StartTimer()
				if _, err := db.Append(ctx, Event{RunID: r.ID, Type: EvRunFinished, Data: fin}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
