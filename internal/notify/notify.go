// Package notify delivers run notifications to HTTP endpoints in the
// background. Its one job: take an event, POST it as signed JSON to every
// endpoint that wants it, retry with exponential backoff for a bounded time,
// and report one outcome per delivery. Nothing it does blocks the caller:
// Send only queues (a full queue drops the event, and says so in an
// outcome), and a slow, hanging, failing or unreachable endpoint only delays
// its own later deliveries. docs/notifications.md describes the payload, the
// headers and how a receiver verifies a delivery.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of notification (Event.Kind).
const (
	KindRunStarted     = "run.started"
	KindStepWaiting    = "step.waiting" // a danger step waits for its confirmation
	KindStepFailed     = "step.failed"
	KindRTOCrossed     = "rto.crossed"
	KindRunInterrupted = "run.interrupted"
	KindRunFinished    = "run.finished"
	// KindRunHandover: another person took the run over (a resume by
	// someone else; the record's run.handover).
	KindRunHandover = "run.handover"
	// KindApprovalWaiting is for a step waiting for a second person's
	// approval (the two-person rule, docs/approvals.md): sent when the run
	// records approval.requested and asks (a Question of kind approval).
	KindApprovalWaiting = "approval.waiting"
)

// Headers of a delivery.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body
	// with the endpoint's secret (the header GitHub webhooks use).
	HeaderSignature = "X-Hub-Signature-256"
	// HeaderDelivery is the delivery's id, the same on every retry.
	HeaderDelivery = "X-Drbook-Delivery"
	// HeaderEvent is the event's kind.
	HeaderEvent = "X-Drbook-Event"
	// HeaderTimestamp is the event's time in Unix seconds (also in the
	// signed body as "time").
	HeaderTimestamp = "X-Drbook-Timestamp"
)

// Schema is the value of Event.Schema.
const Schema = "drbook/v1"

// Event is the JSON body of a notification. It never holds a secret: its
// texts are the run's masked texts.
type Event struct {
	Schema string `json:"schema"`
	// ID identifies the event (the same for every endpoint); Kind is one
	// of the Kind* constants.
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Time is RFC 3339 UTC.
	Time    string `json:"time"`
	RunID   string `json:"run_id"`
	Runbook string `json:"runbook"`
	Title   string `json:"title,omitempty"`
	// Step and Targets: the step concerned and its targets (nodes or
	// items), if any.
	Step    string   `json:"step,omitempty"`
	Targets []string `json:"targets,omitempty"`
	// Who runs drbook (user@host); Mode interactive, headless or rehearsal.
	Who  string `json:"who"`
	Mode string `json:"mode,omitempty"`
	// Status: running, resumed, waiting, failed, over-budget, interrupted,
	// succeeded, aborted.
	Status string `json:"status"`
	// Message says what happened in a sentence (masked).
	Message string `json:"message,omitempty"`
	// RTO is the run against its budget, when it has one.
	RTO *RTO `json:"rto,omitempty"`
}

// RTO is where a run stands against its RTO budget.
type RTO struct {
	BudgetMS int64 `json:"budget_ms"`
	// ElapsedMS since the recovery clock started; LeftMS is the budget
	// minus it (negative: over by).
	ElapsedMS int64 `json:"elapsed_ms"`
	LeftMS    int64 `json:"left_ms"`
	Over      bool  `json:"over"`
	// MachineMS and HumanMS split the run's time so far into machine time
	// and time waiting on the operator (set when known).
	MachineMS int64 `json:"machine_ms,omitempty"`
	HumanMS   int64 `json:"human_ms,omitempty"`
}

// Endpoint is one receiver, resolved: its secret read.
type Endpoint struct {
	Name string
	URL  string
	// Secret signs each body; empty: deliveries are unsigned.
	Secret []byte
	// Format is "json" (the Event) or "text" ({"text": "..."}).
	Format string
	// Kinds the endpoint wants; empty: all.
	Kinds []string
	// Timeout bounds one attempt (default 5s); RetryFor how long a
	// delivery is retried (default 2m).
	Timeout  time.Duration
	RetryFor time.Duration
}

