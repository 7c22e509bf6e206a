package state

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"os"
	"sync"
	"time"
)

// Group sync: a step's finished checkpoint shares the fsync of the next
// checkpoint instead of paying its own.
//
// Every step execution writes two checkpoints, step.started before the
// command runs and step.finished after. With synchronous=FULL each commit
// fsyncs the WAL, and the fsync is most of a checkpoint's cost. A
// step.finished (and a periodic step.output) is committed with
// synchronous=NORMAL instead: it is in the WAL, so a crash of drbook loses
// nothing, but it is not forced to the disk at once. The next checkpoint
// committed with FULL (the next step.started, a decision, run.finished…)
// fsyncs the WAL file and with it every frame before it; if none comes
// within deferredSyncMax, a timer fsyncs the WAL file itself. So:
//   - step.started is on disk before the command runs, as always (resume
//     relies on it);
//   - step.finished is on disk before the next step starts, and at most
//     deferredSyncMax after Append returned; only a power loss or kernel
//     crash inside that window can lose it, and resume then treats the
//     execution as interrupted (decided by check: or idempotency, like a
//     crash while it ran).
//
// SQLite refuses to change the safety level inside a transaction, so the
// deferred commit holds the pool's only connection for PRAGMA, transaction
// and PRAGMA back to FULL: no other commit can run in NORMAL mode.

// deferredSyncMax bounds how long a deferred commit waits for its fsync.
const deferredSyncMax = 20 * time.Millisecond

// deferrable reports whether events of type t may share the next fsync.
func deferrable(t EventType) bool { return t == EvStepFinished || t == EvStepOutput }

// groupSync tracks whether the WAL holds commits not yet fsynced.
type groupSync struct {
	mu    sync.Mutex
	dirty bool
	// gen counts deferred commits: a FULL commit clears dirty only if no
	// deferred commit came after the moment it began (see snapshot).
	gen   uint64
	timer *time.Timer
	// syncs counts WAL fsyncs made by the timer or Close (tests).
	syncs int
}

// snapshot is taken before a FULL commit starts; synced is given it after.
func (g *groupSync) snapshot() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen
}

// synced records that a FULL commit, begun at snapshot gen, fsynced the
// WAL: the deferred commits before it are on disk. One that came after it
// began stays dirty (its fsync is the timer's).
func (g *groupSync) synced(gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen != gen {
		return
	}
	g.dirty = false
	if g.timer != nil {
		g.timer.Stop()
	}
}

// deferred records a NORMAL commit and arms the timer that fsyncs walPath.
func (g *groupSync) deferred(walPath string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dirty = true
	g.gen++
	if g.timer == nil {
		g.timer = time.AfterFunc(deferredSyncMax, func() { g.flush(walPath) })
		return
	}
	g.timer.Reset(deferredSyncMax)
}

// flush fsyncs walPath if a deferred commit is not yet on disk. fsync
// writes back the file's data whichever descriptor it is called on.
func (g *groupSync) flush(walPath string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.dirty {
		return
	}
	f, err := os.Open(walPath) // #nosec G304 -- the database's own WAL file
	if err != nil {
		return // no WAL any more: it was checkpointed into the database
	}
	if f.Sync() == nil {
		g.dirty = false
		g.syncs++
	}
	_ = f.Close()
}

// appendTx runs fn in one immediate transaction on a connection taken with
// ctx (waiting for it ends with ctx); with deferred, the commit is made with
// synchronous=NORMAL, on the connection held for PRAGMA, transaction and
// PRAGMA back to FULL (see above), and recorded for the group sync.
//
// Once the connection is held, BEGIN, fn's statements (given sctx) and
// COMMIT run with a context that cannot be cancelled: the transaction is
// immediate, so they wait for nothing but SQLite's busy timeout, and an
// append, once begun, runs to its end. go-sqlite3 runs every statement
// given a cancellable context in a goroutine of its own and waits for it
// (so that it can interrupt it): five goroutine hand-offs per append, most
// of an append's time on an otherwise idle process.
func (db *DB) appendTx(ctx context.Context, deferred bool, fn func(sctx context.Context, t *sql.Tx) error) error {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Close()
	sctx := context.WithoutCancel(ctx)
	if deferred {
		restore := func() {
			if _, err := conn.ExecContext(sctx, `PRAGMA synchronous = FULL`); err != nil {
				// Never hand a connection in NORMAL mode back to the pool.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
		if _, err := conn.ExecContext(sctx, `PRAGMA synchronous = NORMAL`); err != nil {
			restore()
			return mapErr(err)
		}
		defer restore()
	}
	t, err := conn.BeginTx(sctx, nil)
	if err != nil {
		return mapErr(err)
	}
	if err := fn(sctx, t); err != nil {
		_ = t.Rollback()
		return mapErr(err)
	}
	if err := t.Commit(); err != nil {
		return mapErr(err)
	}
	if deferred {
		db.group.deferred(db.path + "-wal")
	}
	return nil
}
