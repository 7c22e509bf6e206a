package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/steps"
)

func TestStepTimeoutDefaults(t *testing.T) {
	reg := steps.NewRegistry()
	info := func(kind string) runbooks.KindInfo {
		k, ok := reg.Get(kind)
		if !ok {
			t.Fatalf("no kind %s", kind)
		}
		return k.Info()
	}
	tests := []struct {
		name    string
		timeout runbooks.Duration
		info    runbooks.KindInfo
		want    string
	}{
		{"shell default", 0, info("shell"), "10m0s"},
		{"wait default", 0, info("wait"), "5m0s"},
		{"confirm waits for a person", 0, info("confirm"), "none"},
		{"input waits for a person", 0, info("input"), "none"},
		{"kind without a default (agent, plugin)", 0, runbooks.KindInfo{Name: "agent.x"}, "10m0s"},
		{"explicit", runbooks.Duration(90 * time.Second), info("shell"), "1m30s"},
		{"explicit none", runbooks.NoLimit, info("wait"), "none"},
		{"explicit on an operator kind", runbooks.Duration(time.Minute), info("confirm"), "1m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := engine.StepTimeout(&runbooks.Step{Timeout: tc.timeout}, tc.info)
			if got.String() != tc.want {
				t.Errorf("StepTimeout = %s, want %s", got, tc.want)
			}
		})
	}
}

// finished returns the recorded step.finished payloads of a step.
func finished(t *testing.T, f *fixture, runID, stepID string) []state.StepFinished {
	t.Helper()
	evs, err := f.db.Events(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	var out []state.StepFinished
	for _, ev := range evs {
		if ev.Type == state.EvStepFinished && ev.StepID == stepID {
			var p state.StepFinished
			if err := ev.Decode(&p); err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
	}
	return out
}

// TestWaitTimeoutSaysWhatItSaw: a wait whose expectation never holds ends at
// its timeout with the last value of the expected key and the last output;
// its identical polls are recorded as a count, not one by one.
func TestWaitTimeoutSaysWhatItSaw(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `steps:
  - id: leader
    run: wait
    on: node1
    timeout: 1500ms
    with:
      command: 'echo x >> "$NODE_DIR/polls"; echo "member node1"; echo role=follower'
      expect: {role: leader}
      interval: 50ms
`
	out, err := engine.Start(context.Background(), f.config(t, src, nil), nil)
	if !errors.Is(err, engine.ErrStepFailed) {
		t.Fatalf("err %v, want a failed step\n%s", err, f.rec.lines())
	}
	polls := f.count(t, "node1", "polls")
	if polls < 3 {
		t.Fatalf("only %d polls in 1.5s", polls)
	}
	fin := finished(t, f, out.RunID, "leader")
	if len(fin) != 1 {
		t.Fatalf("%d finished executions", len(fin))
	}
	msg := fin[0].Error
	for _, want := range []string{"timed out after 1.5s: expected role=leader, last role=follower (poll ", "member node1 | role=follower"} {
		if !strings.Contains(msg, want) {
			t.Errorf("timeout error lacks %q:\n%s", want, msg)
		}
	}
	log := fin[0].Log
	if !strings.Contains(log, "poll 1 (") || !strings.Contains(log, "  role=follower") {
		t.Errorf("first poll's output not recorded:\n%s", log)
	}
	if !strings.Contains(log, "same as poll 1") {
		t.Errorf("identical polls not counted:\n%s", log)
	}
	// 3 lines for the first poll, one count line (plus heartbeats, none in
	// 1.5 s): never one line per poll.
	if n := strings.Count(log, "\n"); n > 5 || n >= polls+2 {
		t.Errorf("%d log lines for %d identical polls:\n%s", n, polls, log)
	}
	// The live view saw the poll output as output lines.
	if !strings.Contains(f.rec.lines(), "leader/node1:   role=follower") {
		t.Errorf("poll output not emitted live:\n%s", f.rec.lines())
	}
}

// TestWaitRecordsChangingPolls: every poll whose output differs is recorded
// in full; the wait ends when the expectation holds.
func TestWaitRecordsChangingPolls(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `steps:
  - id: catchup
    run: wait
    on: node1
    timeout: 30s
    with:
      command: 'echo x >> "$NODE_DIR/polls"; echo applied=$(wc -l < "$NODE_DIR/polls")'
      expect: {applied: ">=4"}
      interval: 20ms
`
	out, err := engine.Start(context.Background(), f.config(t, src, nil), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, f.rec.lines())
	}
	log := finished(t, f, out.RunID, "catchup")[0].Log
	for _, want := range []string{"  applied=1", "  applied=2", "  applied=3", "poll 4 (", "ok: applied=4 (want >=4)"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestWaitTypoNamesTheMissingKey: a typo in expect: ends at the timeout
// with an error saying the key never appeared in the output.
func TestWaitTypoNamesTheMissingKey(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `steps:
  - id: typo
    run: wait
    on: node1
    timeout: 500ms
    with:
      command: 'echo role=leader'
      expect: {rol: leader}
      interval: 20ms
`
	out, err := engine.Start(context.Background(), f.config(t, src, nil), nil)
	if !errors.Is(err, engine.ErrStepFailed) {
		t.Fatalf("err %v, want a failed step", err)
	}
	msg := finished(t, f, out.RunID, "typo")[0].Error
	if want := "timed out after 500ms: expected rol=leader, last rol never appeared in any poll's output (poll "; !strings.Contains(msg, want) {
		t.Errorf("error %q lacks %q", msg, want)
	}
	t.Log(finished(t, f, out.RunID, "typo")[0].Log)
}

// TestWaitRecordBoundedWhenOutputAlwaysChanges: a poll output that changes
// every time (a counter) is written in full for the first 100 polls only;
// the rest are counted, the final poll is written.
func TestWaitRecordBoundedWhenOutputAlwaysChanges(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `steps:
  - id: count
    run: wait
    on: node1
    timeout: 2m
    with:
      command: 'echo x >> "$NODE_DIR/polls"; echo n=$(wc -l < "$NODE_DIR/polls")'
      expect: {n: ">=150"}
      interval: 1ms
`
	out, err := engine.Start(context.Background(), f.config(t, src, nil), nil)
	if err != nil {
		t.Fatalf("%v", err)
	}
	log := finished(t, f, out.RunID, "count")[0].Log
	for _, want := range []string{"  n=100\n", "polls 101-149 (to ", ": 49 polls not shown (only the first 100 that differ are); last: waiting: n=149 (want >=150)", "poll 150 (", "  n=150\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(log, "n=101\n") {
		t.Errorf("poll 101 written in full")
	}
	if n := strings.Count(log, "\n"); n > 2*100+1+2 {
		t.Errorf("%d log lines for 150 polls", n)
	}
}