func (e *Endpoint) wants(kind string) bool {
	if len(e.Kinds) == 0 {
		return true
	}
	for _, k := range e.Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Outcome statuses.
const (
	Delivered = "delivered"
	// Failed: every attempt failed until RetryFor ran out, or the
	// endpoint refused the delivery for good (a 4xx other than 408/429).
	Failed = "failed"
	// Dropped: the endpoint's queue was full; the event was not sent.
	Dropped = "dropped"
	// Abandoned: drbook exited (Close's deadline) before the delivery
	// succeeded or ran out of retries.
	Abandoned = "abandoned"
)

// Outcome is how one delivery (one event to one endpoint) ended.
type Outcome struct {
	RunID      string
	Endpoint   string
	EventID    string
	Kind       string
	DeliveryID string
	Status     string
	Attempts   int
	// HTTPStatus is the last answer's status code (0: no answer).
	HTTPStatus int
	// Error says why the last attempt failed; it never holds the URL
	// beyond its host (webhook URLs carry tokens).
	Error    string
	Duration time.Duration
}

// Config configures a Notifier.
type Config struct {
	Endpoints []Endpoint
	// QueueSize bounds each endpoint's queue (default 64).
	QueueSize int
	// Record receives every outcome, from one goroutine of the notifier,
	// in the order they happen; it may be slow (it never delays a Send).
	Record func(Outcome)
	// Client is the HTTP client (default: one without redirects).
	Client *http.Client
	Logger *slog.Logger
	// UserAgent is sent with every delivery.
	UserAgent string
}

// Notifier delivers events in the background.
type Notifier struct {
	cfg      Config
	queues   []chan item
	outcomes chan Outcome
	lost     atomic.Int64
	ctx      context.Context
	cancel   context.CancelFunc
	workers  sync.WaitGroup
	recorder sync.WaitGroup
	mu       sync.RWMutex
	closed   bool
}

type item struct {
	ev Event
}

// outcomeBuffer bounds the outcomes waiting for Record.
const outcomeBuffer = 1024

// New starts a notifier: one worker per endpoint (so each endpoint gets
// its events in order) and one goroutine that hands outcomes to Record.
func New(cfg Config) *Notifier {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{cfg: cfg, outcomes: make(chan Outcome, outcomeBuffer), ctx: ctx, cancel: cancel}
	for i := range cfg.Endpoints {
		ep := &n.cfg.Endpoints[i]
		if ep.Timeout <= 0 {
			ep.Timeout = 5 * time.Second
		}
		if ep.RetryFor <= 0 {
			ep.RetryFor = 2 * time.Minute
		}
		if ep.Format == "" {
			ep.Format = "json"
		}
		q := make(chan item, cfg.QueueSize)
		n.queues = append(n.queues, q)
		n.workers.Add(1)
		go n.work(ep, q)
	}
	n.recorder.Add(1)
	go n.record()
	return n
}

// Send queues ev for every endpoint that wants its kind and returns at
// once. An endpoint whose queue is full gets a Dropped outcome instead.
// Send after Close does nothing.
func (n *Notifier) Send(ev Event) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return
	}
	if ev.Schema == "" {
		ev.Schema = Schema
	}
	if ev.ID == "" {
		ev.ID = newID()
	}
	for i := range n.cfg.Endpoints {
		ep := &n.cfg.Endpoints[i]
		if !ep.wants(ev.Kind) {
			continue
		}
		select {
		case n.queues[i] <- item{ev: ev}:
		default:
			n.outcome(Outcome{RunID: ev.RunID, Endpoint: ep.Name, EventID: ev.ID, Kind: ev.Kind, Status: Dropped,
				Error: fmt.Sprintf("queue full (%d events waiting)", cap(n.queues[i]))})
		}
	}
}

// Close stops accepting events and waits until every queued delivery has
// ended or ctx is done; deliveries still pending then are Abandoned. Every
// outcome has been handed to Record when Close returns.
func (n *Notifier) Close(ctx context.Context) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	for _, q := range n.queues {
		close(q)
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel() // in-flight attempts and backoffs end now
		<-done
	}
	n.cancel()
	close(n.outcomes)
	n.recorder.Wait()
	if lost := n.lost.Load(); lost > 0 {
		n.cfg.Logger.Warn("notification outcomes not recorded: too many at once", "count", lost)
	}
}

func (n *Notifier) outcome(o Outcome) {
	select {
	case n.outcomes <- o:
	default:
		n.lost.Add(1)
	}
}

func (n *Notifier) record() {
	defer n.recorder.Done()
	for o := range n.outcomes {
		if n.cfg.Record != nil {
			n.cfg.Record(o)
		}
	}
}

func (n *Notifier) work(ep *Endpoint, q chan item) {
	defer n.workers.Done()
	for it := range q {
		if n.ctx.Err() != nil {
			n.outcome(Outcome{RunID: it.ev.RunID, Endpoint: ep.Name, EventID: it.ev.ID, Kind: it.ev.Kind, Status: Abandoned,
				Error: "drbook exited before the delivery was attempted"})
			continue
		}
		n.outcome(n.deliver(ep, it.ev))
	}
}

// Body returns the bytes POSTed to an endpoint of format for ev.
func Body(ev Event, format string) ([]byte, error) {
	if format == "text" {
		return json.Marshal(struct {
			Text string `json:"text"`
		}{Text: Text(ev)})
	}
	return json.Marshal(ev)
}

