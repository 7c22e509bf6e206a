package state

import (
	"errors"
	"fmt"
)

// Sentinel errors. Their messages name the rule that was broken.
var (
	// ErrNotFound: no run has that id (or id prefix).
	ErrNotFound = errors.New("run not found")
	// ErrRunExists: CreateRun was given the id of an existing run.
	ErrRunExists = errors.New("a run with this id already exists")
	// ErrAmbiguous: an id prefix matches more than one run.
	ErrAmbiguous = errors.New("run id prefix matches more than one run")
	// ErrReadOnly: the database file or its directory is not writable.
	ErrReadOnly = errors.New("checkpoint database is read-only: file and directory must be writable")
	// ErrLocked: another process holds the SQLite write lock past the busy timeout.
	ErrLocked = errors.New("checkpoint database is locked by another process")
	// ErrCorrupt: the file is not a drbook SQLite database or is damaged.
	ErrCorrupt = errors.New("checkpoint database is corrupt or not a SQLite database")
	// ErrDiskFull: the disk holding the database is full.
	ErrDiskFull = errors.New("disk full: cannot write checkpoint")
	// ErrChainBroken: a run's event chain does not verify.
	ErrChainBroken = errors.New("event chain broken: record altered or incomplete")
	// ErrRunLocked: another runner holds the run's lock.
	ErrRunLocked = errors.New("run is locked by another runner")
	// ErrSealBroken: a sealed value cannot be opened with this database's key.
	ErrSealBroken = errors.New("sealed value cannot be opened with this key")
	// ErrShredded: the run's data key was deleted when the run ended for
	// good, so its sealed values can never be opened again.
	ErrShredded = errors.New("the run's sealed secrets were shredded when it ended")
	// ErrKeyMismatch: the key file beside the database is not the one its
	// secrets were sealed with.
	ErrKeyMismatch = errors.New("sealing key file does not belong to this checkpoint database")
	// ErrInvalidEvent: an event breaks a rule of the log (missing run id,
	// unknown type, payload not JSON).
	ErrInvalidEvent = errors.New("invalid event")
	// ErrNewerSchema: the database was written by a newer drbook.
	ErrNewerSchema = errors.New("checkpoint database schema is newer than this drbook")
)

// LockedError reports who holds a run lock. It unwraps to ErrRunLocked.
type LockedError struct {
	RunID string
	// Status is the run's recorded status when the lock was refused.
	Status Status
	Holder Holder
}

// Error implements error.
func (e *LockedError) Error() string {
	status := e.Status
	if status == "" {
		status = "unknown"
	}
	return fmt.Sprintf("run %s (%s) is locked by another runner: pid %d on host %s, user %s, since %s; wait for it to end or stop that process, then retry",
		e.RunID, status, e.Holder.PID, e.Holder.Host, e.Holder.User, e.Holder.Since.UTC().Format("2006-01-02T15:04:05Z"))
}

// Unwrap returns ErrRunLocked.
func (e *LockedError) Unwrap() error { return ErrRunLocked }
