package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashDurability kills a child process appending events with SIGKILL at
// a random moment: every event the child saw Append return for must be in
// the database after reopening, and the chain must verify.
func TestCrashDurability(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			db, path := openTest(t)
			r := newRun(t, db)
			db.Close()

			cmd, out := child(t, os.Args[0], "append", "DRBOOK_STATE_PATH="+path, "DRBOOK_STATE_RUN="+r.ID)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killAfter := 20 + mrand.IntN(200) // lines, bounded
			var reported []int64
			deadline := time.Now().Add(30 * time.Second)
			for len(reported) < killAfter && time.Now().Before(deadline) {
				line := readLineTimeout(t, out, 20*time.Second)
				seq, err := strconv.ParseInt(strings.TrimPrefix(line, "seq "), 10, 64)
				if err != nil {
					t.Fatalf("child said %q", line)
				}
				reported = append(reported, seq)
			}
			killChild(t, cmd)
			// Lines written before the kill but not read yet count too.
			for _, line := range strings.Split(drain(out), "\n") {
				if seq, err := strconv.ParseInt(strings.TrimPrefix(line, "seq "), 10, 64); err == nil && strings.HasPrefix(line, "seq ") {
					reported = append(reported, seq)
				}
			}
			if len(reported) < killAfter {
				t.Fatalf("child reported %d appends, want at least %d", len(reported), killAfter)
			}

			db2, err := Open(ctx, path)
			if err != nil {
				t.Fatalf("reopen after kill -9: %v", err)
			}
			defer db2.Close()
			rep, err := db2.Verify(ctx, r.ID)
			if err != nil || !rep.OK {
				t.Fatalf("Verify after kill -9 = %+v, %v", rep, err)
			}
			evs, err := db2.Events(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			have := map[int64]bool{}
			for _, ev := range evs {
				have[ev.Seq] = true
			}
			for _, seq := range reported {
				if !have[seq] {
					t.Fatalf("event %d was reported appended but is missing after kill -9 (have %d events)", seq, len(evs))
				}
			}
			// And the run continues where it stopped.
			next, err := appendE(db2, r.ID, EvNote, Note{Text: "after crash"})
			if err != nil || next.Seq != int64(len(evs))+1 {
				t.Fatalf("append after crash: seq %d, %v", next.Seq, err)
			}
			t.Logf("killed after %d reported appends; %d events on disk", len(reported), len(evs))
		})
	}
}