// Sign returns the X-Hub-Signature-256 value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig (an X-Hub-Signature-256 value) signs body
// under secret, in constant time.
func Verify(secret, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(sig))
}

// deliver POSTs ev to ep, retrying with exponential backoff (250 ms
// doubling to 30 s, with jitter) until it is accepted (2xx), refused for
// good (4xx but 408 and 429), or ep.RetryFor has passed.
func (n *Notifier) deliver(ep *Endpoint, ev Event) Outcome {
	o := Outcome{RunID: ev.RunID, Endpoint: ep.Name, EventID: ev.ID, Kind: ev.Kind, DeliveryID: newID()}
	start := time.Now()
	body, err := Body(ev, ep.Format)
	if err != nil {
		o.Status, o.Error = Failed, "encode: "+err.Error()
		return o
	}
	deadline := start.Add(ep.RetryFor)
	backoff := 250 * time.Millisecond
	for {
		o.Attempts++
		status, retry, err := n.attempt(ep, ev, o.DeliveryID, body)
		o.HTTPStatus = status
		if err == nil {
			o.Status, o.Error, o.Duration = Delivered, "", time.Since(start)
			return o
		}
		o.Error = cleanError(err, ep.URL)
		if n.ctx.Err() != nil {
			o.Status, o.Duration = Abandoned, time.Since(start)
			o.Error = "drbook exited during the delivery: " + o.Error
			return o
		}
		wait := jitter(backoff)
		if !retry || time.Now().Add(wait).After(deadline) {
			o.Status, o.Duration = Failed, time.Since(start)
			return o
		}
		select {
		case <-time.After(wait):
		case <-n.ctx.Done():
			o.Status, o.Duration = Abandoned, time.Since(start)
			o.Error = "drbook exited while retrying: " + o.Error
			return o
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// errRefused marks an answer that retrying cannot change.
var errRefused = errors.New("refused")

func (n *Notifier) attempt(ep *Endpoint, ev Event, delivery string, body []byte) (status int, retry bool, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, ep.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	if n.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", n.cfg.UserAgent)
	}
	req.Header.Set(HeaderDelivery, delivery)
	req.Header.Set(HeaderEvent, ev.Kind)
	if t, perr := time.Parse(time.RFC3339Nano, ev.Time); perr == nil {
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(t.Unix(), 10))
	}
	if len(ep.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(ep.Secret, body))
	}
	resp, err := n.cfg.Client.Do(req) // #nosec G704 -- the URL is the operator's configured endpoint
	if err != nil {
		return 0, n.ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, false, nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return resp.StatusCode, true, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, false, fmt.Errorf("%w: HTTP %d", errRefused, resp.StatusCode)
}

// cleanError is err's text without the endpoint's URL (which may carry a
// token): the URL error's cause, the URL itself masked if it remains.
func cleanError(err error, rawURL string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "Client.Timeout") {
		msg = "timed out"
	}
	if rawURL != "" {
		msg = strings.ReplaceAll(msg, rawURL, MaskURL(rawURL))
	}
	return msg
}

// MaskURL keeps a URL's scheme and host and masks the rest.
func MaskURL(raw string) string {
	p, err := url.Parse(raw)
	if err != nil || p.Host == "" {
		return "••••••"
	}
	out := p.Scheme + "://" + p.Host
	if (p.Path != "" && p.Path != "/") || p.RawQuery != "" {
		out += "/••••••"
	}
	return out
}

func jitter(d time.Duration) time.Duration {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return d + d*time.Duration(b[0])/1024 // up to +25 %
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Text is the one-line message of ev for chat endpoints.
func Text(ev Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "drbook %s: run %s (%s)", ev.Kind, ev.RunID, ev.Runbook)
	if ev.Step != "" {
		fmt.Fprintf(&b, " step %s", ev.Step)
	}
	if len(ev.Targets) > 0 {
		fmt.Fprintf(&b, " on %s", strings.Join(ev.Targets, ", "))
	}
	fmt.Fprintf(&b, ": %s", ev.Status)
	if ev.Message != "" {
		fmt.Fprintf(&b, " — %s", ev.Message)
	}
	if r := ev.RTO; r != nil {
		if r.Over {
			fmt.Fprintf(&b, " · RTO OVER budget %s by %s", ms(r.BudgetMS), ms(-r.LeftMS))
		} else {
			fmt.Fprintf(&b, " · RTO %s of %s, %s left", ms(r.ElapsedMS), ms(r.BudgetMS), ms(r.LeftMS))
		}
	}
	if ev.Who != "" {
		fmt.Fprintf(&b, " · by %s", ev.Who)
	}
	return b.String()
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).Round(time.Second).String() }
