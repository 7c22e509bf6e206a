package tui

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

func TestTUIOutputRingBounds(t *testing.T) {
	cases := []struct {
		name         string
		lines, width int
		wantMaxLines int
	}{
		{"many short lines", 100000, 10, liveRingLines},
		{"long lines hit the byte budget", 20000, 1000, liveRingBytes / 1032},
		{"few lines keep all", 10, 10, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing()
			for i := range tc.lines {
				r.add(outLine{text: fmt.Sprintf("%0*d", tc.width, i), target: "n1"})
			}
			if r.total != tc.lines {
				t.Fatalf("total %d, want %d", r.total, tc.lines)
			}
			if r.n > tc.wantMaxLines+1 || r.bytes > liveRingBytes {
				t.Fatalf("kept %d lines / %d bytes, want at most %d lines / %d bytes", r.n, r.bytes, tc.wantMaxLines, liveRingBytes)
			}
			// The kept lines are the newest, in order.
			for i := r.first(); i < r.total; i++ {
				if got, want := r.at(i).text, fmt.Sprintf("%0*d", tc.width, i); got != want {
					t.Fatalf("line %d = %q, want %q", i, got, want)
				}
			}
			r.shrink(doneRingLines, doneRingBytes)
			if r.n > doneRingLines || r.bytes > doneRingBytes {
				t.Fatalf("after shrink: %d lines / %d bytes", r.n, r.bytes)
			}
			if got, want := r.at(r.total-1).text, fmt.Sprintf("%0*d", tc.width, tc.lines-1); got != want {
				t.Fatalf("after shrink the last line is %q, want %q", got, want)
			}
			r.add(outLine{text: "after"})
			if r.at(r.total-1).text != "after" || r.n > doneRingLines {
				t.Fatalf("add after shrink broke the ring: n=%d", r.n)
			}
		})
	}
}

// TestTUIOutputWrapToggle: a long line wraps by default (its end, the cause
// of an error, is on screen); w cuts it at the edge; w again wraps.
func TestTUIOutputWrapToggle(t *testing.T) {
	m := runModel(t, runningEvents())
	d := drive(m)
	sized(t, d, 80, 24)
	long := "fatal: " + strings.Repeat("detail ", 20) + "CAUSE42"
	d.send(batchMsg{EventMsg{Event: runlog.OutputLine{StepID: "report", Target: "node2", Stderr: true, Line: long, Time: at(70000)}}})
	if got := frame(m); !strings.Contains(got, "CAUSE42") {
		t.Fatalf("a long line is not wrapped:\n%s", got)
	}
	d.send(press("w"))
	got := frame(m)
	if strings.Contains(got, "CAUSE42") || !strings.Contains(got, "lines cut (w wraps)") {
		t.Fatalf("w did not cut long lines:\n%s", got)
	}
	checkFrame(t, "cut", got, 80, 24)
	d.send(press("w"))
	if got := frame(m); !strings.Contains(got, "CAUSE42") {
		t.Fatalf("w again did not wrap:\n%s", got)
	}
}

// TestTUIStepListNeverOrphansTargets: when the step list scrolls, it says
// how many rows are above and below, and a target row always shows under
// its step.
func TestTUIStepListNeverOrphansTargets(t *testing.T) {
	m := runModel(t, runningEvents())
	d := drive(m)
	sized(t, d, 80, 14)
	for _, k := range []string{"up", "up"} { // the wipe step, then hello
		d.send(press(k))
		got := frame(m)
		lines := strings.Split(got, "\n")
		if !strings.Contains(lines[3], "more below") && !strings.Contains(lines[3], "more above") {
			t.Errorf("a scrolled step list does not say what is above or below:\n%s", got)
		}
		if strings.HasPrefix(strings.TrimSpace(lines[4]), "└") {
			t.Errorf("a target row shows without its step:\n%s", got)
		}
	}
}

func TestTUIDangerMultiLineAndReason(t *testing.T) {
	cmd := "d=/x/m2\nif [ -f \"$d\" ]; then\n\trm -rf \"$d\" || true\nfi\necho \"" + strings.Repeat("long ", 90) + "END\""
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m := runModel(t, runningEvents()[:12])
			d := drive(m)
			reply := make(chan steps.ConfirmResponse, 1)
			d.send(batchMsg{confirmMsg{reply: reply, req: steps.ConfirmRequest{StepID: "wipe", Title: "Remove node3", Danger: true,
				Targets: []string{"node1"}, Summaries: []string{cmd}, Expect: "node3", Reason: "node3 is the node being removed (inputs.failed)"}}})
			got := sized(t, d, sz.w, sz.h)
			for _, want := range []string{"1│ d=/x/m2", `2│ if [ -f "$d" ]; then`, `3│         rm -rf "$d" || true`, "4│ fi", "Type node3 to go ahead", "Why node3: node3 is the node being removed"} {
				if !strings.Contains(got, want) {
					t.Errorf("danger box lacks %q:\n%s", want, got)
				}
			}
			if strings.Contains(got, "m2if") {
				t.Errorf("command lines are joined:\n%s", got)
			}
			golden(t, fmt.Sprintf("danger_multiline_%dx%d", sz.w, sz.h), got)
			// At 80x24 the wrapped last line does not fit: it scrolls.
			for range 10 {
				d.send(press("pgdown"))
			}
			if got := frame(m); !strings.Contains(got, "END\"") || !strings.Contains(got, "Type node3 to go ahead") {
				t.Errorf("scrolling down does not reach the end of the command, or hides the word:\n%s", got)
			}
		})
	}
}

