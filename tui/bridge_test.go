package tui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

func TestTUIBridgeNeverBlocksAndKeepsOrder(t *testing.T) {
	b := NewBridge()
	done := make(chan struct{})
	go func() {
		for i := range 100000 {
			b.Observe(runlog.OutputLine{Line: "x", Target: string(rune('a' + i%26))})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the engine side blocked on a screen that does not read")
	}
	// The screen did not read: the bridge kept the newest lines the screen
	// keeps, counted the older ones, and kept the order.
	msg := b.Wait()().(batchMsg)
	skipped, i := 0, 0
	for _, m := range msg {
		switch m := m.(type) {
		case outputSkipped:
			if i != 0 {
				t.Fatalf("skipped lines counted after kept ones")
			}
			skipped += m.Lines
		case EventMsg:
			n := skipped + i
			if got := m.Event.(runlog.OutputLine).Target; got != string(rune('a'+n%26)) {
				t.Fatalf("line %d out of order", n)
			}
			i++
		}
	}
	if skipped+i != 100000 {
		t.Fatalf("kept %d + skipped %d lines, want 100000", i, skipped)
	}
	if i < liveRingLines || i > bridgeMaxBytes/96+1 {
		t.Fatalf("kept %d lines, want at least the %d the screen keeps and at most %d bytes of them", i, liveRingLines, bridgeMaxBytes)
	}
}

func TestTUIOperatorRespectsContext(t *testing.T) {
	b := NewBridge()
	op := NewOperator(b)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 3)
	go func() { _, err := op.Confirm(ctx, steps.ConfirmRequest{StepID: "s"}); errc <- err }()
	go func() { _, err := op.Ask(ctx, steps.AskRequest{StepID: "s"}); errc <- err }()
	go func() { _, err := op.Decide(ctx, steps.DecideRequest{StepID: "s"}); errc <- err }()
	// All three requests reach the screen.
	seen := 0
	deadline := time.After(5 * time.Second)
	for seen < 3 {
		select {
		case <-deadline:
			t.Fatalf("only %d requests reached the screen", seen)
		default:
		}
		seen += len(b.Wait()().(batchMsg))
	}
	cancel()
	for range 3 {
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("an operator request ignored the cancelled context")
		}
	}
}

func TestTUIOperatorAnswers(t *testing.T) {
	b := NewBridge()
	op := NewOperator(b)
	res := make(chan steps.Decision, 1)
	go func() {
		d, _ := op.Decide(context.Background(), steps.DecideRequest{StepID: "s"})
		res <- d
	}()
	msg := b.Wait()().(batchMsg)[0].(decideMsg)
	msg.reply <- steps.Decision{Kind: steps.DecisionRetry, By: "bob"}
	if d := <-res; d.Kind != steps.DecisionRetry || d.By != "bob" {
		t.Errorf("decision = %+v", d)
	}
}

func TestTUIPromptsQueueAndAsk(t *testing.T) {
	m := runModel(t, runningEvents())
	d := drive(m)
	sized(t, d, 80, 24)
	c1 := make(chan steps.ConfirmResponse, 1)
	c2 := make(chan string, 1)
	ticket := runbooks.Input{Name: "value", Type: runbooks.InputString, Prompt: "Ticket number", Pattern: "^INC-"}
	d.send(batchMsg{
		confirmMsg{reply: c1, req: steps.ConfirmRequest{StepID: "manual", Title: "Switch DNS by hand", Message: "Point db.example.com at node2."}},
		askMsg{reply: c2, req: steps.AskRequest{StepID: "ticket", Input: ticket}},
	})
	if s := frame(m); !strings.Contains(s, "Switch DNS by hand") || strings.Contains(s, "Ticket number") {
		t.Fatalf("first question not shown alone:\n%s", s)
	}
	d.send(press("y"))
	if r := <-c1; !r.OK || r.By != "alice" {
		t.Errorf("confirm = %+v", r)
	}
	if s := frame(m); !strings.Contains(s, "Ticket number") {
		t.Fatalf("the queued question did not follow:\n%s", s)
	}
	d.typeText("nope")
	d.send(press("enter"))
	if len(c2) != 0 {
		t.Fatal("an answer refused by the input's pattern reached the engine")
	}
	for range 4 {
		d.send(press("backspace"))
	}
	d.typeText("INC-7")
	d.send(press("enter"))
	select {
	case v := <-c2:
		if v != "INC-7" {
			t.Errorf("answer = %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no answer:\n%s", frame(m))
	}
}

func TestTUINoticesShown(t *testing.T) {
	m := runModel(t, runningEvents())
	d := drive(m)
	sized(t, d, 100, 30)
	d.send(batchMsg{EventMsg{Event: runlog.Notice{StepID: "report", Target: "node2", Text: "report was interrupted on node2; its check: says it took effect"}}})
	s := frame(m)
	if !strings.Contains(s, "» report was interrupted on node2") {
		t.Errorf("notice not shown:\n%s", s)
	}
}

// TestTUIAskPrefilledFromAnswers: an answer under steps: in the answers file
// prefills the input step's field; the person only confirms it.
func TestTUIAskPrefilledFromAnswers(t *testing.T) {
	m := runModel(t, runningEvents())
	m.run.SetContext(RunContext{User: "alice", Answers: &runbooks.Answers{Steps: map[string]runbooks.Answer{"ticket": {Value: "INC-9"}}}})
	d := drive(m)
	sized(t, d, 80, 24)
	reply := make(chan string, 1)
	ticket := runbooks.Input{Name: "value", Type: runbooks.InputString, Prompt: "Ticket number", Pattern: "^INC-"}
	d.send(batchMsg{askMsg{reply: reply, req: steps.AskRequest{StepID: "ticket", Input: ticket}}})
	if s := frame(m); !strings.Contains(s, "INC-9") {
		t.Fatalf("the answer from the answers file is not prefilled:\n%s", s)
	}
	d.send(press("enter"))
	select {
	case v := <-reply:
		if v != "INC-9" {
			t.Errorf("answer = %q, want INC-9", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no answer:\n%s", frame(m))
	}
}
