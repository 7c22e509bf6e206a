package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/drbook/drbook/state"
)

// NoteRTOCrossed is the Data["kind"] of the note recorded when a run
// crosses its RTO budget (docs/runbooks.md). Its Data also holds
// budget_ms, elapsed_ms, machine_ms and human_ms.
const NoteRTOCrossed = "rto.crossed"

// rtoClock is the run's RTO budget timer: it fires once, when the budget
// is crossed, unless the run finished first.
type rtoClock struct {
	mu       sync.Mutex
	timer    *time.Timer
	stopped  bool
	recorded bool // a crossing is already in the record (resume)
}

// budget is the run's RTO budget: the configuration's (a drill's
// rto_budget), else the runbook's rto:.
func (r *run) budget() time.Duration {
	if r.cfg.RTO > 0 {
		return r.cfg.RTO
	}
	return r.cfg.Runbook.RTO.D()
}

// rtoSince is when the recovery clock started: Config.RTOSince, else the
// start of the run (the creation of a resumed run).
func (r *run) rtoSince() time.Time {
	if !r.cfg.RTOSince.IsZero() {
		return r.cfg.RTOSince
	}
	if !r.createdAt.IsZero() {
		return r.createdAt
	}
	return r.started
}

// startRTO arms the budget timer; it fires at once when the budget is
// already gone (a resume long after the run began).
func (r *run) startRTO(ctx context.Context) {
	b := r.budget()
	if b <= 0 {
		return
	}
	since := r.rtoSince()
	r.rto.mu.Lock()
	defer r.rto.mu.Unlock()
	if r.rto.recorded {
		return
	}
	r.rto.timer = time.AfterFunc(max(0, time.Until(since.Add(b))), func() { r.crossRTO(ctx, b, since) })
}

func (r *run) crossRTO(ctx context.Context, budget time.Duration, since time.Time) {
	r.rto.mu.Lock()
	defer r.rto.mu.Unlock()
	if r.rto.stopped || r.rto.recorded {
		return
	}
	r.rto.recorded = true
	now := time.Now()
	elapsed := now.Sub(since)
	r.humanMu.Lock()
	human := r.human
	r.humanMu.Unlock()
	machine := max(0, elapsed-human)
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	note := state.Note{
		Text: fmt.Sprintf("RTO budget %s crossed after %s (machine %s, operator %s)", budget, elapsed.Round(time.Second), machine.Round(time.Second), human.Round(time.Second)),
		Data: map[string]string{"kind": NoteRTOCrossed, "budget_ms": ms(budget), "elapsed_ms": ms(elapsed), "machine_ms": ms(machine), "human_ms": ms(human)},
	}
	if err := r.record(ctx, state.EvNote, "", "", 0, note); err != nil {
		r.log.Warn("record RTO crossing", "run", r.id, "err", err)
	}
}

// stopRTO disarms the timer before the run's end is recorded, so no
// crossing follows run.finished.
func (r *run) stopRTO() {
	r.rto.mu.Lock()
	defer r.rto.mu.Unlock()
	r.rto.stopped = true
	if r.rto.timer != nil {
		r.rto.timer.Stop()
	}
}

// rtoCrossedIn reports whether events hold a recorded RTO crossing.
func rtoCrossedIn(events []state.Event) bool {
	for _, ev := range events {
		if ev.Type != state.EvNote {
			continue
		}
		var n state.Note
		if ev.Decode(&n) == nil && n.Data["kind"] == NoteRTOCrossed {
			return true
		}
	}
	return false
}

// recordedRTO is the budget run.created recorded, if any.
func recordedRTO(events []state.Event) *state.RTOBudget {
	for _, ev := range events {
		if ev.Type != state.EvRunCreated {
			continue
		}
		var p state.RunCreated
		if ev.Decode(&p) == nil {
			return p.RTO
		}
	}
	return nil
}
