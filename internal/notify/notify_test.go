package notify

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiver is an HTTP server on 127.0.0.1 that keeps what it was sent.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivery
	answer func(n int) int // status for the n-th request (1-based)
	hang   chan struct{}   // when set, requests block until it closes (or the client gives up)
	n      atomic.Int64
}

type delivery struct {
	body   []byte
	header http.Header
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{answer: func(int) int { return 204 }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc.srv = &httptest.Server{Listener: ln, Config: &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(rc.n.Add(1))
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if rc.hang != nil {
			select {
			case <-rc.hang:
			case <-r.Context().Done():
				return
			}
		}
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{body: body, header: r.Header.Clone()})
		rc.mu.Unlock()
		w.WriteHeader(rc.answer(n))
	})}}
	rc.srv.Start()
	t.Cleanup(func() {
		if rc.hang != nil {
			select {
			case <-rc.hang:
			default:
				close(rc.hang)
			}
		}
		rc.srv.Close()
	})
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

type outcomes struct {
	mu  sync.Mutex
	all []Outcome
}

func (o *outcomes) record(x Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.all = append(o.all, x)
}

func (o *outcomes) list() []Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Outcome(nil), o.all...)
}

func closeWithin(t *testing.T, n *Notifier, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n.Close(ctx)
}

// TestDeliverySignedInOrder: events reach the receiver in the order sent,
// each signed (HMAC-SHA256 of the body, X-Hub-Signature-256), with its
// delivery id, kind and timestamp headers; the text format is {"text":…};
// an endpoint gets only the kinds it asked for.
func TestDeliverySignedInOrder(t *testing.T) {
	rcJSON, rcText := newReceiver(t), newReceiver(t)
	secret := []byte("hook-secret-for-the-test")
	var out outcomes
	n := New(Config{Endpoints: []Endpoint{
		{Name: "json", URL: rcJSON.srv.URL + "/hook", Secret: secret},
		{Name: "text", URL: rcText.srv.URL + "/chat", Secret: secret, Format: "text", Kinds: []string{KindStepFailed, KindRunFinished}},
	}, Record: out.record})
	kinds := []string{KindRunStarted, KindStepWaiting, KindStepFailed, KindRTOCrossed, KindRunFinished}
	at := time.Date(2026, 11, 29, 3, 4, 5, 0, time.UTC)
	for i, k := range kinds {
		n.Send(Event{Kind: k, Time: at.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano), RunID: "r1", Runbook: "rb", Status: "s", Who: "alice@host"})
	}
	closeWithin(t, n, 30*time.Second)
	got := rcJSON.deliveries()
	if len(got) != len(kinds) {
		t.Fatalf("json endpoint got %d deliveries, want %d", len(got), len(kinds))
	}
	ids := map[string]bool{}
	for i, d := range got {
		var ev Event
		if err := json.Unmarshal(d.body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != kinds[i] || d.header.Get(HeaderEvent) != kinds[i] || ev.Schema != Schema {
			t.Errorf("delivery %d is %s (header %s), want %s", i, ev.Kind, d.header.Get(HeaderEvent), kinds[i])
		}
		if !Verify(secret, d.body, d.header.Get(HeaderSignature)) || Verify([]byte("other"), d.body, d.header.Get(HeaderSignature)) {
			t.Errorf("delivery %d: signature %q does not verify", i, d.header.Get(HeaderSignature))
		}
		if id := d.header.Get(HeaderDelivery); len(id) != 32 || ids[id] {
			t.Errorf("delivery id %q missing or repeated", id)
		} else {
			ids[id] = true
		}
		if ts := d.header.Get(HeaderTimestamp); ts != strings.TrimSpace(jsonNum(at.Add(time.Duration(i)*time.Second).Unix())) {
			t.Errorf("timestamp header %q", ts)
		}
	}
	text := rcText.deliveries()
	if len(text) != 2 {
		t.Fatalf("text endpoint got %d deliveries, want the 2 kinds it asked for", len(text))
	}
	var chat map[string]any
	if err := json.Unmarshal(text[0].body, &chat); err != nil || len(chat) != 1 || !strings.HasPrefix(chat["text"].(string), "drbook step.failed: run r1 (rb)") {
		t.Errorf("text body %s", text[0].body)
	}
	if !Verify(secret, text[0].body, text[0].header.Get(HeaderSignature)) {
		t.Errorf("text delivery not signed")
	}
	for _, o := range out.list() {
		if o.Status != Delivered || o.Attempts != 1 || o.HTTPStatus != 204 {
			t.Errorf("outcome %+v", o)
		}
	}
	if len(out.list()) != len(kinds)+2 {
		t.Errorf("%d outcomes for %d deliveries", len(out.list()), len(kinds)+2)
	}
}

