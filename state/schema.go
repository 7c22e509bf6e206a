package state

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations returns the schema migrations, applied in order; PRAGMA
// user_version records how many ran. Never edit a released migration:
// append a new one.
func migrations() []string {
	return []string{
		// 1: runs, events, projections, run locks.
		`
CREATE TABLE runs (
	id               TEXT PRIMARY KEY,
	runbook_name     TEXT NOT NULL DEFAULT '',
	runbook_title    TEXT NOT NULL DEFAULT '',
	runbook_path     TEXT NOT NULL DEFAULT '',
	runbook_sha256   TEXT NOT NULL DEFAULT '',
	runbook_source   BLOB,
	inventory_path   TEXT NOT NULL DEFAULT '',
	inventory_sha256 TEXT NOT NULL DEFAULT '',
	inventory_source BLOB,
	mode             TEXT NOT NULL DEFAULT '',
	status           TEXT NOT NULL DEFAULT '',
	created_at       TEXT NOT NULL,
	updated_at       TEXT NOT NULL,
	finished_at      TEXT NOT NULL DEFAULT '',
	host             TEXT NOT NULL DEFAULT '',
	pid              INTEGER NOT NULL DEFAULT 0,
	user             TEXT NOT NULL DEFAULT '',
	labels           TEXT NOT NULL DEFAULT '{}',
	head_seq         INTEGER NOT NULL DEFAULT 0,
	head_hash        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_created ON runs (created_at, id);
CREATE INDEX runs_by_name ON runs (runbook_name, created_at);
CREATE TABLE events (
	run_id    TEXT NOT NULL REFERENCES runs (id),
	seq       INTEGER NOT NULL,
	time      TEXT NOT NULL,
	type      TEXT NOT NULL,
	step_id   TEXT NOT NULL DEFAULT '',
	target    TEXT NOT NULL DEFAULT '',
	attempt   INTEGER NOT NULL DEFAULT 0,
	data      BLOB NOT NULL,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL,
	PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE execs (
	run_id         TEXT NOT NULL REFERENCES runs (id),
	step_id        TEXT NOT NULL,
	target         TEXT NOT NULL,
	attempt        INTEGER NOT NULL,
	status         TEXT NOT NULL,
	started_at     TEXT NOT NULL DEFAULT '',
	finished_at    TEXT NOT NULL DEFAULT '',
	exit_code      INTEGER NOT NULL DEFAULT 0,
	error          TEXT NOT NULL DEFAULT '',
	outputs        TEXT NOT NULL DEFAULT '{}',
	secret_outputs TEXT NOT NULL DEFAULT '[]',
	log            TEXT NOT NULL DEFAULT '',
	start_seq      INTEGER NOT NULL,
	end_seq        INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (run_id, step_id, target, attempt)
);
CREATE INDEX execs_by_start ON execs (run_id, start_seq);
CREATE TABLE answers (
	run_id TEXT NOT NULL REFERENCES runs (id),
	name   TEXT NOT NULL,
	value  TEXT NOT NULL,
	secret INTEGER NOT NULL DEFAULT 0,
	seq    INTEGER NOT NULL,
	PRIMARY KEY (run_id, name)
);
CREATE TABLE run_locks (
	run_id     TEXT PRIMARY KEY REFERENCES runs (id),
	token      TEXT NOT NULL,
	host       TEXT NOT NULL,
	pid        INTEGER NOT NULL,
	proc_start TEXT NOT NULL DEFAULT '',
	user       TEXT NOT NULL DEFAULT '',
	since      TEXT NOT NULL,
	heartbeat  TEXT NOT NULL
);
`,
		// 2: per-run data keys (crypto-shredding) and database metadata.
		`
CREATE TABLE run_keys (
	run_id     TEXT PRIMARY KEY REFERENCES runs (id),
	wrapped    BLOB NOT NULL,
	legacy     INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL
);
CREATE TABLE legacy_seals (
	run_id   TEXT NOT NULL REFERENCES runs (id),
	digest   TEXT NOT NULL,
	resealed TEXT NOT NULL,
	PRIMARY KEY (run_id, digest)
);
CREATE TABLE meta (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`,
		// 3: approvals submitted by drbook approve, for the run's process to
		// verify and record (the two-person rule).
		`
CREATE TABLE approval_submissions (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id       TEXT NOT NULL REFERENCES runs (id),
	step_id      TEXT NOT NULL,
	message      BLOB NOT NULL,
	signature    BLOB NOT NULL,
	user         TEXT NOT NULL DEFAULT '',
	uid          INTEGER NOT NULL DEFAULT -1,
	host         TEXT NOT NULL DEFAULT '',
	submitted_at TEXT NOT NULL,
	done_seq     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX approval_submissions_by_step ON approval_submissions (run_id, step_id, done_seq);
`,
	}
}

// init migrates the schema and prepares the hot statements.
func (db *DB) init(ctx context.Context) error {
	var version int
	if err := db.sql.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return mapErr(err)
	}
	migs := migrations()
	if version > len(migs) {
		return fmt.Errorf("%w: schema version %d, this drbook knows %d", ErrNewerSchema, version, len(migs))
	}
	// Probe for write access even when nothing is to migrate: a read-only
	// file must fail here, clearly, not at the first checkpoint.
	err := db.tx(ctx, func(t *sql.Tx) error {
		// Re-read inside the write transaction: another process may have
		// migrated meanwhile.
		if err := t.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
			return err
		}
		if version > len(migs) {
			return fmt.Errorf("%w: schema version %d, this drbook knows %d", ErrNewerSchema, version, len(migs))
		}
		for i := version; i < len(migs); i++ {
			if _, err := t.ExecContext(ctx, migs[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			if _, err := t.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if err := narrowPath(db.path + sfx); err != nil {
			return err
		}
	}
	prep := func(dst **sql.Stmt, q string) error {
		s, err := db.sql.PrepareContext(ctx, q)
		if err != nil {
			return mapErr(fmt.Errorf("prepare %q: %w", q, err))
		}
		*dst = s
		return nil
	}
	if err := prep(&db.stmtRunHead, `SELECT head_seq, head_hash FROM runs WHERE id = ?`); err != nil {
		return err
	}
	if err := prep(&db.stmtInsertEv, `INSERT INTO events (run_id, seq, time, type, step_id, target, attempt, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
		return err
	}
	return prep(&db.stmtUpdateHead, `UPDATE runs SET head_seq = ?, head_hash = ?, updated_at = ? WHERE id = ?`)
}
