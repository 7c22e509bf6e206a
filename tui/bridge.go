package tui

import (
	"context"
	"sync"

	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

// EventMsg carries one event of the run (package runlog) into the program.
type EventMsg struct{ Event runlog.Event }

// batchMsg is every message the bridge buffered since the last receive, in
// order.
type batchMsg []tea.Msg

// bridgeMaxBytes bounds the output lines buffered while the program is
// behind: beyond it, older lines of a step that the screen would not keep
// anyway are dropped and counted (the record has every line).
const bridgeMaxBytes = 8 << 20

// Bridge carries messages from the engine's goroutines into the program
// without ever blocking them: Send appends to a buffer and wakes the
// receiving command, which delivers everything buffered as one batch and is
// re-armed after each receive (the glow/soft-serve stream pattern). Output
// lines in the buffer are bounded (bridgeMaxBytes); every other message is
// kept.
type Bridge struct {
	mu       sync.Mutex
	pending  []tea.Msg
	outBytes int
	notify   chan struct{}
}

// NewBridge returns an empty bridge.
func NewBridge() *Bridge {
	return &Bridge{notify: make(chan struct{}, 1)}
}

// Send buffers msg for the program; it never blocks.
func (b *Bridge) Send(msg tea.Msg) {
	b.mu.Lock()
	b.pending = append(b.pending, msg)
	if n := outSize(msg); n > 0 {
		b.outBytes += n
		if b.outBytes > bridgeMaxBytes {
			b.compact()
		}
	}
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// Observe is an engine.Config.Observer. An output line longer than the
// screen keeps is cut here (the record has it whole).
func (b *Bridge) Observe(ev runlog.Event) {
	if l, ok := ev.(runlog.OutputLine); ok && len(l.Line) > maxLineBytes {
		l.Line = capBytes(l.Line, maxLineBytes)
		ev = l
	}
	b.Send(EventMsg{Event: ev})
}

// outSize is the buffered size of an output line message, 0 for others.
func outSize(msg tea.Msg) int {
	if e, ok := msg.(EventMsg); ok {
		if l, ok := e.Event.(runlog.OutputLine); ok {
			return len(l.Line) + len(l.StepID) + len(l.Target) + 96
		}
	}
	return 0
}

// compact keeps, of each step's buffered output lines, the newest that the
// screen keeps (liveRingLines, liveRingBytes); the older are replaced by one
// outputSkipped per step, where the first of them was. Called with mu held.
func (b *Bridge) compact() {
	kept := map[string]int{}
	keptBytes := map[string]int{}
	drop := make([]bool, len(b.pending))
	dropped := map[string]int{}
	total := 0
	for i := len(b.pending) - 1; i >= 0; i-- {
		n := outSize(b.pending[i])
		if n == 0 {
			continue
		}
		id := b.pending[i].(EventMsg).Event.(runlog.OutputLine).StepID
		if kept[id] < liveRingLines && keptBytes[id]+n <= liveRingBytes {
			kept[id]++
			keptBytes[id] += n
			total += n
			continue
		}
		drop[i] = true
		dropped[id]++
	}
	out := b.pending[:0]
	for i, msg := range b.pending {
		if !drop[i] {
			out = append(out, msg)
			continue
		}
		id := msg.(EventMsg).Event.(runlog.OutputLine).StepID
		if n := dropped[id]; n > 0 {
			out = append(out, outputSkipped{StepID: id, Lines: n})
			dropped[id] = 0
		}
	}
	clear(b.pending[len(out):])
	b.pending = out
	b.outBytes = total
}

// Wait returns a command that waits for buffered messages and delivers them
// as one batch. Issue it again after handling each batch.
func (b *Bridge) Wait() tea.Cmd {
	return func() tea.Msg {
		<-b.notify
		b.mu.Lock()
		msgs := b.pending
		b.pending = nil
		b.outBytes = 0
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
