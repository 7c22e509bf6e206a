package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drbook/drbook/internal/buildinfo"
	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/internal/notify"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
)

// Kinds of the record's notes about notification deliveries (Note.Data
// "kind"): one note per delivery outcome.
const noteNotifyPrefix = "notify."

// waitApproval is the NeedsOperator kind of a step waiting for a second
// person's approval (the two-person rule, issue 13): the hook of the
// approval.waiting notification. The engine does not wait for approvals
// yet; when it does, emitting NeedsOperator{Kind: "approval"} (the value
// its state.Wait* constant should take) notifies the endpoints.
const waitApproval = "approval"

// flushTimeout bounds how long drbook waits, after a run, for its last
// notifications before it exits (deliveries still pending are recorded
// abandoned).
const flushTimeout = 5 * time.Second

// runNotifier is the notifier of one command's run(s): it turns engine
// events into notifications and records every delivery outcome in the
// run's record.
type runNotifier struct {
	n    *notify.Notifier
	db   *state.DB
	who  string
	mode string

	// Set from the engine's events (the engine calls Notify one event at
	// a time).
	runID, runbook, title string
	rto                   time.Duration
	rtoSince              time.Time
	targets               map[string][]string
	danger                map[string]bool
	failed                map[string][]string // step → failed targets' errors
	human                 time.Duration
	mu                    sync.Mutex
}

