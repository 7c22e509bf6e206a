package tui

import (
	"context"
	"sync"

	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/steps"
)

// EventMsg carries one engine event into the program.
type EventMsg struct{ Event engine.Event }

// batchMsg is every message the bridge buffered since the last receive, in
// order.
type batchMsg []tea.Msg

// Bridge carries messages from the engine's goroutines into the program
// without ever blocking them: Send appends to an unbounded buffer and wakes
// the receiving command, which delivers everything buffered as one batch and
// is re-armed after each receive (the glow/soft-serve stream pattern).
type Bridge struct {
	mu      sync.Mutex
	pending []tea.Msg
	notify  chan struct{}
}

// NewBridge returns an empty bridge.
func NewBridge() *Bridge {
	return &Bridge{notify: make(chan struct{}, 1)}
}

// Send buffers msg for the program; it never blocks.
func (b *Bridge) Send(msg tea.Msg) {
	b.mu.Lock()
	b.pending = append(b.pending, msg)
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// Observe is an engine.Config.Observer.
func (b *Bridge) Observe(ev engine.Event) { b.Send(EventMsg{Event: ev}) }

// Wait returns a command that waits for buffered messages and delivers them
// as one batch. Issue it again after handling each batch.
func (b *Bridge) Wait() tea.Cmd {
	return func() tea.Msg {
		<-b.notify
		b.mu.Lock()
		msgs := b.pending
		b.pending = nil
		b.mu.Unlock()
		return batchMsg(msgs)
	}
}

// Operator requests, each carrying the channel the answer goes back on.
type (
	confirmMsg struct {
		req   steps.ConfirmRequest
		reply chan steps.ConfirmResponse
	}
	askMsg struct {
		req   steps.AskRequest
		reply chan string
	}
	decideMsg struct {
		req   steps.DecideRequest
		reply chan steps.Decision
	}
	// runDoneMsg says the engine returned.
	runDoneMsg struct {
		out engine.Outcome
		err error
	}
)

// Operator answers the engine's operator requests through the TUI: each
// request becomes a message, the screen shows the prompt, and the engine's
// goroutine blocks until the person answers or ctx ends.
type Operator struct {
	bridge *Bridge
}

var _ steps.Operator = (*Operator)(nil)

// NewOperator returns an operator that posts its requests on b.
func NewOperator(b *Bridge) *Operator { return &Operator{bridge: b} }

// Confirm implements steps.Operator.
func (o *Operator) Confirm(ctx context.Context, req steps.ConfirmRequest) (steps.ConfirmResponse, error) {
	reply := make(chan steps.ConfirmResponse, 1)
	o.bridge.Send(confirmMsg{req: req, reply: reply})
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		return steps.ConfirmResponse{}, ctx.Err()
	}
}

// Ask implements steps.Operator.
func (o *Operator) Ask(ctx context.Context, req steps.AskRequest) (string, error) {
	reply := make(chan string, 1)
	o.bridge.Send(askMsg{req: req, reply: reply})
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Decide implements steps.Operator.
func (o *Operator) Decide(ctx context.Context, req steps.DecideRequest) (steps.Decision, error) {
	reply := make(chan steps.Decision, 1)
	o.bridge.Send(decideMsg{req: req, reply: reply})
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		return steps.Decision{}, ctx.Err()
	}
}
