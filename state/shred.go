package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Crypto-shredding (see the package doc, "Secrets").
//
// Every run that holds a secret has one row in run_keys: its data key,
// wrapped (AES-256-GCM) by the key file's key. When the run ends for good
// (Status.EndsRun) the row is deleted in the same transaction as the
// run.finished event, the sealed values of the projections (answers, execs)
// are blanked, and the WAL is checkpointed and truncated, so neither the
// database files nor the key file can open the ciphertext the hash-chained
// event log still holds. The connection runs with secure_delete on, so
// SQLite overwrites deleted content with zeros instead of leaving it in free
// space.

// nextKeySuffix names the key file written during a key rotation, before the
// database commits to it.
const nextKeySuffix = ".next"

// migrateSeals runs once per database, at the first open by a drbook with
// per-run keys (meta key_check unset). When the record holds sealed:v1:
// values (sealed with the key file's key itself), it rotates the key file:
// each run that can still resume gets a run key and a re-sealed copy of each
// of its v1 values (legacy_seals), so resume keeps working until the run
// ends; the projections of runs that ended are blanked; and the old key is
// overwritten in the key file and kept nowhere, so the v1 values of ended
// runs open no more.
//
// Crash safety: the new key is written to drbook.key.next before the
// transaction commits; settleKey completes a rotation whose commit landed.
func (db *DB) migrateSeals(ctx context.Context, keyPath string) error {
	var rotated []byte
	err := db.tx(ctx, func(t *sql.Tx) error {
		rotated = nil
		check, err := metaGet(ctx, t, "key_check")
		if err != nil || check != "" {
			return err
		}
		legacy, err := legacyRuns(ctx, t)
		if err != nil {
			return err
		}
		if len(legacy) == 0 {
			return metaSet(ctx, t, "key_check", keyCheck(db.key))
		}
		newKey := make([]byte, sealKeySize)
		if _, err := rand.Read(newKey); err != nil {
			return fmt.Errorf("sealing key: %w", err)
		}
		tmp, err := writeTempKey(dirOf(keyPath), newKey)
		if err != nil {
			return err
		}
		if err := os.Rename(tmp, keyPath+nextKeySuffix); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("sealing key: %w", fileErr(err))
		}
		syncDir(dirOf(keyPath))
		now := formatTime(time.Now())
		for id, status := range legacy {
			if status.EndsRun() {
				if err := shredRun(ctx, t, id); err != nil {
					return err
				}
				continue
			}
			if err := db.resealLegacy(ctx, t, id, newKey, now); err != nil {
				return err
			}
		}
		rotated = newKey
		return metaSet(ctx, t, "key_check", keyCheck(newKey))
	})
	if err != nil {
		return fmt.Errorf("migrate sealed secrets: %w", err)
	}
	if rotated != nil {
		if err := finishRotation(keyPath, rotated); err != nil {
			return err
		}
		clear(db.key)
		db.key = rotated
		db.truncateWAL(ctx)
	}
	return nil
}

// resealLegacy gives run id a data key (wrapped by newKey) and a copy of
// each of its sealed:v1: values re-sealed with it.
func (db *DB) resealLegacy(ctx context.Context, t *sql.Tx, id string, newKey []byte, now string) error {
	dek := make([]byte, sealKeySize)
	if _, err := rand.Read(dek); err != nil {
		return err
	}
	defer clear(dek)
	w, err := gcmSeal(newKey, dek, []byte(runKeyAAD+id))
	if err != nil {
		return err
	}
	if _, err := t.ExecContext(ctx, `INSERT INTO run_keys (run_id, wrapped, legacy, created_at) VALUES (?, ?, 1, ?)`, id, w, now); err != nil {
		return err
	}
	var texts []string
	for _, q := range []string{
		`SELECT CAST(data AS TEXT) FROM events WHERE run_id = ?`,
		`SELECT value FROM answers WHERE run_id = ?`,
		`SELECT outputs FROM execs WHERE run_id = ?`,
	} {
		rows, err := t.QueryContext(ctx, q, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return err
			}
			texts = append(texts, s)
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, text := range texts {
		for _, s := range v1InText.FindAllString(text, -1) {
			if seen[s] {
				continue
			}
			seen[s] = true
			raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, sealedV1))
			if err != nil {
				continue
			}
			plain, err := gcmOpen(db.key, raw, []byte(sealAAD))
			if err != nil {
				continue // never opened with this key: nothing to keep
			}
			out, err := gcmSeal(dek, plain, []byte(sealV2AAD+id))
			clear(plain)
			if err != nil {
				return err
			}
			if _, err := t.ExecContext(ctx, `INSERT OR REPLACE INTO legacy_seals (run_id, digest, resealed) VALUES (?, ?, ?)`,
				id, legacyDigest(s), sealedV2+base64.StdEncoding.EncodeToString(out)); err != nil {
				return err
			}
		}
	}
	return nil
}

