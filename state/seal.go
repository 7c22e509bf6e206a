package state

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Sealed string formats. Both are "sealed:vN:" + base64(nonce|ciphertext),
// AES-256-GCM with a random 96-bit nonce:
//
//   - sealed:v2: is sealed with the run's data key (see DB.Seal), with the
//     additional data "drbook/state/seal/v2\n" + run id, so a value of one
//     run never opens as a value of another;
//   - sealed:v1: was sealed by drbook before per-run keys, directly with the
//     key file's key. When the database was migrated, those of runs that
//     could still resume were re-sealed with the run's key (legacy_seals,
//     looked up by the SHA-256 of the v1 string); the key file was replaced,
//     so the others open no more.
const (
	// SealedPrefix is the common prefix of every sealed string, whatever
	// its version.
	SealedPrefix = "sealed:v"
	sealedV1     = "sealed:v1:"
	sealedV2     = "sealed:v2:"
)

// sealKeySize is the size of the AES-256 keys (key file and run keys).
const sealKeySize = 32

// Additional data of the formats.
const (
	sealAAD       = "drbook/state/seal/v1"
	sealV2AAD     = "drbook/state/seal/v2\n"
	runKeyAAD     = "drbook/state/run-key/v1\n"
	keyCheckLabel = "drbook/state/key-check/v1"
)

// IsSealed reports whether s is a sealed string (any version).
func IsSealed(s string) bool {
	return strings.HasPrefix(s, sealedV1) || strings.HasPrefix(s, sealedV2)
}

// Seal encrypts plain for run runID and returns "sealed:v2:" +
// base64(nonce|ciphertext). The run's data key is created (random, wrapped
// by the key file's key, stored in run_keys) at its first secret; it is
// deleted when the run ends for good (Status.EndsRun), which makes every
// value sealed for the run unrecoverable. Sealing for a run that already
// ended fails with ErrShredded. Store secrets only in this form.
func (db *DB) Seal(ctx context.Context, runID, plain string) (string, error) {
	key, err := db.runKey(ctx, runID, true)
	if err != nil {
		return "", fmt.Errorf("seal for run %s: %w", runID, err)
	}
	out, err := gcmSeal(key, []byte(plain), []byte(sealV2AAD+runID))
	if err != nil {
		return "", fmt.Errorf("seal for run %s: %w", runID, err)
	}
	return sealedV2 + base64.StdEncoding.EncodeToString(out), nil
}

