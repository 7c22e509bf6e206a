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
