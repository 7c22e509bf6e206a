package state

import (
	"context"
	"fmt"
)

// StepLogs returns the step executions of one step of run runID, ordered by
// StartSeq, with their status, exit code, error and recorded output (Log)
// only: what a pager shows. It reads one step's rows, never the whole run.
func (db *DB) StepLogs(ctx context.Context, runID, stepID string) ([]Exec, error) {
	if err := db.mustExist(ctx, runID); err != nil {
		return nil, fmt.Errorf("step logs: %w", err)
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT target, attempt, status, exit_code, error, log, start_seq, end_seq
		FROM execs WHERE run_id = ? AND step_id = ? ORDER BY start_seq, target, attempt`, runID, stepID)
	if err != nil {
		return nil, fmt.Errorf("logs of step %s of run %s: %w", stepID, runID, mapErr(err))
	}
	defer rows.Close()
	var out []Exec
	for rows.Next() {
		x := Exec{RunID: runID, StepID: stepID}
		var status string
		if err := rows.Scan(&x.Target, &x.Attempt, &status, &x.ExitCode, &x.Error, &x.Log, &x.StartSeq, &x.EndSeq); err != nil {
			return nil, fmt.Errorf("logs of step %s of run %s: %w", stepID, runID, mapErr(err))
		}
		x.Status = Status(status)
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logs of step %s of run %s: %w", stepID, runID, mapErr(err))
	}
	return out, nil
}
