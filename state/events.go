package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Known reports whether t is one of the event types of this package.
func (t EventType) Known() bool {
	switch t {
	case EvRunCreated, EvRunResumed, EvAnswer, EvStepStarted, EvStepFinished, EvStepOutput,
		EvStepDecision, EvOperatorWait, EvRunFinished, EvNote, EvRunHandover, EvRecordSigned,
		EvApprovalRequested, EvApprovalGranted, EvApprovalRefused:
		return true
	}
	return false
}

// Append adds ev to the end of its run's chain: it assigns Seq, PrevHash and
// Hash (and Time, if zero), inserts the event and updates the projections
// (execs, answers, run status) in one immediate transaction. The event is
// durable (fsynced) when Append returns, but for step.finished and
// step.output, which are committed to the WAL and fsynced by the next
// checkpoint or within 20 ms (groupsync.go). Data must be one JSON value; empty
// Data is stored as null; RunID, Type, StepID and Target must be valid UTF-8.
// run.created is written by CreateRun only; a secret answer must be sealed.
//
// Projections (caches: package runlog folds the same events by the same
// rules, and replay, runs and resume read the fold, never these tables;
// runlog.CacheDiff reports where they disagree):
//   - step.started inserts the Exec (StepID, Target, Attempt) as running (a
//     repeated start of the same attempt restarts it);
//   - step.output appends its chunk to a running Exec's log (when the
//     chunk's offset is the log's length);
//   - step.finished sets its status, exit code, error, outputs and log,
//     creating the Exec if no start was recorded;
//   - step.decision "skip" creates a skipped Exec if none exists, or marks an
//     unfinished one skipped; "interrupted" marks a running Exec interrupted;
//     other decisions change no projection;
//   - run.finished sets the run's Status and FinishedAt and, when the status
//     ends the run for good (Status.EndsRun), shreds its secrets: its data
//     key is deleted and the sealed values of answers and execs blanked (the
//     event log keeps its ciphertext, which no key opens any more); the WAL
//     is then truncated; run.resumed sets it
//     running again, clears FinishedAt and records the new Host, PID, User;
//   - answer upserts Answers (the last answer for a name wins).
func (db *DB) Append(ctx context.Context, ev Event) (Event, error) {
	if ev.RunID == "" {
		return Event{}, fmt.Errorf("append: %w: run id is empty", ErrInvalidEvent)
	}
	if !ev.Type.Known() || ev.Type == EvRunCreated {
		return Event{}, fmt.Errorf("append to run %s: %w: type %q is not appendable", ev.RunID, ErrInvalidEvent, ev.Type)
	}
	for _, f := range []string{ev.RunID, string(ev.Type), ev.StepID, ev.Target} {
		if !utf8.ValidString(f) {
			return Event{}, fmt.Errorf("append to run %q: %w: ids must be valid UTF-8", ev.RunID, ErrInvalidEvent)
		}
	}
	if len(ev.Data) == 0 {
		ev.Data = json.RawMessage("null")
	}
	if !json.Valid(ev.Data) {
		return Event{}, fmt.Errorf("append %s to run %s: %w: data is not valid JSON", ev.Type, ev.RunID, ErrInvalidEvent)
	}
	ev.Data = append(json.RawMessage(nil), ev.Data...) // the caller may reuse its buffer
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC().Round(0)
	payload, err := checkPayload(ev)
	if err != nil {
		return Event{}, fmt.Errorf("append %s to run %s: %w", ev.Type, ev.RunID, err)
	}
	gen := db.group.snapshot()
	err = db.appendTx(ctx, deferrable(ev.Type), func(ctx context.Context, t *sql.Tx) error {
		var head int64
		var prev string
		if err := t.StmtContext(ctx, db.stmtRunHead).QueryRowContext(ctx, ev.RunID).Scan(&head, &prev); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if ev.Type == EvRecordSigned {
			// A signature is appended right after the head it signs.
			var p RecordSigned
			if err := json.Unmarshal(ev.Data, &p); err != nil || p.Seq != head || p.Hash != prev {
				return fmt.Errorf("%w: record.signed must sign the head (seq %d), right after it", ErrInvalidEvent, head)
			}
		}
		ev.Seq = head + 1
		ev.PrevHash = prev
		ev.Hash = EventHash(ev)
		if err := db.insertEvent(ctx, t, ev); err != nil {
			return err
		}
		if _, err := t.StmtContext(ctx, db.stmtUpdateHead).ExecContext(ctx, ev.Seq, ev.Hash, formatTime(ev.Time), ev.RunID); err != nil {
			return err
		}
		return project(ctx, t, ev, payload)
	})
	if err != nil {
		return Event{}, fmt.Errorf("append %s to run %s: %w", ev.Type, ev.RunID, err)
	}
	if !deferrable(ev.Type) {
		db.group.synced(gen) // a FULL commit fsyncs the whole WAL
	}
	if f, ok := payload.(*RunFinished); ok && f.Status.EndsRun() {
		db.truncateWAL(ctx)
	}
	return ev, nil
}

