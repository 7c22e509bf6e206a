package state

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// synchronousMode reads the pool connection's safety level (2 = FULL).
func synchronousMode(t *testing.T, db *DB) int {
	t.Helper()
	var mode int
	if err := db.sql.QueryRowContext(context.Background(), `PRAGMA synchronous`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	return mode
}

func (g *groupSync) state() (dirty bool, syncs int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dirty, g.syncs
}

// TestGroupSync: a step.finished leaves the WAL dirty and the connection in
// FULL mode; the next step.started (FULL) makes it clean at once; a
// step.finished with nothing after it is fsynced by the timer.
func TestGroupSync(t *testing.T) {
	db, _ := openTest(t)
	r := newRun(t, db)
	tests := []struct {
		typ       EventType
		wantDirty bool
	}{
		{EvStepStarted, false},
		{EvStepFinished, true},
		{EvStepStarted, false},
		{EvStepFinished, true},
	}
	for i, tc := range tests {
		var p any = StepStarted{Kind: "shell"}
		if tc.typ == EvStepFinished {
			p = StepFinished{Status: StatusSucceeded}
		}
		appendEvent(t, db, r.ID, tc.typ, "s", "n1", i/2+1, p)
		if got := synchronousMode(t, db); got != 2 {
			t.Fatalf("after %s the connection is in synchronous=%d, want FULL (2)", tc.typ, got)
		}
		if dirty, _ := db.group.state(); tc.typ == EvStepStarted && dirty {
			t.Fatalf("after %s (FULL) the WAL is still marked unsynced", tc.typ)
		}
	}
	// The last step.finished had no checkpoint after it: the timer syncs it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		dirty, syncs := db.group.state()
		if !dirty && syncs >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deferred step.finished not fsynced by the timer: dirty=%v syncs=%d", dirty, syncs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestGroupSyncSurvivesCrash: drbook killed (SIGKILL) right after a
// deferred step.finished returned loses nothing: the event is in the WAL
// and the chain verifies.
func TestGroupSyncSurvivesCrash(t *testing.T) {
	if path := os.Getenv("DRBOOK_GROUPSYNC_CHILD"); path != "" {
		db, err := Open(context.Background(), path)
		if err != nil {
			os.Exit(3)
		}
		r := newRun(t, db)
		appendEvent(t, db, r.ID, EvStepStarted, "s", "n1", 1, StepStarted{Kind: "shell"})
		appendEvent(t, db, r.ID, EvStepFinished, "s", "n1", 1, StepFinished{Status: StatusSucceeded, Log: "done\n"})
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // no Close, no timer
		select {}
	}
	path := filepath.Join(t.TempDir(), "drbook.db")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestGroupSyncSurvivesCrash$")
	cmd.Env = append(os.Environ(), "DRBOOK_GROUPSYNC_CHILD="+path)
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", err)
	}
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs, err := db.ListRuns(context.Background(), RunFilter{})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	evs, err := db.Events(context.Background(), runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Type != EvStepFinished {
		t.Fatalf("last event after the crash is %s, want step.finished", last.Type)
	}
	if rep, err := db.Verify(context.Background(), runs[0].ID); err != nil || !rep.OK {
		t.Fatalf("verify after crash: %+v %v", rep, err)
	}
}
