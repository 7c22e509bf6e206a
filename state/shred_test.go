package state

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// sealV1 seals plain the way drbook did before per-run keys: directly with
// the key file's key.
func sealV1(t *testing.T, key []byte, plain string) string {
	t.Helper()
	out, err := gcmSeal(key, []byte(plain), []byte(sealAAD))
	if err != nil {
		t.Fatal(err)
	}
	return sealedV1 + base64.StdEncoding.EncodeToString(out)
}

var anySealed = regexp.MustCompile(`sealed:v[0-9]+:[A-Za-z0-9+/=]+`)

// openable returns the plaintexts an attacker holding the database and the
// key file opens: every sealed string anywhere in the record, under the key
// file's key and every run key it unwraps, with every additional data.
func openable(t *testing.T, db *DB) map[string]bool {
	t.Helper()
	ctx := context.Background()
	fileKey, err := os.ReadFile(filepath.Join(filepath.Dir(db.path), KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	keys := [][]byte{fileKey}
	aads := [][]byte{[]byte(sealAAD)}
	rows, err := db.sql.QueryContext(ctx, `SELECT r.id, k.wrapped FROM runs r LEFT JOIN run_keys k ON k.run_id = r.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var w []byte
		if err := rows.Scan(&id, &w); err != nil {
			t.Fatal(err)
		}
		aads = append(aads, []byte(sealV2AAD+id))
		if k, err := gcmOpen(fileKey, w, []byte(runKeyAAD+id)); err == nil {
			keys = append(keys, k)
		}
	}
	rows.Close()
	texts := everyCell(t, db.sql)
	got := map[string]bool{}
	for _, text := range texts {
		for _, s := range anySealed.FindAllString(text, -1) {
			raw, err := base64.StdEncoding.DecodeString(s[len(sealedV1):])
			if err != nil {
				continue
			}
			for _, k := range keys {
				for _, aad := range aads {
					if p, err := gcmOpen(k, raw, aad); err == nil {
						got[string(p)] = true
					}
				}
			}
		}
	}
	return got
}

// everyCell returns every cell of every table, as text.
func everyCell(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var out []string
	for _, tb := range tables {
		rows, err := db.Query(`SELECT * FROM "` + tb + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			cells := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range cells {
				ptrs[i] = &cells[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, c := range cells {
				switch v := c.(type) {
				case string:
					out = append(out, v)
				case []byte:
					out = append(out, string(v))
				}
			}
		}
		rows.Close()
	}
	return out
}

// TestMigrateLegacySeals: a database written before per-run keys (values
// sealed:v1: with the key file's key). At the first open, the key file is
// rotated: the secrets of the run that succeeded stop opening at once, those
// of the interrupted and the failed run keep working for resume until they
// end; then nothing opens, and the old key is in no file.
func TestMigrateLegacySeals(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	oldKey := append([]byte(nil), db.key...)
	done, cut, failed := newRun(t, db), newRun(t, db), newRun(t, db)
	secrets := map[string]string{done.ID: "pass-of-done-7c1", cut.ID: "pass-of-cut-29d", failed.ID: "pass-of-failed-e40"}
	for _, id := range []string{done.ID, cut.ID, failed.ID} {
		v := sealV1(t, oldKey, secrets[id])
		appendEvent(t, db, id, EvAnswer, "", "", 0, Answer{Name: "backup_key", Value: v, Secret: true})
		appendEvent(t, db, id, EvStepFinished, "mint", "n1", 1, StepFinished{Status: StatusSucceeded,
			Outputs: map[string]string{"token": sealV1(t, oldKey, "tok-"+secrets[id])}, SecretOutputs: []string{"token"}})
	}
	appendEvent(t, db, done.ID, EvRunFinished, "", "", 0, RunFinished{Status: StatusSucceeded})
	appendEvent(t, db, cut.ID, EvRunFinished, "", "", 0, RunFinished{Status: StatusInterrupted})
	appendEvent(t, db, failed.ID, EvRunFinished, "", "", 0, RunFinished{Status: StatusFailed})
	// Make it the old schema, with the projections the old drbook kept.
	legacy := sealV1(t, oldKey, secrets[done.ID])
	for _, q := range []string{
		`DROP TABLE approval_submissions`, `DROP TABLE run_keys`, `DROP TABLE legacy_seals`, `DROP TABLE meta`, `PRAGMA user_version = 1`,
	} {
		if _, err := db.sql.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.sql.ExecContext(ctx, `UPDATE answers SET value = ? WHERE run_id = ?`, legacy, done.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	keyFile, _ := os.ReadFile(filepath.Join(filepath.Dir(path), KeyFileName))
	if bytes.Equal(keyFile, oldKey) || len(keyFile) != sealKeySize {
		t.Fatal("key file not rotated")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), KeyFileName+nextKeySuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind: %v", KeyFileName+nextKeySuffix, err)
	}
	got := openable(t, db2)
	for id, want := range map[string]bool{done.ID: false, cut.ID: true, failed.ID: true} {
		if got[secrets[id]] != want || got["tok-"+secrets[id]] != want {
			t.Errorf("run %s: opens=%v/%v, want %v (opened %v)", id, got[secrets[id]], got["tok-"+secrets[id]], want, got)
		}
		r, err := db2.GetRun(ctx, id)
		if err != nil || r.HoldsSecrets != want {
			t.Errorf("run %s: HoldsSecrets=%v, want %v (%v)", id, r.HoldsSecrets, want, err)
		}
	}
	if got["tok-"+secrets[done.ID]] || got[secrets[done.ID]] {
		t.Errorf("the succeeded run's legacy secret opens: %v", got)
	}
	// The resumable run's values open through drbook, and new ones seal.
	ans, err := db2.Answers(ctx, cut.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := db2.Unseal(ctx, cut.ID, ans["backup_key"].Value); err != nil || p != secrets[cut.ID] {
		t.Fatalf("legacy value of a resumable run: %q %v", p, err)
	}
	fresh, err := db2.Seal(ctx, cut.ID, "new-after-upgrade")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := db2.Unseal(ctx, cut.ID, fresh); err != nil || p != "new-after-upgrade" {
		t.Fatalf("new value of a legacy run: %q %v", p, err)
	}
	if a, _ := db2.Answers(ctx, done.ID); a["backup_key"].Value != "" {
		t.Errorf("succeeded run's projection keeps %q", a["backup_key"].Value)
	}
	// Both end: nothing opens any more, and the old key is nowhere.
	appendEvent(t, db2, cut.ID, EvRunResumed, "", "", 0, RunResumed{Host: "h"})
	appendEvent(t, db2, cut.ID, EvRunFinished, "", "", 0, RunFinished{Status: StatusSucceeded})
	appendEvent(t, db2, failed.ID, EvRunResumed, "", "", 0, RunResumed{Host: "h"})
	appendEvent(t, db2, failed.ID, EvRunFinished, "", "", 0, RunFinished{Status: StatusAborted})
	if got := openable(t, db2); len(got) > 0 {
		t.Errorf("after every run ended, the files open %v", got)
	}
	for _, sfx := range []string{"", "-wal", "-shm"} {
		b, _ := os.ReadFile(path + sfx)
		if bytes.Contains(b, oldKey) {
			t.Errorf("old key bytes in drbook.db%s", sfx)
		}
	}
	for _, id := range []string{done.ID, cut.ID, failed.ID} {
		if rep, err := db2.Verify(ctx, id); err != nil || !rep.OK {
			t.Errorf("chain of %s: %+v %v", id, rep, err)
		}
	}
}

// TestKeyRotationCrash: a rotation whose transaction committed but whose key
// file was not yet rewritten is finished at the next open (drbook.key.next);
// a key file that is not the database's makes sealing fail clearly, and
// nothing else.
func TestKeyRotationCrash(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	r := newRun(t, db)
	s, err := db.Seal(ctx, r.ID, "kept")
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(filepath.Dir(path), KeyFileName)
	good := append([]byte(nil), db.key...)
	db.Close()
	other := make([]byte, sealKeySize)
	if _, err := rand.Read(other); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath+nextKeySuffix, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, other, 0o600); err != nil { // the old key, not yet overwritten
		t.Fatal(err)
	}
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := db2.Unseal(ctx, r.ID, s); err != nil || p != "kept" {
		t.Fatalf("after an interrupted rotation: %q %v", p, err)
	}
	db2.Close()
	if b, _ := os.ReadFile(keyPath); !bytes.Equal(b, good) {
		t.Error("rotation not finished in the key file")
	}
	if _, err := os.Stat(keyPath + nextKeySuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".next left: %v", err)
	}
	// A foreign key file: open works, sealing says why it cannot.
	if err := os.WriteFile(keyPath, other, 0o600); err != nil {
		t.Fatal(err)
	}
	db3, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db3.Unseal(ctx, r.ID, s); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("foreign key file: %v, want ErrKeyMismatch", err)
	}
	if _, err := db3.GetRun(ctx, r.ID); err != nil {
		t.Errorf("listing with a foreign key file: %v", err)
	}
	// Once no run holds secrets, a new key file is adopted.
	appendEvent(t, db3, r.ID, EvRunFinished, "", "", 0, RunFinished{Status: StatusAborted})
	db3.Close()
	db4, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db4.Close()
	r2 := newRun(t, db4)
	if s, err := db4.Seal(ctx, r2.ID, "new"); err != nil {
		t.Errorf("seal after the lost key's runs ended: %v", err)
	} else if p, err := db4.Unseal(ctx, r2.ID, s); err != nil || p != "new" {
		t.Errorf("unseal: %q %v", p, err)
	}
}

// TestSealRefusedAfterEnd: a run that ended for good never gets a key again.
func TestSealRefusedAfterEnd(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	r := newRun(t, db)
	if _, err := db.Seal(ctx, r.ID, "x"); err != nil {
		t.Fatal(err)
	}
	appendEvent(t, db, r.ID, EvRunFinished, "", "", 0, RunFinished{Status: StatusSucceeded})
	if _, err := db.Seal(ctx, r.ID, "y"); !errors.Is(err, ErrShredded) {
		t.Errorf("Seal after the end: %v, want ErrShredded", err)
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM run_keys`).Scan(&n); err != nil || n != 0 {
		t.Errorf("run_keys rows: %d %v", n, err)
	}
}
