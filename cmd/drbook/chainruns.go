package main

import (
	"context"
	"slices"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// chainRuns lists runs newest first as their hash-chained records tell
// them: name, mode, status, runner and times are folded from each run's
// events (runlog.Fold), never read from the runs table, which only caches
// them; the filter applies to what the chain says. HoldsSecrets (whether
// the run's data key still exists) is a fact of the database, not of the
// record.
func chainRuns(ctx context.Context, db *state.DB, f state.RunFilter) ([]state.Run, error) {
	rows, err := db.ListRuns(ctx, state.RunFilter{})
	if err != nil {
		return nil, err
	}
	var out []state.Run
	for _, row := range rows {
		events, err := db.Events(ctx, row.ID)
		if err != nil {
			return nil, err
		}
		view := runlog.Fold(events)
		r := view.Run()
		r.ID, r.HoldsSecrets = row.ID, row.HoldsSecrets
		if len(f.Status) > 0 && !slices.Contains(f.Status, r.Status) {
			continue
		}
		if f.RunbookName != "" && r.RunbookName != f.RunbookName {
			continue
		}
		out = append(out, r)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}
