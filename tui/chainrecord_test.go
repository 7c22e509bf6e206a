package tui

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/drbook/drbook/state"
)

// TestChainRecordIgnoresCache: the live pager's record folds the step's
// events of the chain, so an edited execs row changes nothing it shows.
func TestChainRecordIgnoresCache(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "drbook.db")
	db, err := state.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := state.Run{RunbookName: "rb", RunbookSHA256: "00", Mode: state.ModeHeadless}
	if err := db.CreateRun(ctx, &r); err != nil {
		t.Fatal(err)
	}
	add := func(typ state.EventType, step, target string, attempt int, p any) {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Append(ctx, state.Event{RunID: r.ID, Type: typ, StepID: step, Target: target, Attempt: attempt, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	add(state.EvStepStarted, "a", "node1", 1, state.StepStarted{Kind: "shell"})
	add(state.EvStepFinished, "a", "node1", 1, state.StepFinished{Status: state.StatusFailed, ExitCode: 3, Error: "exit 3", Log: "the real output\n"})
	add(state.EvStepStarted, "b", "node1", 1, state.StepStarted{Kind: "shell"})

	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `UPDATE execs SET status = 'succeeded', exit_code = 0, error = '', log = 'forged' WHERE step_id = 'a'`); err != nil {
		t.Fatal(err)
	}
	got, err := ChainRecord{Source: db}.StepLogs(ctx, r.ID, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Status != state.StatusFailed || got[0].ExitCode != 3 || got[0].Log != "the real output\n" {
		t.Fatalf("step a from the chain: %+v", got)
	}
}