// v1InText finds sealed:v1: strings in a JSON text.
var v1InText = regexp.MustCompile(`sealed:v1:[A-Za-z0-9+/=]+`)

// legacyRuns returns the runs whose events hold sealed:v1: values, with
// their status.
func legacyRuns(ctx context.Context, t *sql.Tx) (map[string]Status, error) {
	rows, err := t.QueryContext(ctx, `SELECT id, status FROM runs WHERE id IN
		(SELECT DISTINCT run_id FROM events WHERE instr(CAST(data AS TEXT), ?) > 0)`, sealedV1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Status{}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			return nil, err
		}
		out[id] = Status(st)
	}
	return out, rows.Err()
}

// settleKey checks the key file against the database's key_check. A
// mismatch is a rotation to finish (drbook.key.next matches), a key file
// made anew after it was lost (adopted when no run holds sealed secrets), or
// a key file that does not belong to this database: then sealing and
// unsealing fail with ErrKeyMismatch, and everything else works.
func (db *DB) settleKey(ctx context.Context, keyPath string) error {
	var check string
	if err := db.sql.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&check); err != nil {
		return fmt.Errorf("sealing key: %w", mapErr(err))
	}
	if check == keyCheck(db.key) {
		_ = os.Remove(keyPath + nextKeySuffix) // an unfinished rotation that never committed
		return nil
	}
	// Another process may have rotated the key since this one read it.
	if cur, err := readKey(keyPath); err == nil && keyCheck(cur) == check {
		db.key = cur
		return nil
	}
	next, err := readKey(keyPath + nextKeySuffix)
	if err == nil && keyCheck(next) == check {
		if err := finishRotation(keyPath, next); err != nil {
			return err
		}
		db.key = next
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// A key file that was lost and made anew: if no run holds sealed
	// secrets, nothing depends on the old key, and this one is adopted.
	var held int
	err = db.tx(ctx, func(t *sql.Tx) error {
		if err := t.QueryRowContext(ctx, `SELECT count(*) FROM run_keys`).Scan(&held); err != nil {
			return err
		}
		if held > 0 {
			return nil
		}
		return metaSet(ctx, t, "key_check", keyCheck(db.key))
	})
	if err != nil {
		return fmt.Errorf("sealing key: %w", err)
	}
	if held > 0 {
		db.keyErr = fmt.Errorf("%w: %s: %d run(s) that can still resume hold secrets sealed under another key; put that key file back, or end those runs with drbook abort", ErrKeyMismatch, keyPath, held)
	}
	return nil
}

// finishRotation overwrites the key file in place with key (so the old key's
// bytes do not linger in a freed block of a replaced file) and removes the
// .next copy.
func finishRotation(keyPath string, key []byte) error {
	f, err := os.OpenFile(keyPath, os.O_WRONLY, 0o600) // #nosec G304 -- the sealing key file beside the operator's database
	if err != nil {
		return fmt.Errorf("sealing key: rotate: %w", fileErr(err))
	}
	if _, err := f.WriteAt(key, 0); err != nil {
		f.Close()
		return fmt.Errorf("sealing key: rotate: %w", fileErr(err))
	}
	if err := f.Truncate(int64(len(key))); err != nil {
		f.Close()
		return fmt.Errorf("sealing key: rotate: %w", fileErr(err))
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sealing key: rotate: %w", fileErr(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sealing key: rotate: %w", fileErr(err))
	}
	if err := os.Remove(keyPath + nextKeySuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sealing key: rotate: %w", fileErr(err))
	}
	syncDir(dirOf(keyPath))
	return nil
}