func (db *DB) insertEvent(ctx context.Context, t *sql.Tx, ev Event) error {
	_, err := t.StmtContext(ctx, db.stmtInsertEv).ExecContext(ctx, ev.RunID, ev.Seq, formatTime(ev.Time), string(ev.Type),
		ev.StepID, ev.Target, ev.Attempt, []byte(ev.Data), ev.PrevHash, ev.Hash)
	return err
}

// checkPayload decodes the payload of the types that are projected, so a
// malformed payload is refused before anything is written. It returns the
// decoded payload (a pointer to its struct; nil for the other types), which
// project applies.
func checkPayload(ev Event) (any, error) {
	var v any
	switch ev.Type {
	case EvAnswer:
		var a Answer
		if err := json.Unmarshal(ev.Data, &a); err != nil {
			return nil, fmt.Errorf("%w: answer payload: %v", ErrInvalidEvent, err)
		}
		if a.Name == "" {
			return nil, fmt.Errorf("%w: answer without a name", ErrInvalidEvent)
		}
		if a.Secret && a.Value != "" && !IsSealed(a.Value) {
			return nil, fmt.Errorf("%w: secret answer %q must be sealed (DB.Seal) before it is stored", ErrInvalidEvent, a.Name)
		}
		return &a, nil
	case EvStepStarted, EvStepFinished, EvStepDecision, EvStepOutput:
		if ev.StepID == "" {
			return nil, fmt.Errorf("%w: %s without a step id", ErrInvalidEvent, ev.Type)
		}
		switch ev.Type {
		case EvStepStarted:
			v = &StepStarted{}
		case EvStepOutput:
			v = &StepOutput{}
		case EvStepFinished:
			v = &StepFinished{}
		default:
			v = &StepDecision{}
		}
	case EvRunResumed:
		v = &RunResumed{}
	case EvRunFinished:
		v = &RunFinished{}
	case EvRunHandover:
		v = &RunHandover{}
	case EvRecordSigned:
		var p RecordSigned
		if err := json.Unmarshal(ev.Data, &p); err != nil {
			return nil, fmt.Errorf("%w: %s payload: %v", ErrInvalidEvent, ev.Type, err)
		}
		if p.Seq < 1 || p.Hash == "" || p.Signature == "" {
			return nil, fmt.Errorf("%w: record.signed without seq, hash or signature", ErrInvalidEvent)
		}
		return &p, nil
	default:
		return nil, nil
	}
	if err := json.Unmarshal(ev.Data, v); err != nil {
		return nil, fmt.Errorf("%w: %s payload: %v", ErrInvalidEvent, ev.Type, err)
	}
	if f, ok := v.(*StepFinished); ok && f.Status == "" {
		return nil, fmt.Errorf("%w: step.finished without a status", ErrInvalidEvent)
	}
	if f, ok := v.(*RunFinished); ok && f.Status == "" {
		return nil, fmt.Errorf("%w: run.finished without a status", ErrInvalidEvent)
	}
	return v, nil
}

