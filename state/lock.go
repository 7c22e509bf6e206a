package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Run lock timing.
const (
	// LockHeartbeat is how often a holder refreshes its lock.
	LockHeartbeat = 10 * time.Second
	// LockStaleAfter is how long a lock held from another host may go
	// without heartbeat before it is taken over.
	LockStaleAfter = 60 * time.Second
)

type lockRow struct {
	token, host, procStart, user, since, heartbeat string
	pid                                            int
}

// Lock takes run runID's lock, so that one runner drives a run at a time.
// It fails with a *LockedError (unwrapping to ErrRunLocked) naming the
// holder's host and pid. A lock whose holder is on this host and whose
// process no longer exists (or whose pid now belongs to another process) is
// stale and taken over, so a runner killed with SIGKILL never blocks resume;
// a lock held from another host is stale after LockStaleAfter without
// heartbeat. Until release is called (or ctx is done), a goroutine refreshes
// the heartbeat every LockHeartbeat. release is idempotent and removes the
// lock.
func (db *DB) Lock(ctx context.Context, runID string) (release func() error, err error) {
	if err := db.mustExist(ctx, runID); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("lock run %s: %w", runID, err)
	}
	me := lockRow{
		token: hex.EncodeToString(tok[:]), host: db.host, pid: os.Getpid(),
		procStart: procStart(os.Getpid()), user: currentUser(),
	}
	var locked *LockedError
	err = db.tx(ctx, func(t *sql.Tx) error {
		now := time.Now().UTC()
		me.since, me.heartbeat = formatTime(now), formatTime(now)
		var cur lockRow
		err := t.QueryRowContext(ctx, `SELECT token, host, pid, proc_start, user, since, heartbeat FROM run_locks WHERE run_id = ?`, runID).
			Scan(&cur.token, &cur.host, &cur.pid, &cur.procStart, &cur.user, &cur.since, &cur.heartbeat)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if !db.lockStale(cur, now) {
				since, _ := parseTime(cur.since)
				var status string
				_ = t.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = ?`, runID).Scan(&status)
				locked = &LockedError{RunID: runID, Status: Status(status), Holder: Holder{Host: cur.host, PID: cur.pid, User: cur.user, Since: since}}
				return locked
			}
		}
		_, err = t.ExecContext(ctx, `INSERT INTO run_locks (run_id, token, host, pid, proc_start, user, since, heartbeat)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id) DO UPDATE SET token = excluded.token, host = excluded.host, pid = excluded.pid,
			proc_start = excluded.proc_start, user = excluded.user, since = excluded.since, heartbeat = excluded.heartbeat`,
			runID, me.token, me.host, me.pid, me.procStart, me.user, me.since, me.heartbeat)
		return err
	})
	if locked != nil {
		return nil, locked
	}
	if err != nil {
		return nil, fmt.Errorf("lock run %s: %w", runID, err)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(db.lockHeartbeat)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-stop:
				return
			case <-tick.C:
				// A failed heartbeat is retried at the next tick; a lock
				// taken over by another runner stays theirs.
				_, _ = db.sql.ExecContext(ctx, `UPDATE run_locks SET heartbeat = ? WHERE run_id = ? AND token = ?`,
					formatTime(time.Now()), runID, me.token)
			}
		}
	}()
	var once sync.Once
	var relErr error
	release = func() error {
		once.Do(func() {
			close(stop)
			<-done
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := db.sql.ExecContext(rctx, `DELETE FROM run_locks WHERE run_id = ? AND token = ?`, runID, me.token); err != nil {
				relErr = fmt.Errorf("release lock of run %s: %w", runID, mapErr(err))
			}
		})
		return relErr
	}
	return release, nil
}

// LockHolder returns the current holder of run runID's lock, if any (stale
// or not).
func (db *DB) LockHolder(ctx context.Context, runID string) (Holder, bool, error) {
	var h Holder
	var since string
	err := db.sql.QueryRowContext(ctx, `SELECT host, pid, user, since FROM run_locks WHERE run_id = ?`, runID).Scan(&h.Host, &h.PID, &h.User, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("lock holder of run %s: %w", runID, mapErr(err))
	}
	h.Since, _ = parseTime(since)
	return h, true, nil
}

// lockStale decides whether the recorded holder cur may be displaced.
func (db *DB) lockStale(cur lockRow, now time.Time) bool {
	if cur.host == db.host {
		if cur.pid <= 0 {
			return true
		}
		if err := syscall.Kill(cur.pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		// The pid exists; if it was reused by another process since the
		// lock was taken, its start time differs.
		if cur.procStart != "" {
			if ps := procStart(cur.pid); ps != "" && ps != cur.procStart {
				return true
			}
		}
		return false
	}
	hb, err := parseTime(cur.heartbeat)
	if err != nil {
		return true
	}
	return now.Sub(hb) > LockStaleAfter
}

// procStart returns the start time (clock ticks since boot) of process pid
// from /proc, or "" where unavailable.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	// Fields after the command: state is field 3 of the line, starttime 22.
	if len(f) < 20 {
		return ""
	}
	return f[19]
}
