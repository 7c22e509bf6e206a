package state

import (
	"context"
	"fmt"
)

// StepEvents returns the events of one step of run runID (its step.started,
// step.output, step.finished and decisions), in seq order: what a pager
// folds to show one step's executions. It reads that step's events, never
// the whole run, and never the execs cache: the chain is what is shown.
func (db *DB) StepEvents(ctx context.Context, runID, stepID string) ([]Event, error) {
	if err := db.mustExist(ctx, runID); err != nil {
		return nil, fmt.Errorf("step events: %w", err)
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT run_id, seq, time, type, step_id, target, attempt, data, prev_hash, hash
		FROM events WHERE run_id = ? AND step_id = ? ORDER BY seq`, runID, stepID)
	if err != nil {
		return nil, fmt.Errorf("events of step %s of run %s: %w", stepID, runID, mapErr(err))
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var ev Event
		var tm, typ string
		if err := rows.Scan(&ev.RunID, &ev.Seq, &tm, &typ, &ev.StepID, &ev.Target, &ev.Attempt, &ev.Data, &ev.PrevHash, &ev.Hash); err != nil {
			return nil, fmt.Errorf("events of step %s of run %s: %w", stepID, runID, mapErr(err))
		}
		ev.Type = EventType(typ)
		if ev.Time, err = parseTime(tm); err != nil {
			return nil, fmt.Errorf("events of step %s of run %s: event %d: time: %w", stepID, runID, ev.Seq, err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of step %s of run %s: %w", stepID, runID, mapErr(err))
	}
	return out, nil
}