// project applies ev, whose decoded payload (checkPayload) is payload, to
// the projection tables (rules in Append's doc).
func project(ctx context.Context, t *sql.Tx, ev Event, payload any) error {
	ts := formatTime(ev.Time)
	switch ev.Type {
	case EvStepStarted:
		_, err := t.ExecContext(ctx, `INSERT INTO execs (run_id, step_id, target, attempt, status, started_at, start_seq)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, step_id, target, attempt) DO UPDATE SET status = excluded.status,
			started_at = excluded.started_at, start_seq = excluded.start_seq, finished_at = '', exit_code = 0,
			error = '', outputs = '{}', secret_outputs = '[]', log = '', end_seq = 0`,
			ev.RunID, ev.StepID, ev.Target, ev.Attempt, string(StatusRunning), ts, ev.Seq)
		return err
	case EvStepFinished:
		p := *payload.(*StepFinished)
		outs, err := json.Marshal(nonNilMap(p.Outputs))
		if err != nil {
			return err
		}
		secrets := p.SecretOutputs
		if secrets == nil {
			secrets = []string{}
		}
		sec, err := json.Marshal(secrets)
		if err != nil {
			return err
		}
		// The execution's row usually exists (step.started inserted it):
		// update it by its key, and insert it only when no start was
		// recorded. (An upsert tries the insert first, finds the conflict
		// and then updates: two lookups of the key instead of one.)
		res, err := t.ExecContext(ctx, `UPDATE execs SET status = ?, finished_at = ?, exit_code = ?, error = ?,
			outputs = ?, secret_outputs = ?, log = ?, end_seq = ?
			WHERE run_id = ? AND step_id = ? AND target = ? AND attempt = ?`,
			string(p.Status), ts, p.ExitCode, p.Error, string(outs), string(sec), string(p.LogBytes()), ev.Seq,
			ev.RunID, ev.StepID, ev.Target, ev.Attempt)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		_, err = t.ExecContext(ctx, `INSERT INTO execs (run_id, step_id, target, attempt, status, started_at, finished_at,
			exit_code, error, outputs, secret_outputs, log, start_seq, end_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.RunID, ev.StepID, ev.Target, ev.Attempt, string(p.Status), ts, ts, p.ExitCode, p.Error,
			string(outs), string(sec), string(p.LogBytes()), ev.Seq, ev.Seq)
		return err
	case EvStepOutput:
		p := *payload.(*StepOutput)
		// Appended only in order, and only while the execution runs: the
		// step.finished log replaces the chunks.
		_, err := t.ExecContext(ctx, `UPDATE execs SET log = CAST(CAST(log AS BLOB) || ? AS TEXT)
			WHERE run_id = ? AND step_id = ? AND target = ? AND attempt = ? AND status = ? AND length(CAST(log AS BLOB)) = ?`,
			p.Bytes(), ev.RunID, ev.StepID, ev.Target, ev.Attempt, string(StatusRunning), p.Offset)
		return err
	case EvStepDecision:
		p := *payload.(*StepDecision)
		switch p.Decision {
		case DecisionSkip:
			_, err := t.ExecContext(ctx, `INSERT INTO execs (run_id, step_id, target, attempt, status, started_at, finished_at, start_seq, end_seq)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (run_id, step_id, target, attempt) DO UPDATE SET status = excluded.status,
				finished_at = excluded.finished_at, end_seq = excluded.end_seq
				WHERE execs.status NOT IN ('succeeded', 'skipped')`,
				ev.RunID, ev.StepID, ev.Target, ev.Attempt, string(StatusSkipped), ts, ts, ev.Seq, ev.Seq)
			if err != nil || len(p.Outputs) == 0 {
				return err
			}
			outs, err := json.Marshal(p.Outputs)
			if err != nil {
				return err
			}
			sec, err := json.Marshal(nonNilSlice(p.SecretOutputs))
			if err != nil {
				return err
			}
			_, err = t.ExecContext(ctx, `UPDATE execs SET outputs = ?, secret_outputs = ?
				WHERE run_id = ? AND step_id = ? AND target = ? AND attempt = ? AND status = ?`,
				string(outs), string(sec), ev.RunID, ev.StepID, ev.Target, ev.Attempt, string(StatusSkipped))
			return err
		case DecisionInterrupted:
			_, err := t.ExecContext(ctx, `UPDATE execs SET status = ?, finished_at = ?, end_seq = ?
				WHERE run_id = ? AND step_id = ? AND target = ? AND attempt = ? AND status = ?`,
				string(StatusInterrupted), ts, ev.Seq, ev.RunID, ev.StepID, ev.Target, ev.Attempt, string(StatusRunning))
			return err
		}
		return nil
	case EvRunFinished:
		p := *payload.(*RunFinished)
		if _, err := t.ExecContext(ctx, `UPDATE runs SET status = ?, finished_at = ? WHERE id = ?`, string(p.Status), ts, ev.RunID); err != nil {
			return err
		}
		if p.Status.EndsRun() {
			return shredRun(ctx, t, ev.RunID)
		}
		return nil
	case EvRunResumed:
		p := *payload.(*RunResumed)
		_, err := t.ExecContext(ctx, `UPDATE runs SET status = ?, finished_at = '', host = ?, pid = ?, user = ? WHERE id = ?`,
			string(StatusRunning), p.Host, p.PID, p.User, ev.RunID)
		return err
	case EvAnswer:
		p := *payload.(*Answer)
		_, err := t.ExecContext(ctx, `INSERT INTO answers (run_id, name, value, secret, seq) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value, secret = excluded.secret, seq = excluded.seq`,
			ev.RunID, p.Name, p.Value, p.Secret, ev.Seq)
		return err
	}
	return nil
}

// Events returns run runID's events in seq order. It fails with ErrNotFound
// for an unknown run.
func (db *DB) Events(ctx context.Context, runID string) ([]Event, error) {
	if err := db.mustExist(ctx, runID); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return db.queryEvents(ctx, "events of run "+runID, `WHERE run_id = ? ORDER BY seq`, runID)
}

// queryEvents reads the events a WHERE … ORDER BY clause selects; what
// names them in errors.
func (db *DB) queryEvents(ctx context.Context, what, where string, args ...any) ([]Event, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT run_id, seq, time, type, step_id, target, attempt, data, prev_hash, hash
		FROM events `+where, args...) // #nosec G202 -- where is one of this package's constant clauses
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var ev Event
		var tm, typ string
		var data []byte
		if err := rows.Scan(&ev.RunID, &ev.Seq, &tm, &typ, &ev.StepID, &ev.Target, &ev.Attempt, &data, &ev.PrevHash, &ev.Hash); err != nil {
			return nil, fmt.Errorf("%s: %w", what, mapErr(err))
		}
		ev.Type = EventType(typ)
		ev.Data = data
		if ev.Time, err = parseTime(tm); err != nil {
			return nil, fmt.Errorf("%s: event %d: time: %w", what, ev.Seq, err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return out, nil
}

// Execs returns run runID's step executions ordered by StartSeq.
func (db *DB) Execs(ctx context.Context, runID string) ([]Exec, error) {
	if err := db.mustExist(ctx, runID); err != nil {
		return nil, fmt.Errorf("execs: %w", err)
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT run_id, step_id, target, attempt, status, started_at, finished_at,
		exit_code, error, outputs, secret_outputs, log, start_seq, end_seq
		FROM execs WHERE run_id = ? ORDER BY start_seq, step_id, target, attempt`, runID)
	if err != nil {
		return nil, fmt.Errorf("execs of run %s: %w", runID, mapErr(err))
	}
	defer rows.Close()
	var out []Exec
	for rows.Next() {
		var x Exec
		var status, started, finished, outs, secrets string
		if err := rows.Scan(&x.RunID, &x.StepID, &x.Target, &x.Attempt, &status, &started, &finished,
			&x.ExitCode, &x.Error, &outs, &secrets, &x.Log, &x.StartSeq, &x.EndSeq); err != nil {
			return nil, fmt.Errorf("execs of run %s: %w", runID, mapErr(err))
		}
		x.Status = Status(status)
		if x.StartedAt, err = parseTime(started); err != nil {
			return nil, fmt.Errorf("execs of run %s: %w", runID, err)
		}
		if x.FinishedAt, err = parseTime(finished); err != nil {
			return nil, fmt.Errorf("execs of run %s: %w", runID, err)
		}
		if err := json.Unmarshal([]byte(outs), &x.Outputs); err != nil {
			return nil, fmt.Errorf("execs of run %s: outputs: %w", runID, err)
		}
		if len(x.Outputs) == 0 {
			x.Outputs = nil
		}
		if err := json.Unmarshal([]byte(secrets), &x.SecretOutputs); err != nil {
			return nil, fmt.Errorf("execs of run %s: secret outputs: %w", runID, err)
		}
		if len(x.SecretOutputs) == 0 {
			x.SecretOutputs = nil
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("execs of run %s: %w", runID, mapErr(err))
	}
	return out, nil
}

// Answers returns run runID's answers by name, as last recorded. Secret
// values stay sealed.
func (db *DB) Answers(ctx context.Context, runID string) (map[string]Answer, error) {
	if err := db.mustExist(ctx, runID); err != nil {
		return nil, fmt.Errorf("answers: %w", err)
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT name, value, secret FROM answers WHERE run_id = ?`, runID)
	if err != nil {
		return nil, fmt.Errorf("answers of run %s: %w", runID, mapErr(err))
	}
	defer rows.Close()
	out := map[string]Answer{}
	for rows.Next() {
		var a Answer
		if err := rows.Scan(&a.Name, &a.Value, &a.Secret); err != nil {
			return nil, fmt.Errorf("answers of run %s: %w", runID, mapErr(err))
		}
		out[a.Name] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("answers of run %s: %w", runID, mapErr(err))
	}
	return out, nil
}

func (db *DB) mustExist(ctx context.Context, runID string) error {
	var one int
	err := db.sql.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE id = ?`, runID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("run %s: %w", runID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", runID, mapErr(err))
	}
	return nil
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
