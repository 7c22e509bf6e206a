package state

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv selects the child-process role of the test binary.
const helperEnv = "DRBOOK_STATE_HELPER"

func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "drbook.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func newRun(t testing.TB, db *DB) Run {
	t.Helper()
	r := Run{
		RunbookName: "total-cluster-recovery", RunbookTitle: "Rebuild the key store",
		RunbookPath: "library:total-cluster-recovery", RunbookSHA256: strings.Repeat("ab", 32),
		RunbookSource: []byte("apiVersion: drbook/v1\n"), Mode: ModeHeadless,
		Labels: map[string]string{"ticket": "INC-1"},
	}
	if err := db.CreateRun(context.Background(), &r); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	return r
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appendEvent appends one event with payload p.
func appendEvent(t testing.TB, db *DB, runID string, typ EventType, step, target string, attempt int, p any) Event {
	t.Helper()
	ev, err := db.Append(context.Background(), Event{RunID: runID, Type: typ, StepID: step, Target: target, Attempt: attempt, Data: mustJSON(t, p)})
	if err != nil {
		t.Fatalf("Append %s: %v", typ, err)
	}
	return ev
}

// child starts the test binary itself in role mode with env extra.
func child(t *testing.T, bin, mode string, extra ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewReader(out)
}

// readLineTimeout reads one line from r or fails after d.
func readLineTimeout(t *testing.T, r *bufio.Reader, d time.Duration) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := r.ReadString('\n')
		ch <- s
	}()
	select {
	case s := <-ch:
		return strings.TrimSpace(s)
	case <-time.After(d):
		t.Fatalf("no line from child within %v", d)
		return ""
	}
}

// TestHelperProcess is not a test: it is the child process of the
// multi-process tests, selected by DRBOOK_STATE_HELPER.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // run as a normal test: nothing to do
	}
	ctx := context.Background()
	path := os.Getenv("DRBOOK_STATE_PATH")
	switch mode {
	case "append":
		db, err := Open(ctx, path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child open:", err)
			os.Exit(3)
		}
		runID := os.Getenv("DRBOOK_STATE_RUN")
		for i := 0; i < 5000; i++ { // bounded; the parent kills us long before
			data, _ := json.Marshal(StepFinished{Status: StatusSucceeded, Log: strings.Repeat("x", i%300), DurationMS: int64(i)})
			ev, err := db.Append(ctx, Event{RunID: runID, Type: EvStepFinished, StepID: "s" + strconv.Itoa(i), Target: "n1", Data: data})
			if err != nil {
				fmt.Fprintln(os.Stderr, "child append:", err)
				os.Exit(4)
			}
			fmt.Fprintf(os.Stdout, "seq %d\n", ev.Seq)
		}
		os.Exit(0)
	case "lock":
		db, err := Open(ctx, path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child open:", err)
			os.Exit(3)
		}
		if _, err := db.Lock(ctx, os.Getenv("DRBOOK_STATE_RUN")); err != nil {
			fmt.Fprintln(os.Stdout, "error", err)
			os.Exit(5)
		}
		fmt.Fprintln(os.Stdout, "locked")
		// Hold the lock until killed (bounded: a forgotten child ends).
		<-time.After(60 * time.Second)
		os.Exit(0)
	case "open":
		db, err := Open(ctx, path)
		if err == nil {
			db.Close()
			fmt.Fprintln(os.Stdout, "ok")
			os.Exit(0)
		}
		fmt.Fprintf(os.Stdout, "readonly=%v corrupt=%v %v\n", errors.Is(err, ErrReadOnly), errors.Is(err, ErrCorrupt), err)
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	os.Exit(2)
}

// killChild kills cmd with SIGKILL and reaps it (a zombie would still
// answer kill(pid, 0)).
func killChild(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
}

// drain reads the rest of r.
func drain(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}