// TestTUIFailurePromptEscBack: esc in the skip reason goes back to the
// choices (never an empty box), and a choice still answers the engine.
func TestTUIFailurePromptEscBack(t *testing.T) {
	c := &chain{runID: "r20261121-030405-ab12", seq: 1}
	evs := append(runningEvents()[:2:2],
		c.started("hello", "node3", 1, "Say hello everywhere", "echo hello", at(20)),
		runlog.OutputLine{StepID: "hello", Target: "node3", Line: "checking", Time: at(25)},
		runlog.OutputLine{StepID: "hello", Target: "node3", Stderr: true, Line: "fatal: checksum mismatch, the cause is here", Time: at(30)},
		c.finished("hello", "node3", 1, state.StatusFailed, 3, errBoom.Error(), 0, at(1030)),
		c.started("hello", "node1", 1, "Say hello everywhere", "echo hello", at(20)),
		runlog.OutputLine{StepID: "hello", Target: "node1", Stderr: true, Line: "node1 broke too", Time: at(30)},
		c.finished("hello", "node1", 1, state.StatusFailed, 1, "exit 1", 0, at(1030)),
	)
	m := runModel(t, evs)
	d := drive(m)
	sized(t, d, 80, 24)
	reply := make(chan steps.Decision, 1)
	d.send(batchMsg{decideMsg{reply: reply, req: steps.DecideRequest{StepID: "hello", Target: "node3,node1",
		Options: []steps.DecisionKind{steps.DecisionRetry, steps.DecisionSkip, steps.DecisionAbort}}}})
	got := frame(m)
	if !strings.Contains(got, "Step hello failed on node1, node3") {
		t.Errorf("failed targets not in inventory order:\n%s", got)
	}
	if !strings.Contains(got, "! fatal: checksum mismatch, the cause is here") {
		t.Errorf("the stderr of the failed target is not readable in the prompt:\n%s", got)
	}
	d.send(press("esc"))
	if got := frame(m); !strings.Contains(got, "retry") || !strings.Contains(got, "What now?") {
		t.Fatalf("esc on the choices left:\n%s", got)
	}
	d.send(press("down"))
	d.send(press("enter")) // skip: the reason
	if got := frame(m); !strings.Contains(got, "Why skip it?") || !strings.Contains(got, "esc back") {
		t.Fatalf("skip did not ask a reason:\n%s", got)
	}
	d.typeText("half")
	d.send(press("esc"))
	got = frame(m)
	if !strings.Contains(got, "What now?") || !strings.Contains(got, "abort — stop the run here") {
		t.Fatalf("esc in the reason did not go back to the choices:\n%s", got)
	}
	checkFrame(t, "after esc", got, 80, 24)
	d.send(press("up"))
	d.send(press("enter"))
	select {
	case dec := <-reply:
		if dec.Kind != steps.DecisionRetry || dec.By != "alice" {
			t.Errorf("decision = %+v, want retry by alice", dec)
		}
	default:
		t.Fatalf("retry after esc did not answer:\n%s", frame(m))
	}
	if m.run.Prompting() {
		t.Error("the prompt stayed open")
	}
}