// Unseal decrypts a string sealed for run runID. A value whose run key was
// shredded fails with ErrShredded (which is also ErrSealBroken); any other
// failure is ErrSealBroken.
func (db *DB) Unseal(ctx context.Context, runID, s string) (string, error) {
	var enc, aad string
	switch {
	case strings.HasPrefix(s, sealedV2):
		enc, aad = strings.TrimPrefix(s, sealedV2), sealV2AAD+runID
	case strings.HasPrefix(s, sealedV1):
		return db.unsealLegacy(ctx, runID, s)
	default:
		return "", fmt.Errorf("%w: not a sealed string", ErrSealBroken)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("%w: bad encoding", ErrSealBroken)
	}
	key, err := db.runKey(ctx, runID, false)
	if err != nil {
		return "", fmt.Errorf("unseal for run %s: %w", runID, err)
	}
	plain, err := gcmOpen(key, raw, []byte(aad))
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

// unsealLegacy opens a sealed:v1: value through its re-sealed copy.
func (db *DB) unsealLegacy(ctx context.Context, runID, s string) (string, error) {
	var resealed string
	err := db.sql.QueryRowContext(ctx, `SELECT resealed FROM legacy_seals WHERE run_id = ? AND digest = ?`, runID, legacyDigest(s)).Scan(&resealed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("unseal for run %s: %w (%w): a sealed:v1: value without its re-sealed copy", runID, ErrShredded, ErrSealBroken)
	}
	if err != nil {
		return "", fmt.Errorf("unseal for run %s: %w", runID, mapErr(err))
	}
	if !strings.HasPrefix(resealed, sealedV2) {
		return "", fmt.Errorf("%w: the legacy copy is not a v2 sealed value", ErrSealBroken)
	}
	return db.Unseal(ctx, runID, resealed)
}

func legacyDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// runKey returns run runID's data key, unwrapped. With create, a run with
// no key yet gets one; a run that ended for good never does.
func (db *DB) runKey(ctx context.Context, runID string, create bool) ([]byte, error) {
	if db.keyErr != nil {
		return nil, db.keyErr
	}
	var wrapped []byte
	err := db.sql.QueryRowContext(ctx, `SELECT wrapped FROM run_keys WHERE run_id = ?`, runID).Scan(&wrapped)
	switch {
	case err == nil:
		return db.unwrapRunKey(runID, wrapped)
	case !errors.Is(err, sql.ErrNoRows):
		return nil, mapErr(err)
	case !create:
		return nil, fmt.Errorf("%w (%w): run %s holds no key", ErrShredded, ErrSealBroken, runID)
	}
	err = db.tx(ctx, func(t *sql.Tx) error {
		var status string
		if err := t.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = ?`, runID).Scan(&status); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("run %s: %w", runID, ErrNotFound)
			}
			return err
		}
		if Status(status).EndsRun() {
			return fmt.Errorf("%w: run %s is %s", ErrShredded, runID, status)
		}
		if err := t.QueryRowContext(ctx, `SELECT wrapped FROM run_keys WHERE run_id = ?`, runID).Scan(&wrapped); err == nil {
			return nil // made meanwhile
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		dek := make([]byte, sealKeySize)
		if _, err := rand.Read(dek); err != nil {
			return err
		}
		w, err := gcmSeal(db.key, dek, []byte(runKeyAAD+runID))
		clear(dek)
		if err != nil {
			return err
		}
		wrapped = w
		_, err = t.ExecContext(ctx, `INSERT INTO run_keys (run_id, wrapped, legacy, created_at) VALUES (?, ?, 0, ?)`,
			runID, w, formatTime(time.Now()))
		return err
	})
	if err != nil {
		return nil, err
	}
	return db.unwrapRunKey(runID, wrapped)
}

func (db *DB) unwrapRunKey(runID string, wrapped []byte) ([]byte, error) {
	dek, err := gcmOpen(db.key, wrapped, []byte(runKeyAAD+runID))
	if err != nil {
		return nil, fmt.Errorf("run key of %s: %w", runID, err)
	}
	if len(dek) != sealKeySize {
		return nil, fmt.Errorf("run key of %s: %w: wrong size", runID, ErrSealBroken)
	}
	return dek, nil
}

// gcmSeal returns nonce|ciphertext of plain under key.
func gcmSeal(key, plain, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, aad), nil // #nosec G407 -- the nonce is fresh random bytes read just above
}

// gcmOpen opens nonce|ciphertext; every failure is ErrSealBroken.
func gcmOpen(key, raw, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrSealBroken)
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrSealBroken)
	}
	return plain, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != sealKeySize {
		return nil, fmt.Errorf("%w: no sealing key", ErrSealBroken)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return cipher.NewGCM(block)
}

// keyCheck identifies a key file's key without revealing it (an HMAC of a
// fixed label), so a database notices a key file that is not its own.
func keyCheck(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(keyCheckLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// loadOrCreateKey reads the 32-byte key at path, creating it (mode 0600,
// atomically: temp file + hard link, so concurrent openers agree) if absent.
// A key file with a wider mode is narrowed to 0600.
func loadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, sealKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	tmp, err := writeTempKey(filepath.Dir(path), key)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path) // another process won the race
		}
		return nil, fmt.Errorf("sealing key: %w", fileErr(err))
	}
	syncDir(filepath.Dir(path))
	return key, nil
}

// writeTempKey writes key to a new 0600 file in dir, synced, and returns its
// name.
func writeTempKey(dir string, key []byte) (string, error) {
	tmp, err := os.CreateTemp(dir, ".drbook.key.*")
	if err != nil {
		return "", fmt.Errorf("sealing key: %w", fileErr(err))
	}
	fail := func(err error) (string, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("sealing key: %w", fileErr(err))
	}
	// CreateTemp uses 0600; chmod anyway in case of an odd umask.
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(key); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("sealing key: %w", fileErr(err))
	}
	return tmp.Name(), nil
}

func syncDir(dir string) {
	d, err := os.Open(dir) // #nosec G304 -- the database's own directory
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}

func readKey(path string) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the sealing key file beside the operator's database
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("sealing key %s: %w", path, fileErr(err))
	}
	defer f.Close()
	if err := narrowMode(path, f); err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	key := make([]byte, sealKeySize+1)
	n, _ := f.Read(key)
	if n != sealKeySize {
		return nil, fmt.Errorf("sealing key %s: want %d bytes, have %d: %w", path, sealKeySize, n, ErrCorrupt)
	}
	return key[:sealKeySize], nil
}
