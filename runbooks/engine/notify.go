package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// NotifyFlushTimeout bounds how long the end of a run waits for its last
// notifications (run.finished's among them) before the segment is signed:
// deliveries still pending then are recorded abandoned. It delays only the
// process's exit, never a step.
const NotifyFlushTimeout = 5 * time.Second

// Notifier is the hook of run notifications (cmd/drbook wires package
// internal/notify to it). The engine hands it every event after the
// observer, and owns the record its delivery outcomes go to: they are
// appended through the engine, which keeps the chain's head (and signs it),
// so every outcome of a run segment is in the record before the segment's
// end is signed.
type Notifier interface {
	// Bind starts the notifications of run runID; note appends one
	// delivery outcome to the run's record. It is called before the first
	// event of the run (or of a resumed segment) is emitted.
	Bind(runID string, note func(ctx context.Context, n state.Note) error)
	// Notify queues a notification for ev, if ev calls for one. It must
	// not block: deliveries happen in the background.
	Notify(ev runlog.Event)
	// Flush waits, at most until ctx ends, for the run's pending
	// deliveries, recording each outcome (pending ones as abandoned),
	// and ends the binding: nothing is recorded after it returns.
	Flush(ctx context.Context)
}

// ErrNotifyFlushed: a delivery outcome came after the run's notifications
// were flushed (its segment end is signed); it is not recorded.
var ErrNotifyFlushed = errors.New("engine: the run's notifications were flushed; outcome not recorded")

// notifyState makes the run's Flush happen once: at the end of the run,
// before its segment is signed, or when the run stops before it began.
type notifyState struct {
	once   sync.Once
	closed bool
	mu     sync.Mutex
}

// bindNotify starts the run's notifications (see Notifier.Bind).
func (r *run) bindNotify() {
	if r.cfg.Notify == nil {
		return
	}
	r.cfg.Notify.Bind(r.id, r.recordNotifyNote)
}

// recordNotifyNote appends one delivery outcome; refused once the run's
// notifications were flushed.
func (r *run) recordNotifyNote(ctx context.Context, n state.Note) error {
	r.notify.mu.Lock()
	closed := r.notify.closed
	r.notify.mu.Unlock()
	if closed {
		return ErrNotifyFlushed
	}
	return r.record(context.WithoutCancel(ctx), state.EvNote, "", "", 0, n)
}

// flushNotify waits for the run's last deliveries (NotifyFlushTimeout).
func (r *run) flushNotify(ctx context.Context) {
	if r.cfg.Notify == nil {
		return
	}
	r.notify.once.Do(func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), NotifyFlushTimeout)
		defer cancel()
		r.cfg.Notify.Flush(fctx)
		r.notify.mu.Lock()
		r.notify.closed = true
		r.notify.mu.Unlock()
	})
}