// TestTUIPagerFile: the pager's file holds the whole recorded output of the
// step (not only the tail on screen), plus what the record does not have
// yet, is private, and keeps masked secrets masked.
func TestTUIPagerFile(t *testing.T) {
	var log strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&log, "recorded line %05d\n", i)
	}
	log.WriteString("! token ****\n")
	rec := fakeRecord{execs: []state.Exec{
		{Target: "node2", Attempt: 1, Status: state.StatusFailed, ExitCode: 2, Error: "exit 2", Log: log.String()},
		{Target: "node3", Attempt: 1, Status: state.StatusSucceeded, Log: "head of node3\n[output truncated: 999 bytes not recorded]\n"},
	}}
	v := NewRunView(NewCommon(fixedNow), nil)
	v.SetContext(RunContext{User: "alice", Record: rec})
	c := &chain{runID: "r1"}
	v.Handle(c.created("", "", "", at(0)))
	v.Handle(c.started("s", "node3", 1, "", "x", at(0)))
	v.Handle(runlog.OutputLine{StepID: "s", Target: "node3", Line: "tail of node3 \x1b]52;c;aGk=\x07", Time: at(0)})
	v.Handle(c.started("s", "node2", 2, "", "x", at(0)))
	v.Handle(runlog.OutputLine{StepID: "s", Target: "node2", Line: "live line of attempt 2", Time: at(1)})
	msg := v.openPager(0)().(pagerReadyMsg)
	if msg.err != nil {
		t.Fatal(msg.err)
	}
	defer os.Remove(msg.path)
	fi, err := os.Stat(msg.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("pager file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(msg.path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"recorded line 00000", "recorded line 19999", "! token ****", "node2 · attempt 1 · failed · exit 2", "node2 · attempt 2 · not in the record yet", "live line of attempt 2",
		"head of node3", "[output truncated: 999 bytes not recorded]", "the last 1 lines kept on screen follow", "tail of node3 ␛]52;c;aGk=␇"} {
		if !strings.Contains(text, want) {
			t.Errorf("pager file lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\x1b") {
		t.Error("an escape sequence reached the pager's file")
	}
}

type fakeRecord struct{ execs []state.Exec }

func (f fakeRecord) StepLogs(_ context.Context, _, _ string) ([]state.Exec, error) {
	return f.execs, nil
}

// TestTUIAskEscNeverEmpty: esc on an input step's question does not answer
// and does not leave an empty box: the question is asked again, with a hint,
// and can be answered.
func TestTUIAskEscNeverEmpty(t *testing.T) {
	m := runModel(t, runningEvents())
	d := drive(m)
	sized(t, d, 80, 24)
	reply := make(chan string, 1)
	ticket := runbooks.Input{Name: "value", Type: runbooks.InputString, Prompt: "Ticket number"}
	d.send(batchMsg{askMsg{reply: reply, req: steps.AskRequest{StepID: "ticket", Input: ticket}}})
	d.send(press("esc"))
	got := frame(m)
	if !strings.Contains(got, "Ticket number") || !strings.Contains(got, "the run waits for this answer") {
		t.Fatalf("esc left:\n%s", got)
	}
	if len(reply) != 0 {
		t.Fatal("esc answered the question")
	}
	d.typeText("INC-1")
	d.send(press("enter"))
	select {
	case v := <-reply:
		if v != "INC-1" {
			t.Errorf("answer = %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no answer after esc:\n%s", frame(m))
	}
}

// TestTUIReplayRecordLogs: a replay's pager reads the step's logs from the
// recorded events, in the order the attempts started.
func TestTUIReplayRecordLogs(t *testing.T) {
	ev := func(seq int64, typ state.EventType, target string, attempt int, p any) state.Event {
		e, err := state.NewEvent("r1", typ, p)
		if err != nil {
			t.Fatal(err)
		}
		e.Seq, e.StepID, e.Target, e.Attempt = seq, "s", target, attempt
		return e
	}
	rep := &Replay{Events: []state.Event{
		ev(2, state.EvStepStarted, "node2", 1, state.StepStarted{}),
		ev(3, state.EvStepStarted, "node1", 1, state.StepStarted{}),
		ev(4, state.EvStepFinished, "node1", 1, state.StepFinished{Status: state.StatusSucceeded, Log: "from node1\n"}),
		ev(5, state.EvStepFinished, "node2", 1, state.StepFinished{Status: state.StatusFailed, ExitCode: 1, Log: "! from node2\n"}),
	}}
	got, err := replayRecord{rep}.StepLogs(context.Background(), "r1", "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Target != "node2" || got[0].Log != "! from node2\n" || got[1].Target != "node1" || got[1].ExitCode != 0 {
		t.Fatalf("replay logs = %+v", got)
	}
}

// TestTUIOutputEarlierLinesHint: scrolled to the top of what the screen
// keeps, the output says how many earlier lines it dropped and how to see
// them.
func TestTUIOutputEarlierLinesHint(t *testing.T) {
	m := runModel(t, runningEvents())
	d := drive(m)
	sized(t, d, 80, 24)
	var evs batchMsg
	for i := range liveRingLines + 100 {
		evs = append(evs, EventMsg{Event: runlog.OutputLine{StepID: "report", Target: "node2", Line: fmt.Sprintf("bulk %05d", i), Time: at(80000)}})
	}
	d.send(evs)
	d.send(press("g"))
	got := frame(m)
	if !strings.Contains(got, "earlier lines are not kept on screen: p opens the whole output") {
		t.Fatalf("no hint about the dropped lines at the top:\n%s", got)
	}
	if !strings.Contains(got, fmt.Sprintf("of %d", liveRingLines+100+31)) {
		t.Errorf("the position does not count every line:\n%s", got)
	}
}
