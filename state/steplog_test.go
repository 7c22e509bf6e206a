package state

import (
	"context"
	"errors"
	"testing"
)

func TestStepLogsReadsOneStep(t *testing.T) {
	db, _ := openTest(t)
	r := newRun(t, db)
	appendEvent(t, db, r.ID, EvStepStarted, "a", "node1", 1, StepStarted{Kind: "shell"})
	appendEvent(t, db, r.ID, EvStepFinished, "a", "node1", 1, StepFinished{Status: StatusFailed, ExitCode: 3, Error: "exit 3", Log: "one\n! two\n"})
	appendEvent(t, db, r.ID, EvStepStarted, "b", "node1", 1, StepStarted{Kind: "shell"})
	appendEvent(t, db, r.ID, EvStepFinished, "b", "node1", 1, StepFinished{Status: StatusSucceeded, Log: "other step\n"})
	appendEvent(t, db, r.ID, EvStepStarted, "a", "node1", 2, StepStarted{Kind: "shell"})

	got, err := db.StepLogs(context.Background(), r.ID, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d executions of step a, want 2: %+v", len(got), got)
	}
	first, second := got[0], got[1]
	if first.Attempt != 1 || first.Status != StatusFailed || first.ExitCode != 3 || first.Error != "exit 3" || first.Log != "one\n! two\n" {
		t.Errorf("first execution = %+v", first)
	}
	if second.Attempt != 2 || second.Status != StatusRunning || second.Log != "" {
		t.Errorf("second execution = %+v", second)
	}
	if _, err := db.StepLogs(context.Background(), "r-none", "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown run: err = %v, want ErrNotFound", err)
	}
}
