package main

import (
	"context"
	"errors"
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
	"github.com/drbook/drbook/state/runlog"
)

// Kinds of the record's notes about notification deliveries (Note.Data
// "kind"): one note per delivery outcome.
const noteNotifyPrefix = "notify."

// waitApproval is the Question kind of a step waiting for a second
// person's approval (the two-person rule): the approval.waiting
// notification.
const waitApproval = "approval"

// runNotifier is the engine's notification hook (engine.Notifier) for the
// runs of one command: it turns the run's events into notifications, and
// records every delivery outcome through the engine (so the run's record,
// and its signed segment end, holds them all).
type runNotifier struct {
	eps       []notify.Endpoint
	a         *app
	who, mode string

	mu   sync.Mutex
	n    *notify.Notifier // the bound run's deliveries
	fold *runlog.Folder
	// Of the bound run: its targets and danger flags (from step.pending),
	// and how many failed executions of each step were already notified.
	targets  map[string][]string
	danger   map[string]bool
	notified map[string]int
}

var _ engine.Notifier = (*runNotifier)(nil)

// startNotifier returns the engine hook that notifies the configured
// endpoints, or nil when there are none. Secrets are read now: an endpoint
// whose secret cannot be read is skipped with a warning on stderr (the run
// is not stopped for a notification).
func (a *app) startNotifier(mode string) engine.Notifier {
	if a.notifier != nil {
		return a.notifier
	}
	if a.settings == nil || len(a.settings.Notify) == 0 {
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
	a.notifier = &runNotifier{eps: eps, a: a, who: engine.Operator(), mode: mode}
	return a.notifier
}

// flushNotify ends what a command's runs left undelivered (the engine
// flushes each run at its end; this covers a run that never started).
// Commands defer it after the database's Close, so it runs first.
func (a *app) flushNotify() {
	if a.notifier == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), engine.NotifyFlushTimeout)
	defer cancel()
	a.notifier.Flush(ctx)
	a.notifier = nil
}

// Bind implements engine.Notifier: a notifier of its own for each run.
func (rn *runNotifier) Bind(runID string, note func(context.Context, state.Note) error) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.n != nil {
		ctx, cancel := context.WithTimeout(context.Background(), engine.NotifyFlushTimeout)
		rn.n.Close(ctx)
		cancel()
	}
	rn.fold = runlog.NewFolder()
	rn.fold.DropLogs()
	rn.targets, rn.danger, rn.notified = map[string][]string{}, map[string]bool{}, map[string]int{}
	rn.n = notify.New(notify.Config{Endpoints: rn.eps, Logger: rn.a.logger, UserAgent: "drbook/" + buildinfo.Get().Version,
		Record: func(o notify.Outcome) { recordOutcome(note, o) }})
}

// Flush implements engine.Notifier.
func (rn *runNotifier) Flush(ctx context.Context) {
	rn.mu.Lock()
	n := rn.n
	rn.n = nil
	rn.mu.Unlock()
	if n != nil {
		n.Close(ctx)
	}
}

// recordOutcome appends a delivery outcome to the run's record as a note,
// through the engine. It runs on the notifier's own goroutine, never on the
// step path.
func recordOutcome(note func(context.Context, state.Note) error, o notify.Outcome) {
	if o.RunID == "" || note == nil {
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := note(ctx, state.Note{Text: text, Data: data}); err != nil && !errors.Is(err, engine.ErrNotifyFlushed) {
		fmt.Fprintf(os.Stderr, "drbook: recording a notification outcome: %v\n", err)
	}
}

// Notify implements engine.Notifier: it turns the run's events into
// notifications. Every text it sends is one the engine already masked (the
// record's, or a question's).
func (rn *runNotifier) Notify(ev runlog.Event) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.n == nil {
		return
	}
	switch e := ev.(type) {
	case runlog.StepPending:
		rn.targets[e.StepID], rn.danger[e.StepID] = e.Targets, e.Danger
	case runlog.Question:
		switch {
		case e.Kind == waitApproval:
			rn.send(notify.KindApprovalWaiting, e.StepID, rn.targets[e.StepID], "waiting", e.Prompt, e.Time, nil)
		case e.Kind == state.WaitConfirm && rn.danger[e.StepID]:
			rn.send(notify.KindStepWaiting, e.StepID, rn.targets[e.StepID], "waiting", e.Prompt, e.Time, nil)
		}
	case runlog.Recorded:
		rn.fold.Apply(e.Event)
		if !e.Prior {
			rn.recorded(e.Event)
		}
	}
}