// startNotifier returns the engine hook that notifies the configured
// endpoints, or nil when there are none. Secrets are read now: an endpoint
// whose secret cannot be read is skipped with a warning on stderr (the run
// is not stopped for a notification).
func (a *app) startNotifier(db *state.DB, mode string) func(engine.Event) {
	if a.settings == nil || len(a.settings.Notify) == 0 || a.notifier != nil {
		if a.notifier != nil {
			return a.notifier.observe
		}
		return nil
	}
	var eps []notify.Endpoint
	for _, e := range a.settings.Notify {
		ep := notify.Endpoint{Name: e.Name, URL: e.URL, Format: e.Format, Kinds: e.Events, Timeout: e.Timeout.D(), RetryFor: e.RetryFor.D()}
		if e.Secret != nil {
			sec, err := e.Secret.Read()
			if err != nil {
				fmt.Fprintf(os.Stderr, "drbook: notification endpoint %s skipped: secret %s: %v\n", e.Name, e.Secret, err)
				continue
			}
			ep.Secret = []byte(sec)
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return nil
	}
	host, _ := os.Hostname()
	rn := &runNotifier{db: db, who: engine.Operator() + "@" + host, mode: mode,
		targets: map[string][]string{}, danger: map[string]bool{}, failed: map[string][]string{}}
	rn.n = notify.New(notify.Config{Endpoints: eps, Record: rn.record, Logger: a.logger,
		UserAgent: "drbook/" + buildinfo.Get().Version})
	a.notifier = rn
	return rn.observe
}

// flushNotify waits (at most flushTimeout) for the last deliveries and
// records their outcomes. Commands that run defer it after the database's
// Close, so it runs first.
func (a *app) flushNotify() {
	if a.notifier == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	a.notifier.n.Close(ctx)
	a.notifier = nil
}

// record appends a delivery outcome to the run's record as a note. It runs
// on the notifier's own goroutine, never on the step path.
func (rn *runNotifier) record(o notify.Outcome) {
	if o.RunID == "" || rn.db == nil {
		return
	}
	text := fmt.Sprintf("notification %s to %s: %s", o.Kind, o.Endpoint, o.Status)
	if o.Error != "" {
		text += " (" + o.Error + ")"
	}
	data := map[string]string{
		"kind": noteNotifyPrefix + o.Status, "endpoint": o.Endpoint, "event": o.Kind, "event_id": o.EventID,
		"delivery_id": o.DeliveryID, "attempts": strconv.Itoa(o.Attempts), "http_status": strconv.Itoa(o.HTTPStatus),
		"duration_ms": strconv.FormatInt(o.Duration.Milliseconds(), 10), "error": o.Error,
	}
	ev, err := state.NewEvent(o.RunID, state.EvNote, state.Note{Text: text, Data: data})
	if err != nil {
		return
	}
	ev.Time = time.Now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rn.db.Append(ctx, ev); err != nil {
		fmt.Fprintf(os.Stderr, "drbook: recording a notification outcome: %v\n", err)
	}
}

// observe turns the engine's events into notifications. Every text it
// sends is one the engine already masked.
func (rn *runNotifier) observe(ev engine.Event) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	switch e := ev.(type) {
	case engine.RunStarted:
		// A new run (the TUI may start several): nothing of the last one.
		rn.runID, rn.runbook, rn.title, rn.rto, rn.rtoSince = e.RunID, e.Runbook, e.Title, e.RTO, e.RTOSince
		rn.targets, rn.danger, rn.failed, rn.human = map[string][]string{}, map[string]bool{}, map[string][]string{}, 0
		status, msg := "running", "run started"
		if e.Resumed {
			status, msg = "resumed", "run resumed"
		}
		rn.send(notify.KindRunStarted, "", nil, status, msg, e.Time, nil)
	case engine.StepPending:
		rn.targets[e.StepID], rn.danger[e.StepID] = e.Targets, e.Danger
	case engine.NeedsOperator:
		switch {
		case e.Kind == waitApproval:
			rn.send(notify.KindApprovalWaiting, e.StepID, rn.targets[e.StepID], "waiting", e.Prompt, e.Time, nil)
		case e.Kind == state.WaitConfirm && rn.danger[e.StepID]:
			rn.send(notify.KindStepWaiting, e.StepID, rn.targets[e.StepID], "waiting", e.Prompt, e.Time, nil)
		}
	case engine.WaitOver:
		rn.human += e.Waited
	case engine.StepFinished:
		if e.Status == state.StatusFailed {
			msg := e.Target
			if e.Err != "" {
				msg += ": " + e.Err
			}
			rn.failed[e.StepID] = append(rn.failed[e.StepID], strings.TrimPrefix(msg, ": "))
		}
	case engine.StepDone:
		if e.Status == state.StatusFailed && !e.Restored {
			msg := strings.Join(rn.failed[e.StepID], "; ")
			if len(msg) > 1000 {
				msg = msg[:1000] + "…"
			}
			if msg == "" {
				msg = "step failed"
			}
			delete(rn.failed, e.StepID)
			rn.send(notify.KindStepFailed, e.StepID, rn.targets[e.StepID], "failed", msg, e.Time, nil)
		}
	case engine.RTOCrossed:
		r := &notify.RTO{BudgetMS: jsonapi.MS(e.Budget), ElapsedMS: jsonapi.MS(e.Elapsed), LeftMS: jsonapi.MS(e.Budget - e.Elapsed),
			Over: true, MachineMS: jsonapi.MS(e.Machine), HumanMS: jsonapi.MS(e.Human)}
		rn.send(notify.KindRTOCrossed, "", nil, "over-budget", fmt.Sprintf("RTO budget %s crossed", e.Budget), e.Time, r)
	case engine.RunFinished:
		kind := notify.KindRunFinished
		if e.Status == state.StatusInterrupted {
			kind = notify.KindRunInterrupted
		}
		msg := "run " + string(e.Status)
		if e.Err != "" {
			msg += ": " + e.Err
		}
		var r *notify.RTO
		if rn.rto > 0 {
			r = rn.rtoAt(e.Time)
			r.MachineMS, r.HumanMS = jsonapi.MS(e.Machine), jsonapi.MS(e.Human)
		}
		rn.send(kind, "", nil, string(e.Status), msg, e.Time, r)
	}
}

// rtoAt is the run against its budget at t.
func (rn *runNotifier) rtoAt(t time.Time) *notify.RTO {
	elapsed := t.Sub(rn.rtoSince)
	return &notify.RTO{BudgetMS: jsonapi.MS(rn.rto), ElapsedMS: jsonapi.MS(elapsed), LeftMS: jsonapi.MS(rn.rto - elapsed), Over: elapsed > rn.rto}
}

func (rn *runNotifier) send(kind, step string, targets []string, status, msg string, at time.Time, r *notify.RTO) {
	if r == nil && rn.rto > 0 {
		r = rn.rtoAt(at)
		r.HumanMS = jsonapi.MS(rn.human)
	}
	rn.n.Send(notify.Event{Kind: kind, Time: jsonapi.Time(at), RunID: rn.runID, Runbook: rn.runbook, Title: rn.title,
		Step: step, Targets: targets, Who: rn.who, Mode: rn.mode, Status: status, Message: msg, RTO: r})
}