// shredRun deletes run runID's data key and blanks the sealed values of its
// projections (secret answers, secret outputs), inside transaction t.
func shredRun(ctx context.Context, t *sql.Tx, runID string) error {
	for _, q := range []string{`DELETE FROM run_keys WHERE run_id = ?`, `DELETE FROM legacy_seals WHERE run_id = ?`} {
		if _, err := t.ExecContext(ctx, q, runID); err != nil {
			return fmt.Errorf("shred run %s: %w", runID, err)
		}
	}
	if _, err := t.ExecContext(ctx, `UPDATE answers SET value = '' WHERE run_id = ? AND (secret != 0 OR value LIKE 'sealed:v%')`, runID); err != nil {
		return fmt.Errorf("shred run %s: %w", runID, err)
	}
	type key struct {
		step, target string
		attempt      int
	}
	rows, err := t.QueryContext(ctx, `SELECT step_id, target, attempt, outputs, secret_outputs FROM execs
		WHERE run_id = ? AND (secret_outputs != '[]' OR instr(outputs, 'sealed:v') > 0)`, runID)
	if err != nil {
		return fmt.Errorf("shred run %s: %w", runID, err)
	}
	blanked := map[key]string{}
	for rows.Next() {
		var k key
		var outs, secrets string
		if err := rows.Scan(&k.step, &k.target, &k.attempt, &outs, &secrets); err != nil {
			rows.Close()
			return fmt.Errorf("shred run %s: %w", runID, err)
		}
		var o map[string]string
		var s []string
		if json.Unmarshal([]byte(outs), &o) != nil {
			o = map[string]string{} // not readable: blank it all
		}
		_ = json.Unmarshal([]byte(secrets), &s)
		for _, n := range s {
			if _, ok := o[n]; ok {
				o[n] = ""
			}
		}
		for n, v := range o {
			if IsSealed(v) {
				o[n] = ""
			}
		}
		b, err := json.Marshal(o)
		if err != nil {
			rows.Close()
			return fmt.Errorf("shred run %s: %w", runID, err)
		}
		blanked[k] = string(b)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("shred run %s: %w", runID, err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("shred run %s: %w", runID, err)
	}
	for k, outs := range blanked {
		if _, err := t.ExecContext(ctx, `UPDATE execs SET outputs = ? WHERE run_id = ? AND step_id = ? AND target = ? AND attempt = ?`,
			outs, runID, k.step, k.target, k.attempt); err != nil {
			return fmt.Errorf("shred run %s: %w", runID, err)
		}
	}
	return nil
}

// truncateWAL checkpoints the WAL into the database file and truncates it to
// zero bytes, so page images written before a shred leave the WAL. A read
// transaction in another process holds it up: SQLite waits for it up to the
// busy timeout (5 s); after a second try it is left to Close (and to the
// next shred).
func (db *DB) truncateWAL(ctx context.Context) {
	for i := 0; i < 2; i++ {
		var busy, logPages, done int
		err := db.sql.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done)
		if err == nil && busy == 0 {
			db.walDirty.Store(false)
			return
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(i+1) * 20 * time.Millisecond)
	}
	db.walDirty.Store(true)
	slog.Warn("checkpoint database: WAL not truncated after a shred (readers busy); retried at close", "db", db.path)
}

func metaGet(ctx context.Context, t *sql.Tx, name string) (string, error) {
	var v string
	err := t.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

func metaSet(ctx context.Context, t *sql.Tx, name, value string) error {
	_, err := t.ExecContext(ctx, `INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	return err
}

func dirOf(path string) string { return filepath.Dir(path) }
