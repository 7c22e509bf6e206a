package tui

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/steps"
)

func TestTUIBridgeNeverBlocksAndKeepsOrder(t *testing.T) {
	b := NewBridge()
	done := make(chan struct{})
	go func() {
		for i := range 100000 {
			b.Observe(engine.OutputLine{Line: "x", Target: string(rune('a' + i%26))})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the engine side blocked on a screen that does not read")
	}
	msg := b.Wait()().(batchMsg)
	if len(msg) != 100000 {
		t.Fatalf("got %d messages in the batch, want 100000", len(msg))
	}
	for i, m := range msg {
		if got := m.(EventMsg).Event.(engine.OutputLine).Target; got != string(rune('a'+i%26)) {
			t.Fatalf("message %d out of order", i)
		}
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