// recorded notifies what an appended event of the record calls for.
func (rn *runNotifier) recorded(ev state.Event) {
	switch ev.Type {
	case state.EvRunCreated:
		rn.send(notify.KindRunStarted, "", nil, "running", "run started", ev.Time, nil)
	case state.EvRunResumed:
		rn.send(notify.KindRunStarted, "", nil, "resumed", "run resumed", ev.Time, nil)
	case state.EvRunHandover:
		var p state.RunHandover
		if ev.Decode(&p) == nil {
			rn.send(notify.KindRunHandover, "", nil, "running", fmt.Sprintf("%s took the run over from %s", p.To.String(), p.From.String()), ev.Time, nil)
		}
	case state.EvStepFinished:
		// One notification when the step's executions have all ended and
		// one failed (a later failed attempt notifies again).
		st, execs, ok := rn.fold.Step(ev.StepID)
		if !ok || st.Status != state.StatusFailed {
			return
		}
		var msgs []string
		failed := 0
		for _, x := range execs {
			if x.Status != state.StatusFailed {
				continue
			}
			failed++
			msg := x.Target
			if x.Error != "" {
				msg += ": " + x.Error
			}
			msgs = append(msgs, strings.TrimPrefix(msg, ": "))
		}
		if failed <= rn.notified[ev.StepID] {
			return
		}
		rn.notified[ev.StepID] = failed
		msg := strings.Join(msgs, "; ")
		if len(msg) > 1000 {
			msg = msg[:1000] + "…"
		}
		if msg == "" {
			msg = "step failed"
		}
		rn.send(notify.KindStepFailed, ev.StepID, rn.targets[ev.StepID], "failed", msg, ev.Time, nil)
	case state.EvNote:
		var n state.Note
		if ev.Decode(&n) != nil || n.Data["kind"] != engine.NoteRTOCrossed {
			return
		}
		num := func(k string) int64 { v, _ := strconv.ParseInt(n.Data[k], 10, 64); return v }
		r := &notify.RTO{BudgetMS: num("budget_ms"), ElapsedMS: num("elapsed_ms"), LeftMS: num("budget_ms") - num("elapsed_ms"),
			Over: true, MachineMS: num("machine_ms"), HumanMS: num("human_ms")}
		rn.send(notify.KindRTOCrossed, "", nil, "over-budget", fmt.Sprintf("RTO budget %s crossed", time.Duration(r.BudgetMS)*time.Millisecond), ev.Time, r)
	case state.EvRunFinished:
		var p state.RunFinished
		if ev.Decode(&p) != nil {
			return
		}
		kind := notify.KindRunFinished
		if p.Status == state.StatusInterrupted {
			kind = notify.KindRunInterrupted
		}
		msg := "run " + string(p.Status)
		if p.Error != "" {
			msg += ": " + p.Error
		}
		var r *notify.RTO
		if rto := rn.fold.View().Header.RTO; rto != nil {
			r = rtoAt(rto, ev.Time)
			r.MachineMS, r.HumanMS = p.MachineMS, p.HumanMS
		}
		rn.send(kind, "", nil, string(p.Status), msg, ev.Time, r)
	}
}

// rtoAt is the run against its budget at t.
func rtoAt(b *state.RTOBudget, t time.Time) *notify.RTO {
	budget := time.Duration(b.BudgetMS) * time.Millisecond
	elapsed := t.Sub(b.Since)
	return &notify.RTO{BudgetMS: b.BudgetMS, ElapsedMS: jsonapi.MS(elapsed), LeftMS: jsonapi.MS(budget - elapsed), Over: elapsed > budget}
}

func (rn *runNotifier) send(kind, step string, targets []string, status, msg string, at time.Time, r *notify.RTO) {
	v := rn.fold.View()
	h := v.Header
	if r == nil && h.RTO != nil {
		// Operator time so far: every recorded wait for a person.
		r = rtoAt(h.RTO, at)
		for _, w := range v.Waits {
			r.HumanMS += w.DurationMS
		}
		r.MachineMS = max(0, r.ElapsedMS-r.HumanMS)
	}
	rn.n.Send(notify.Event{Kind: kind, Time: jsonapi.Time(at), RunID: h.RunID, Runbook: h.RunbookName, Title: h.RunbookTitle,
		Step: step, Targets: targets, Who: rn.who, Mode: rn.mode, Status: status, Message: msg, RTO: r})
}
