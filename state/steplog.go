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
	return db.queryEvents(ctx, "events of step "+stepID+" of run "+runID, `WHERE run_id = ? AND step_id = ? ORDER BY seq`, runID, stepID)
}
