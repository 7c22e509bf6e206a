package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
)

// DB is an open checkpoint store. It is safe for concurrent use.
type DB struct {
	sql  *sql.DB
	path string
	key  []byte
	// keyErr is set when the key file is not this database's (key_check
	// differs): sealing and unsealing fail with it.
	keyErr error
	// walDirty: a shred happened but the WAL could not be truncated yet.
	walDirty atomic.Bool
	host     string
	// lockHeartbeat is LockHeartbeat; tests shorten it.
	lockHeartbeat time.Duration

	stmtRunHead    *sql.Stmt
	stmtInsertEv   *sql.Stmt
	stmtUpdateHead *sql.Stmt

	// group defers the fsync of step.finished to the next checkpoint
	// (groupsync.go).
	group groupSync
}

// DefaultPath returns the default database path:
// $XDG_DATA_HOME/drbook/drbook.db, else ~/.local/share/drbook/drbook.db.
func DefaultPath() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "drbook", "drbook.db"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("default checkpoint path: %w", err)
	}
	return filepath.Join(home, ".local", "share", "drbook", "drbook.db"), nil
}

// KeyFileName is the name of the sealing key file, beside the database.
const KeyFileName = "drbook.key"

// Open opens (creating if needed) the checkpoint database at path. It creates
// the parent directory with mode 0700 and the database file with mode 0600
// (narrowing a wider mode), runs schema migrations, and loads or creates the
// sealing key file drbook.key in the same directory.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open checkpoint db: empty path")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open checkpoint db %s: path must not contain '?'", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint db: %w", err)
	}
	path = abs
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open checkpoint db: create dir %s: %w", dir, fileErr(err))
		}
		// Whatever the umask: 0700. An existing directory is left alone
		// (it may be shared, like /tmp).
		// #nosec G302 -- a directory: 0700 is owner-only
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open checkpoint db: %w", fileErr(err))
		}
	}
	if err := prepareFile(path); err != nil {
		return nil, fmt.Errorf("open checkpoint db %s: %w", path, err)
	}
	if err := checkWritable(path); err != nil {
		return nil, fmt.Errorf("open checkpoint db %s: %w", path, err)
	}

	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "5000")
	q.Set("_txlock", "immediate")
	q.Set("_foreign_keys", "on")
	// Keep the statements of the write path prepared (the projections of
	// step.started and step.finished run per step): a prepare costs about
	// as much as the row it writes.
	q.Set("_stmt_cache_size", "32")
	// Deleted content (shredded run keys, blanked secrets) is overwritten
	// with zeros, not left in free pages.
	q.Set("_secure_delete", "on")
	sdb, err := sql.Open("sqlite3", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open checkpoint db %s: %w", path, mapErr(err))
	}
	// One connection: SQLite has one writer anyway, and it keeps prepared
	// statements and the in-process ordering of appends simple.
	sdb.SetMaxOpenConns(1)
	sdb.SetMaxIdleConns(1)
	sdb.SetConnMaxLifetime(0)
	sdb.SetConnMaxIdleTime(0)

	db := &DB{sql: sdb, path: path, lockHeartbeat: LockHeartbeat}
	if err := db.init(ctx); err != nil {
		_ = sdb.Close()
		return nil, fmt.Errorf("open checkpoint db %s: %w", path, err)
	}
	keyPath := filepath.Join(dir, KeyFileName)
	key, err := loadOrCreateKey(keyPath)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open checkpoint db %s: %w", path, err)
	}
	db.key = key
	if err := db.migrateSeals(ctx, keyPath); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open checkpoint db %s: %w", path, err)
	}
	if err := db.settleKey(ctx, keyPath); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open checkpoint db %s: %w", path, err)
	}
	db.host, _ = os.Hostname()
	return db, nil
}

// Path returns the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// Close closes the database. A WAL that a shred could not truncate (readers
// were busy) is truncated now.
func (db *DB) Close() error {
	db.group.flush(db.path + "-wal")
	if db.walDirty.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		db.truncateWAL(ctx)
		cancel()
	}
	for _, s := range []*sql.Stmt{db.stmtRunHead, db.stmtInsertEv, db.stmtUpdateHead} {
		if s != nil {
			_ = s.Close()
		}
	}
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("close checkpoint db: %w", mapErr(err))
	}
	return nil
}

// prepareFile creates the database file with mode 0600 if it does not exist,
// whatever the umask, and narrows the mode of an existing file (and of its
// -wal and -shm files) to 0600.
func prepareFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- the operator's checkpoint database path (--db)
	if err != nil {
		return fileErr(err)
	}
	defer f.Close()
	if err := narrowMode(f.Name(), f); err != nil {
		return err
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if err := narrowPath(path + sfx); err != nil {
			return err
		}
	}
	return nil
}

func narrowMode(name string, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(st.Mode().Perm() &^ 0o077); err != nil {
			return fmt.Errorf("narrow mode of %s: %w", name, fileErr(err))
		}
	}
	return nil
}

func narrowPath(name string) error {
	st, err := os.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(name, st.Mode().Perm()&^0o077); err != nil {
			return fmt.Errorf("narrow mode of %s: %w", name, fileErr(err))
		}
	}
	return nil
}

// checkWritable fails with ErrReadOnly when the directory (needed for the
// -wal and -shm files and the key) is not writable.
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	if err := syscall.Access(dir, 0x2 /* W_OK */); err != nil {
		return fmt.Errorf("%w: directory %s: %v", ErrReadOnly, dir, err)
	}
	return nil
}

// fileErr maps an OS error to a sentinel where one fits.
func fileErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

// mapErr maps a SQLite driver error to a sentinel (wrapping both) so callers
// see a clear rule instead of raw driver text.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case sqlite3.ErrReadonly, sqlite3.ErrPerm:
		return fmt.Errorf("%w (%w)", ErrReadOnly, err)
	case sqlite3.ErrCantOpen:
		return fmt.Errorf("%w: cannot open file (%w)", ErrReadOnly, err)
	case sqlite3.ErrBusy, sqlite3.ErrLocked:
		return fmt.Errorf("%w (%w)", ErrLocked, err)
	case sqlite3.ErrCorrupt, sqlite3.ErrNotADB:
		return fmt.Errorf("%w (%w)", ErrCorrupt, err)
	case sqlite3.ErrFull:
		return fmt.Errorf("%w (%w)", ErrDiskFull, err)
	case sqlite3.ErrIoErr:
		if errors.Is(se.SystemErrno, syscall.ENOSPC) || errors.Is(se.SystemErrno, syscall.EDQUOT) {
			return fmt.Errorf("%w (%w)", ErrDiskFull, err)
		}
		if errors.Is(se.SystemErrno, syscall.EROFS) || errors.Is(se.SystemErrno, syscall.EACCES) || errors.Is(se.SystemErrno, syscall.EPERM) {
			return fmt.Errorf("%w (%w)", ErrReadOnly, err)
		}
	}
	return err
}

// tx runs fn in one immediate transaction, rolling back on error.
func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	t, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	if err := fn(t); err != nil {
		_ = t.Rollback()
		return mapErr(err)
	}
	if err := t.Commit(); err != nil {
		return mapErr(err)
	}
	return nil
}
