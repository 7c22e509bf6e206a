package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestLockHeartbeat: the holder refreshes the heartbeat until release, and
// release stops the goroutine.
func TestLockHeartbeat(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	db.lockHeartbeat = 20 * time.Millisecond
	r := newRun(t, db)
	before := runtime.NumGoroutine()
	release, err := db.Lock(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	heartbeat := func() string {
		var hb string
		if err := db.sql.QueryRowContext(ctx, `SELECT heartbeat FROM run_locks WHERE run_id = ?`, r.ID).Scan(&hb); err != nil {
			t.Fatal(err)
		}
		return hb
	}
	first := heartbeat()
	if !eventually(5*time.Second, func() bool { return heartbeat() != first }) {
		t.Fatal("heartbeat not refreshed within 5s at a 20ms interval")
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if !eventually(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		t.Fatalf("goroutines: %d before Lock, %d after release", before, runtime.NumGoroutine())
	}
}

// eventually polls cond every 5ms until it holds or d has passed.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// TestConcurrentAppends: appends from many goroutines form one valid chain.
func TestConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	r := newRun(t, db)
	// A second handle on the same file, as a second process would have.
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := db
			if w%2 == 1 {
				d = db2
			}
			for i := 0; i < each; i++ {
				if _, err := appendE(d, r.ID, EvNote, Note{Text: fmt.Sprintf("w%d i%d", w, i)}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rep, err := db.Verify(ctx, r.ID)
	if err != nil || rep.Events != 1+workers*each {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func TestAppendCanceledContext(t *testing.T) {
	db, _ := openTest(t)
	r := newRun(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Append(ctx, Event{RunID: r.ID, Type: EvNote}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(canceled) = %v", err)
	}
	if rep, err := db.Verify(context.Background(), r.ID); err != nil || rep.Events != 1 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// TestWriterLocked: another connection holding the write lock past the busy
// timeout gives ErrLocked, not raw driver text.
func TestWriterLocked(t *testing.T) {
	db, path := openTest(t)
	r := newRun(t, db)
	raw := rawDB(t, path)
	conn, err := raw.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), `ROLLBACK`)
	start := time.Now()
	_, err = appendE(db, r.ID, EvNote, Note{Text: "blocked"})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Append while another writer holds the lock = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d < 4*time.Second {
		t.Fatalf("gave up after %v, want the 5s busy timeout", d)
	}
}

// TestDiskFull fills a small tmpfs: Append fails with ErrDiskFull and the
// chain stays valid. Mounting needs root (CI runs as root).
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=512k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	db, err := Open(ctx, filepath.Join(dir, "drbook.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := newRun(t, db)
	big := strings.Repeat("log line of a chatty step\n", 2000) // ~52 KB
	var appended int
	for i := 0; i < 100; i++ { // bounded: 100 × 52 KB is far beyond 512 KB
		_, err = appendE(db, r.ID, EvNote, Note{Text: big})
		if err != nil {
			break
		}
		appended++
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("after %d appends: %v, want ErrDiskFull", appended, err)
	}
	t.Logf("disk full after %d appends: %v", appended, err)
	rep, err := db.Verify(ctx, r.ID)
	if err != nil || rep.Events != 1+appended {
		t.Fatalf("Verify after disk full = %+v, %v (appended %d)", rep, err, appended)
	}
}

// TestLockSameHostHolders: a live local pid holds; a pid whose process
// start time differs from the recorded one (pid reused) is stale.
func TestLockSameHostHolders(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	r := newRun(t, db)
	raw := rawDB(t, path)
	host, _ := os.Hostname()
	tests := []struct {
		name      string
		pid       int
		procStart string
		stale     bool
	}{
		{"live pid 1", 1, "", false},
		{"live pid, same start", os.Getppid(), procStart(os.Getppid()), false},
		{"pid reused (start differs)", os.Getppid(), "1", true},
		{"pid gone", 1 << 22, "", true}, // above pid_max: no such process
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := formatTime(time.Now())
			if _, err := raw.Exec(`INSERT OR REPLACE INTO run_locks (run_id, token, host, pid, proc_start, user, since, heartbeat) VALUES (?, 't', ?, ?, ?, 'op', ?, ?)`,
				r.ID, host, tc.pid, tc.procStart, now, now); err != nil {
				t.Fatal(err)
			}
			rel, err := db.Lock(ctx, r.ID)
			if tc.stale {
				if err != nil {
					t.Fatalf("Lock over a stale local holder: %v", err)
				}
				if err := rel(); err != nil {
					t.Fatal(err)
				}
				return
			}
			var le *LockedError
			if !errors.As(err, &le) || le.Holder.PID != tc.pid {
				t.Fatalf("Lock over a live local holder = %v", err)
			}
		})
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	db, path := openTest(t)
	db.Close()
	raw := rawDB(t, path)
	if _, err := raw.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := Open(context.Background(), path); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open(schema 99) = %v, want ErrNewerSchema", err)
	}
}
