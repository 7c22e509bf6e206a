package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-sqlite3"
)

// NewRunID returns a fresh, time-sortable run id for time now:
// "r" + UTC yyyymmdd-hhmmss + "-" + 4 random hex digits.
func NewRunID(now time.Time) (string, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return "r" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:]), nil
}

// currentUser returns the login name of the current user (as Actor.User).
func currentUser() string {
	return CurrentActor("").User
}

// CreateRun records a new run: it fills r.ID (if empty), CreatedAt,
// UpdatedAt, Status (running if empty), Host, PID and User (if empty), and
// writes the run row and its seq-1 run.created event in one transaction.
func (db *DB) CreateRun(ctx context.Context, r *Run) error {
	now := time.Now().UTC()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	r.CreatedAt = r.CreatedAt.UTC()
	r.UpdatedAt = r.CreatedAt
	if r.ID == "" {
		id, err := NewRunID(r.CreatedAt)
		if err != nil {
			return err
		}
		r.ID = id
	}
	if !utf8.ValidString(r.ID) || strings.TrimSpace(r.ID) != r.ID {
		return fmt.Errorf("create run %q: %w: run id must be valid UTF-8 without surrounding space", r.ID, ErrInvalidEvent)
	}
	if r.Status == "" {
		r.Status = StatusRunning
	}
	if r.Host == "" {
		r.Host = db.host
	}
	if r.PID == 0 {
		r.PID = os.Getpid()
	}
	if r.User == "" && r.Actor == nil {
		// No identity given: this process's (a caller that names the
		// user names its actor too, or records none).
		a := CurrentActor("")
		a.Host = r.Host
		r.Actor = &a
	}
	if r.User == "" {
		r.User = r.Actor.User
	}
	labels, err := json.Marshal(nonNilMap(r.Labels))
	if err != nil {
		return fmt.Errorf("create run: labels: %w", err)
	}
	payload, err := json.Marshal(RunCreated{
		RunbookName: r.RunbookName, RunbookTitle: r.RunbookTitle, Labels: r.Labels,
		RunbookSHA256: r.RunbookSHA256, InventorySHA256: r.InventorySHA256,
		Mode: r.Mode, Host: r.Host, PID: r.PID, User: r.User, Actor: r.Actor,
		Runbook: NewRecordedFile(r.RunbookPath, r.RunbookSource), Inventory: NewRecordedFile(r.InventoryPath, r.InventorySource),
		WorkDir: r.WorkDir, StepAnswers: r.StepAnswers, RTO: r.RTO,
	})
	if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	ev := Event{RunID: r.ID, Seq: 1, Time: r.CreatedAt, Type: EvRunCreated, Data: payload, PrevHash: GenesisHash(r.ID)}
	ev.Hash = EventHash(ev)
	err = db.tx(ctx, func(t *sql.Tx) error {
		_, err := t.ExecContext(ctx, `INSERT INTO runs (id, runbook_name, runbook_title, runbook_path, runbook_sha256, runbook_source,
			inventory_path, inventory_sha256, inventory_source, mode, status, created_at, updated_at, finished_at,
			host, pid, user, labels, head_seq, head_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.RunbookName, r.RunbookTitle, r.RunbookPath, r.RunbookSHA256, r.RunbookSource,
			r.InventoryPath, r.InventorySHA256, r.InventorySource, r.Mode, string(r.Status),
			formatTime(r.CreatedAt), formatTime(r.UpdatedAt), formatTime(r.FinishedAt),
			r.Host, r.PID, r.User, string(labels), ev.Seq, ev.Hash)
		if err != nil {
			var se sqlite3.Error
			if errors.As(err, &se) && se.Code == sqlite3.ErrConstraint {
				return ErrRunExists
			}
			return err
		}
		return db.insertEvent(ctx, t, ev)
	})
	if err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	r.HeadSeq, r.HeadHash = ev.Seq, ev.Hash
	return nil
}

const runColumns = `id, runbook_name, runbook_title, runbook_path, runbook_sha256, runbook_source,
	inventory_path, inventory_sha256, inventory_source, mode, status, created_at, updated_at, finished_at,
	host, pid, user, labels, head_seq, head_hash,
	EXISTS (SELECT 1 FROM run_keys k WHERE k.run_id = runs.id)`

type scanner interface{ Scan(dest ...any) error }

func scanRun(s scanner) (Run, error) {
	var r Run
	var status, created, updated, finished, labels string
	if err := s.Scan(&r.ID, &r.RunbookName, &r.RunbookTitle, &r.RunbookPath, &r.RunbookSHA256, &r.RunbookSource,
		&r.InventoryPath, &r.InventorySHA256, &r.InventorySource, &r.Mode, &status, &created, &updated, &finished,
		&r.Host, &r.PID, &r.User, &labels, &r.HeadSeq, &r.HeadHash, &r.HoldsSecrets); err != nil {
		return Run{}, err
	}
	r.Status = Status(status)
	var err error
	if r.CreatedAt, err = parseTime(created); err != nil {
		return Run{}, fmt.Errorf("run %s: created_at: %w", r.ID, err)
	}
	if r.UpdatedAt, err = parseTime(updated); err != nil {
		return Run{}, fmt.Errorf("run %s: updated_at: %w", r.ID, err)
	}
	if r.FinishedAt, err = parseTime(finished); err != nil {
		return Run{}, fmt.Errorf("run %s: finished_at: %w", r.ID, err)
	}
	if labels != "" && labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &r.Labels); err != nil {
			return Run{}, fmt.Errorf("run %s: labels: %w", r.ID, err)
		}
	}
	return r, nil
}

// GetRun returns the run with id, or the one run whose id starts with id.
// It fails with ErrNotFound or ErrAmbiguous.
func (db *DB) GetRun(ctx context.Context, id string) (Run, error) {
	if id == "" {
		return Run{}, fmt.Errorf("get run: empty id: %w", ErrNotFound)
	}
	r, err := scanRun(db.sql.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("get run %s: %w", id, mapErr(err))
	}
	// A unique prefix: the range [id, id+1) on the primary key index.
	rows, err := db.sql.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id > ? AND id < ? ORDER BY id LIMIT 2`, id, prefixEnd(id))
	if err != nil {
		return Run{}, fmt.Errorf("get run %s: %w", id, mapErr(err))
	}
	defer rows.Close()
	var found []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return Run{}, fmt.Errorf("get run %s: %w", id, mapErr(err))
		}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return Run{}, fmt.Errorf("get run %s: %w", id, mapErr(err))
	}
	switch len(found) {
	case 0:
		return Run{}, fmt.Errorf("get run %s: %w", id, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return Run{}, fmt.Errorf("get run %s: %w (%s, %s, ...)", id, ErrAmbiguous, found[0].ID, found[1].ID)
}

// prefixEnd returns the smallest string greater than every string with
// prefix p (p's last byte below 0xff incremented, longer tail dropped).
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return strings.Repeat("\xff", len(p)+1)
}

// ListRuns returns runs newest first, filtered by f.
func (db *DB) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	q := `SELECT ` + runColumns + ` FROM runs`
	var where []string
	var args []any
	if len(f.Status) > 0 {
		ph := make([]string, len(f.Status))
		for i, s := range f.Status {
			ph[i] = "?"
			args = append(args, string(s))
		}
		where = append(where, "status IN ("+strings.Join(ph, ", ")+")")
	}
	if f.RunbookName != "" {
		where = append(where, "runbook_name = ?")
		args = append(args, f.RunbookName)
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", mapErr(err))
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", mapErr(err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", mapErr(err))
	}
	return out, nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
