package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// finishedOf returns the decoded step.finished payload and the exec of step
// id in run runID.
func finishedOf(t *testing.T, db *state.DB, runID, id string) (state.StepFinished, state.Exec) {
	t.Helper()
	ctx := context.Background()
	evs, err := db.Events(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	var fin state.StepFinished
	found := false
	for _, ev := range evs {
		if ev.Type == state.EvStepFinished && ev.StepID == id {
			if err := ev.Decode(&fin); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("no step.finished for %s", id)
	}
	execs, err := db.Execs(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range execs {
		if x.StepID == id {
			return fin, x
		}
	}
	t.Fatalf("no exec for %s", id)
	return fin, state.Exec{}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestOutputLogKeepsRawBytes: the record's log is the node's bytes exactly
// (invalid UTF-8, NUL, CR, escape sequences, an unterminated last line), and
// its SHA-256 matches both the event's log and the execs projection.
func TestOutputLogKeepsRawBytes(t *testing.T) {
	f := newFixture(t, 1)
	rnd := rand.New(rand.NewPCG(11, 29))
	bin := make([]byte, 256<<10)
	for i := range bin {
		bin[i] = byte(rnd.Uint32())
	}
	fixed := []byte("plain\r\nnul\x00byte \xff\xfe\xc3(\n\x1b]0;title\x07\x1b]52;c;cm0gLXJm\x07\x1b[2J\x1b[1A\r  ✓ ok\n")
	want := append(append([]byte{}, fixed...), bin...) // ends without a newline
	file := filepath.Join(f.dir, "out.bin")
	if err := os.WriteFile(file, want, 0o600); err != nil {
		t.Fatal(err)
	}
	src := header + fmt.Sprintf("steps:\n  - id: bin\n    run: shell\n    on: node1\n    with: {command: 'cat %s'}\n", file)
	out, err := engine.Start(context.Background(), f.config(t, src, nil), map[string]runbooks.Value{})
	if err != nil {
		t.Fatal(err)
	}
	fin, x := finishedOf(t, f.db, out.RunID, "bin")
	got := fin.LogBytes()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("recorded log differs from the node's bytes at offset %d (len %d, want %d)", i, len(got), len(want))
	}
	if fin.LogSHA256 != sha(want) || fin.LogRaw == nil || fin.LogCutBytes != 0 {
		t.Errorf("log_sha256 %s, want %s; raw kept %v; cut %d", fin.LogSHA256, sha(want), fin.LogRaw != nil, fin.LogCutBytes)
	}
	if x.Log != string(want) {
		t.Errorf("execs.log is not the raw log (len %d, want %d)", len(x.Log), len(want))
	}
	if rep, err := f.db.Verify(context.Background(), out.RunID); err != nil || !rep.OK {
		t.Errorf("verify: %+v %v", rep, err)
	}
}

// TestOutputLogStderrAndUnterminated: stderr lines carry "! ", and two
// unterminated last lines are kept apart by one newline.
func TestOutputLogStderrAndUnterminated(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `steps:
  - id: s
    run: shell
    on: node1
    with: {command: 'printf "out\r\n"; sleep 0.4; printf "err\n" >&2; sleep 0.4; printf "last-out"; sleep 0.4; printf "last-err" >&2'}
`
	out, err := engine.Start(context.Background(), f.config(t, src, nil), map[string]runbooks.Value{})
	if err != nil {
		t.Fatal(err)
	}
	fin, _ := finishedOf(t, f.db, out.RunID, "s")
	if want := "out\r\n! err\nlast-out\n! last-err"; fin.Log != want || fin.LogSHA256 != sha([]byte(want)) || fin.LogRaw != nil {
		t.Errorf("log %q (raw %v), want %q", fin.Log, fin.LogRaw != nil, want)
	}
	if !strings.Contains(f.rec.lines(), "s/node1: out\n") {
		t.Errorf("live line keeps its CR:\n%q", f.rec.lines())
	}
}

// TestOverlongLineKeepsFirstBytes: a 5 MiB line is recorded by its first
// bytes up to the cap, and the record says how many bytes were cut.
func TestOverlongLineKeepsFirstBytes(t *testing.T) {
	f := newFixture(t, 1)
	const total = 5 << 20
	src := header + fmt.Sprintf(`steps:
  - id: big
    run: shell
    on: node1
    with: {command: 'echo first; head -c %d /dev/zero | tr "\0" x; echo; echo after'}
`, total)
	out, err := engine.Start(context.Background(), f.config(t, src, nil), map[string]runbooks.Value{})
	if err != nil {
		t.Fatal(err)
	}
	fin, x := finishedOf(t, f.db, out.RunID, "big")
	log := fin.LogBytes()
	const capBytes = 4 << 20
	kept := capBytes - len("first\n")
	wantPrefix := "first\n" + strings.Repeat("x", kept)
	if !strings.HasPrefix(string(log), wantPrefix) {
		t.Fatalf("log does not keep the line's first %d bytes (log is %d bytes, starts %q)", kept, len(log), log[:min(40, len(log))])
	}
	sent := len("first\n") + total + len("\n") + len("after\n")
	wantCut := int64(sent - capBytes)
	if fin.LogCutBytes != wantCut {
		t.Errorf("cut %d bytes, want %d", fin.LogCutBytes, wantCut)
	}
	marker := fmt.Sprintf("\n[output truncated: %d bytes not recorded]\n", wantCut)
	if string(log[len(wantPrefix):]) != marker {
		t.Errorf("log ends %q, want %q", log[len(wantPrefix):], marker)
	}
	if fin.LogSHA256 != sha(log) || x.Log != string(log) {
		t.Error("hash or execs.log does not cover the stored log")
	}
	shown := false
	for _, ev := range f.rec.events {
		if l, ok := ev.(runlog.OutputLine); ok && strings.HasSuffix(l.Line, fmt.Sprintf("[line cut: %d bytes not shown]", total-capBytes)) {
			shown = true
		}
	}
	if !shown {
		t.Error("the live line does not say it was cut")
	}
}

// TestEndlessLineBoundedMemory: a node streaming 128 MiB without a newline
// costs the runner a bounded amount of memory (the line keeps its first
// 4 MiB), measured by sampling the heap while the step runs.
func TestEndlessLineBoundedMemory(t *testing.T) {
	f := newFixture(t, 1)
	const total = 128 << 20
	src := header + fmt.Sprintf("steps:\n  - id: endless\n    run: shell\n    on: node1\n    with: {command: 'head -c %d /dev/zero | tr \"\\0\" y'}\n", total)
	cfg := f.config(t, src, nil)
	cfg.Observer = func(runlog.Event) {} // do not keep the 4 MiB live line around
	done := make(chan struct{})
	peak := make(chan uint64, 1)
	go func() {
		var max uint64
		var ms runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > max {
				max = ms.HeapAlloc
			}
			select {
			case <-done:
				peak <- max
				return
			case <-tick.C:
			}
		}
	}()
	out, err := engine.Start(context.Background(), cfg, map[string]runbooks.Value{})
	close(done)
	p := <-peak
	if err != nil {
		t.Fatal(err)
	}
	fin, _ := finishedOf(t, f.db, out.RunID, "endless")
	if fin.LogCutBytes != total-4<<20 || !strings.HasPrefix(fin.Log, strings.Repeat("y", 4<<20)) {
		t.Errorf("cut %d bytes, want %d", fin.LogCutBytes, total-4<<20)
	}
	t.Logf("peak heap %.1f MiB for a %d MiB line", float64(p)/(1<<20), total>>20)
	if p > 96<<20 {
		t.Errorf("peak heap %.1f MiB: the line is not bounded", float64(p)/(1<<20))
	}
}
