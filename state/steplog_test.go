package state

import (
	"context"
	"errors"
	"testing"
)

func TestStepEventsReadsOneStep(t *testing.T) {
	db, _ := openTest(t)
	r := newRun(t, db)
	appendEvent(t, db, r.ID, EvStepStarted, "a", "node1", 1, StepStarted{Kind: "shell"})
	appendEvent(t, db, r.ID, EvStepFinished, "a", "node1", 1, StepFinished{Status: StatusFailed, ExitCode: 3, Error: "exit 3", Log: "one\n! two\n"})
	appendEvent(t, db, r.ID, EvStepStarted, "b", "node1", 1, StepStarted{Kind: "shell"})
	appendEvent(t, db, r.ID, EvStepFinished, "b", "node1", 1, StepFinished{Status: StatusSucceeded, Log: "other step\n"})
	appendEvent(t, db, r.ID, EvStepStarted, "a", "node1", 2, StepStarted{Kind: "shell"})

	got, err := db.StepEvents(context.Background(), r.ID, "a")
	if err != nil {
		t.Fatal(err)
	}
	var types []EventType
	for _, ev := range got {
		if ev.StepID != "a" {
			t.Errorf("event %d of step %q", ev.Seq, ev.StepID)
		}
		types = append(types, ev.Type)
	}
	if len(got) != 3 || types[0] != EvStepStarted || types[1] != EvStepFinished || types[2] != EvStepStarted || got[2].Attempt != 2 {
		t.Fatalf("step a's events: %v", types)
	}
	if _, err := db.StepEvents(context.Background(), "r-none", "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown run: err = %v, want ErrNotFound", err)
	}
}