// TestLockAcrossProcesses: a child holds the run lock; Lock here fails
// naming its host and pid; after kill -9 of the child, Lock succeeds.
func TestLockAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	r := newRun(t, db)

	cmd, out := child(t, os.Args[0], "lock", "DRBOOK_STATE_PATH="+path, "DRBOOK_STATE_RUN="+r.ID)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killChild(t, cmd) })
	if line := readLineTimeout(t, out, 20*time.Second); line != "locked" {
		t.Fatalf("child: %q", line)
	}
	host, _ := os.Hostname()
	_, err := db.Lock(ctx, r.ID)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrRunLocked) {
		t.Fatalf("Lock while child holds it: %v, want *LockedError", err)
	}
	if le.Holder.PID != cmd.Process.Pid || le.Holder.Host != host {
		t.Fatalf("holder = %+v, want host %s pid %d", le.Holder, host, cmd.Process.Pid)
	}
	if msg := err.Error(); !strings.Contains(msg, "host "+host) || !strings.Contains(msg, fmt.Sprintf("pid %d", cmd.Process.Pid)) ||
		!strings.Contains(msg, "("+string(r.Status)+")") || le.Status != r.Status {
		t.Fatalf("error %q does not name the run's status (%s), host and pid", msg, r.Status)
	}
	killChild(t, cmd)
	release, err := db.Lock(ctx, r.ID)
	if err != nil {
		t.Fatalf("Lock after kill -9 of the holder: %v", err)
	}
	h, ok, err := db.LockHolder(ctx, r.ID)
	if err != nil || !ok || h.PID != os.Getpid() {
		t.Fatalf("LockHolder = %+v %v %v", h, ok, err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.LockHolder(ctx, r.ID); ok {
		t.Fatal("lock still held after release")
	}
}

func TestLockInProcess(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	r := newRun(t, db)
	lctx, cancel := context.WithCancel(ctx)
	release, err := db.Lock(lctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Lock(ctx, r.ID); !errors.Is(err, ErrRunLocked) {
		t.Fatalf("second Lock = %v, want ErrRunLocked", err)
	}
	cancel() // stops the heartbeat; the lock stays until release
	if _, err := db.Lock(ctx, r.ID); !errors.Is(err, ErrRunLocked) {
		t.Fatalf("Lock after ctx cancel = %v, want ErrRunLocked", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil { // idempotent
		t.Fatal(err)
	}
	rel2, err := db.Lock(ctx, r.ID)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	defer rel2()

	// Locks held from another host: fresh heartbeat blocks, old one is stale.
	raw := rawDB(t, path)
	r2 := newRun(t, db)
	tests := []struct {
		name  string
		age   time.Duration
		stale bool
	}{
		{"fresh heartbeat", 5 * time.Second, false},
		{"no heartbeat for 61s", LockStaleAfter + time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hb := formatTime(time.Now().Add(-tc.age))
			if _, err := raw.Exec(`INSERT OR REPLACE INTO run_locks (run_id, token, host, pid, user, since, heartbeat) VALUES (?, 't', 'other-host', 1, 'bob', ?, ?)`,
				r2.ID, hb, hb); err != nil {
				t.Fatal(err)
			}
			rel, err := db.Lock(ctx, r2.ID)
			if tc.stale {
				if err != nil {
					t.Fatalf("Lock over a stale remote lock: %v", err)
				}
				rel()
				return
			}
			var le *LockedError
			if !errors.As(err, &le) || le.Holder.Host != "other-host" || le.Holder.User != "bob" {
				t.Fatalf("Lock over a live remote lock: %v", err)
			}
		})
	}
	if _, err := db.Lock(ctx, "r-none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lock(unknown run) = %v", err)
	}
}

// TestReadOnly opens databases that cannot be written. Root bypasses file
// modes, so then the opener runs as a child process with uid/gid nobody.
func TestReadOnly(t *testing.T) {
	asRoot := os.Geteuid() == 0
	base, err := os.MkdirTemp("", "drbook-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
		os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := os.Args[0]
	if asRoot { // nobody must be able to run the test binary
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(base, "state.test")
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const nobody = 65534
	mkDB := func(t *testing.T, name string) string {
		t.Helper()
		p := filepath.Join(base, name, "drbook.db")
		db, err := Open(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		newRun(t, db)
		db.Close()
		if asRoot {
			for _, f := range []string{filepath.Dir(p), p, filepath.Join(filepath.Dir(p), KeyFileName)} {
				if err := os.Chown(f, nobody, nobody); err != nil {
					t.Fatal(err)
				}
			}
		}
		return p
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) string
	}{
		{"read-only file", func(t *testing.T) string {
			p := mkDB(t, "file")
			if err := os.Chmod(p, 0o400); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"read-only directory", func(t *testing.T) string {
			p := mkDB(t, "dir")
			if err := os.Chmod(filepath.Dir(p), 0o500); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"new file in read-only directory", func(t *testing.T) string {
			d := filepath.Join(base, "empty")
			if err := os.Mkdir(d, 0o500); err != nil {
				t.Fatal(err)
			}
			if asRoot {
				if err := os.Chown(d, nobody, nobody); err != nil {
					t.Fatal(err)
				}
			}
			return filepath.Join(d, "drbook.db")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.setup(t)
			cmd, out := child(t, bin, "open", "DRBOOK_STATE_PATH="+p)
			cmd.Dir = base
			if asRoot {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			res, _ := io.ReadAll(out)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v (%s)", err, res)
			}
			line := strings.TrimSpace(string(res))
			if !strings.HasPrefix(line, "readonly=true corrupt=false") || !strings.Contains(line, "read-only") {
				t.Fatalf("Open(%s) as an unprivileged user: %s; want ErrReadOnly", tc.name, line)
			}
			t.Log(line)
		})
	}
}