func jsonNum(v int64) string { b, _ := json.Marshal(v); return string(b) }

// TestRetryAndFailure: a 500 is retried with backoff until it succeeds; a
// 400 is not retried; an endpoint that keeps failing is given up after
// retry_for; an unreachable one likewise; errors never show the URL's
// path (a token).
func TestRetryAndFailure(t *testing.T) {
	flaky, refusing, broken := newReceiver(t), newReceiver(t), newReceiver(t)
	flaky.answer = func(n int) int {
		if n < 3 {
			return 500
		}
		return 200
	}
	refusing.answer = func(int) int { return 400 }
	broken.answer = func(int) int { return 503 }
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String() + "/services/SECRET-TOKEN"
	ln.Close()
	var out outcomes
	n := New(Config{Endpoints: []Endpoint{
		{Name: "flaky", URL: flaky.srv.URL},
		{Name: "refusing", URL: refusing.srv.URL},
		{Name: "broken", URL: broken.srv.URL + "/services/SECRET-TOKEN", RetryFor: 1500 * time.Millisecond},
		{Name: "dead", URL: deadURL, RetryFor: time.Second},
	}, Record: out.record})
	n.Send(Event{Kind: KindRunStarted, RunID: "r1"})
	closeWithin(t, n, 30*time.Second)
	by := map[string]Outcome{}
	for _, o := range out.list() {
		by[o.Endpoint] = o
	}
	if o := by["flaky"]; o.Status != Delivered || o.Attempts != 3 {
		t.Errorf("flaky: %+v, want delivered on the 3rd attempt", o)
	}
	if o := by["refusing"]; o.Status != Failed || o.Attempts != 1 || o.HTTPStatus != 400 {
		t.Errorf("refusing: %+v, want failed after 1 attempt", o)
	}
	if o := by["broken"]; o.Status != Failed || o.Attempts < 3 || o.HTTPStatus != 503 || o.Duration > 10*time.Second {
		t.Errorf("broken: %+v, want failed after several attempts within retry_for", o)
	}
	if o := by["dead"]; o.Status != Failed || o.Attempts < 2 || o.HTTPStatus != 0 {
		t.Errorf("dead: %+v", o)
	}
	for _, o := range out.list() {
		if strings.Contains(o.Error, "SECRET-TOKEN") {
			t.Errorf("outcome error shows the URL's token: %q", o.Error)
		}
	}
}

// TestHangingEndpointNeverBlocks: Send returns at once while an endpoint
// hangs; a full queue drops (with an outcome) instead of waiting; Close
// gives up at its deadline and records the pending deliveries abandoned.
func TestHangingEndpointNeverBlocks(t *testing.T) {
	rc := newReceiver(t)
	rc.hang = make(chan struct{})
	var out outcomes
	n := New(Config{Endpoints: []Endpoint{{Name: "hang", URL: rc.srv.URL, Timeout: time.Minute}}, QueueSize: 4, Record: out.record})
	start := time.Now()
	const sent = 50
	for i := 0; i < sent; i++ {
		n.Send(Event{Kind: KindStepFailed, RunID: "r1"})
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("50 sends to a hanging endpoint took %s", d)
	}
	closeStart := time.Now()
	closeWithin(t, n, 500*time.Millisecond)
	if d := time.Since(closeStart); d > 10*time.Second {
		t.Errorf("Close took %s past its 500ms deadline", d)
	}
	count := map[string]int{}
	for _, o := range out.list() {
		count[o.Status]++
	}
	if count[Dropped] == 0 || count[Abandoned] == 0 || count[Dropped]+count[Abandoned] != sent || count[Delivered] != 0 {
		t.Errorf("outcomes %v: want every one of %d dropped or abandoned", count, sent)
	}
	// Send after Close is ignored, not a panic.
	n.Send(Event{Kind: KindRunFinished})
}
