package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/notify"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps/transport"
)

// hookServer is an HTTP receiver on 127.0.0.1 that keeps every delivery.
type hookServer struct {
	url    string
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	status int
	hang   chan struct{}
}

func startHook(t testing.TB, status int, hang bool) *hookServer {
	t.Helper()
	h := &hookServer{status: status}
	if hang {
		h.hang = make(chan struct{})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if h.hang != nil {
			select {
			case <-h.hang:
			case <-r.Context().Done():
			}
			return
		}
		h.mu.Lock()
		h.bodies, h.heads = append(h.bodies, body), append(h.heads, r.Header.Clone())
		h.mu.Unlock()
		w.WriteHeader(h.status)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		if h.hang != nil {
			close(h.hang)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	h.url = "http://" + ln.Addr().String() + "/hook"
	return h
}

func (h *hookServer) got() ([][]byte, []http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...), append([]http.Header(nil), h.heads...)
}

// notifyRunbook has a secret input, a slow first step that crosses the
// 500ms RTO budget, a danger step and a step that fails.
const notifyRunbook = `apiVersion: drbook/v1
kind: Runbook
name: notify-e2e
title: Notifications end to end
rto: 500ms
inputs:
  token: {type: secret, prompt: Token}
steps:
  - id: prepare
    run: shell
    on: node1
    with:
      command: 'echo "using $T"; sleep 1.2'
      env: {T: "{{ inputs.token }}"}
  - id: wipe
    run: shell
    on: node1
    danger: true
    with: {command: 'echo wiping'}
  - id: broken
    run: shell
    on: node1
    with:
      command: 'echo "failing with $T" >&2; exit 3'
      env: {T: "{{ inputs.token }}"}
`

// recordNotes returns the notes of the run's record whose data kind starts
// with prefix, read with drbook replay -o json.
func recordNotes(t *testing.T, env []string, db, runID, prefix string) []map[string]string {
	t.Helper()
	r := drbook(t, env, "--db", db, "replay", runID, "--format", "json")
	if r.code != 0 {
		t.Fatalf("replay: %d %s", r.code, r.stderr)
	}
	var doc struct {
		Events []struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("replay JSON: %v", err)
	}
	var out []map[string]string
	for _, ev := range doc.Events {
		if ev.Type != string(state.EvNote) {
			continue
		}
		var n state.Note
		if err := json.Unmarshal(ev.Data, &n); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(n.Data["kind"], prefix) {
			out = append(out, n.Data)
		}
	}
	return out
}

// TestNotifyRunEvents: a receiver on loopback gets the events of a run
// with an RTO crossing, a danger step and a failure, in order, each with a
// valid signature; no body holds the secret input or the signing secret;
// a chat endpoint gets {"text": ...}; the record holds one delivered note
// per delivery.
func TestNotifyRunEvents(t *testing.T) {
	l := newLocalLab(t)
	const token = "tok-9f8e7d6c5b4a"
	const hmacKey = "hmac-key-0123456789"
	jsonHook, textHook := startHook(t, 200, false), startHook(t, 204, false)
	rb := l.write(t, "rb.yaml", notifyRunbook)
	answers := l.write(t, "answers.yaml", "inputs:\n  token: {env: NOTIFY_TEST_TOKEN}\n")
	cfg := l.write(t, "config.yaml", "notify:\n  - name: ops\n    url: "+jsonHook.url+"\n    secret: {env: NOTIFY_TEST_HMAC}\n"+
		"  - name: chat\n    url: "+textHook.url+"\n    format: text\n    secret: {env: NOTIFY_TEST_HMAC}\n")
	env := configEnv(l.dir, "NOTIFY_TEST_TOKEN="+token, "NOTIFY_TEST_HMAC="+hmacKey)
	r := drbook(t, env, "--config", cfg, "--db", l.db, "run", rb, "-i", l.inv, "--answers", answers, "--headless", "--yes")
	if r.code != 1 || !strings.Contains(r.stdout, "OVER BUDGET") {
		t.Fatalf("run: exit %d (want 1, the step failed); stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	bodies, heads := jsonHook.got()
	var kinds []string
	var runID string
	for i, b := range bodies {
		if !notify.Verify([]byte(hmacKey), b, heads[i].Get(notify.HeaderSignature)) {
			t.Errorf("delivery %d: bad signature %q", i, heads[i].Get(notify.HeaderSignature))
		}
		var ev notify.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("body %d: %v\n%s", i, err, b)
		}
		kinds = append(kinds, ev.Kind)
		runID = ev.RunID
		if ev.Runbook != "notify-e2e" || ev.Who == "" || ev.Status == "" || ev.RTO == nil || ev.RTO.BudgetMS != 500 {
			t.Errorf("delivery %d lacks run facts: %s", i, b)
		}
		switch ev.Kind {
		case notify.KindStepWaiting:
			if ev.Step != "wipe" || len(ev.Targets) != 1 || ev.Targets[0] != "node1" {
				t.Errorf("step.waiting: %s", b)
			}
		case notify.KindStepFailed:
			if ev.Step != "broken" || ev.Status != "failed" {
				t.Errorf("step.failed: %s", b)
			}
		case notify.KindRTOCrossed:
			if !ev.RTO.Over || ev.RTO.ElapsedMS < 500 {
				t.Errorf("rto.crossed: %s", b)
			}
		case notify.KindRunFinished:
			if ev.Status != "failed" || !ev.RTO.Over {
				t.Errorf("run.finished: %s", b)
			}
		}
	}
	want := []string{notify.KindRunStarted, notify.KindRTOCrossed, notify.KindStepWaiting, notify.KindStepFailed, notify.KindRunFinished}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v in order", kinds, want)
	}
	texts, theads := textHook.got()
	if len(texts) != len(want) {
		t.Errorf("chat endpoint got %d deliveries", len(texts))
	}
	for i, b := range texts {
		var chat map[string]string
		if err := json.Unmarshal(b, &chat); err != nil || len(chat) != 1 || !strings.HasPrefix(chat["text"], "drbook "+want[i]) {
			t.Errorf("chat body %d: %s", i, b)
		}
		if !notify.Verify([]byte(hmacKey), b, theads[i].Get(notify.HeaderSignature)) {
			t.Errorf("chat delivery %d: bad signature", i)
		}
	}
	for _, b := range append(bodies, texts...) {
		for _, secret := range []string{token, hmacKey} {
			if strings.Contains(string(b), secret) {
				t.Errorf("a body holds a secret: %s", b)
			}
		}
	}
	notes := recordNotes(t, env, l.db, runID, "notify.")
	if len(notes) != 2*len(want) {
		t.Errorf("record holds %d delivery notes, want %d", len(notes), 2*len(want))
	}
	for _, n := range notes {
		if n["kind"] != "notify.delivered" || n["attempts"] != "1" {
			t.Errorf("delivery note %v", n)
		}
	}
	if rto := recordNotes(t, env, l.db, runID, engine.NoteRTOCrossed); len(rto) != 1 || rto[0]["budget_ms"] != "500" {
		t.Errorf("record's rto.crossed notes: %v", rto)
	}
	if v := drbook(t, env, "--db", l.db, "replay", runID, "--verify"); v.code != 0 {
		t.Errorf("the record with delivery notes does not verify: %d %s", v.code, v.stderr)
	}
}

// TestNotifyFailingEndpoints: an endpoint that hangs and one that answers
// 500 do not fail the run; the record holds their failed deliveries.
func TestNotifyFailingEndpoints(t *testing.T) {
	l := newLocalLab(t)
	hang, fail := startHook(t, 200, true), startHook(t, 500, false)
	rb := l.write(t, "rb.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: quick\nsteps:\n  - id: a\n    run: shell\n    on: node1\n    with: {command: 'echo a'}\n  - id: b\n    run: shell\n    on: node1\n    with: {command: 'echo b'}\n")
	cfg := l.write(t, "config.yaml", "notify:\n  - name: hang\n    url: "+hang.url+"\n    timeout: 300ms\n    retry_for: 1s\n  - name: fail\n    url: "+fail.url+"\n    retry_for: 1s\n")
	env := configEnv(l.dir)
	r := drbook(t, env, "--config", cfg, "--db", l.db, "run", rb, "-i", l.inv, "--headless", "-o", "json")
	if r.code != 0 {
		t.Fatalf("run with failing endpoints: exit %d\n%s", r.code, r.stderr)
	}
	runs := l.runs(t)
	if len(runs) != 1 || runs[0].Status != "succeeded" {
		t.Fatalf("runs: %+v", runs)
	}
	notes := recordNotes(t, env, l.db, runs[0].ID, "notify.")
	per := map[string]int{}
	for _, n := range notes {
		if n["kind"] == "notify.delivered" {
			t.Errorf("a delivery to a failing endpoint is recorded delivered: %v", n)
		}
		per[n["endpoint"]+" "+n["event"]]++
		if n["endpoint"] == "fail" && (n["http_status"] != "500" || n["attempts"] == "1") {
			t.Errorf("500 endpoint note: %v (want retried, HTTP 500)", n)
		}
	}
	for _, ep := range []string{"hang", "fail"} {
		for _, k := range []string{notify.KindRunStarted, notify.KindRunFinished} {
			if per[ep+" "+k] != 1 {
				t.Errorf("record holds %d outcomes of %s to %s, want 1 (notes %v)", per[ep+" "+k], k, ep, notes)
			}
		}
	}
}

// BenchmarkRunNotify runs the same 10-step local run without
// notifications, with an endpoint that hangs, and with one that answers
// 500 — in turn within each iteration, so that the machine's changing load
// falls on all three alike — and reports each one's run time (engine.Start
// to its run.finished) as none-ms/run, hanging-ms/run and failing-ms/run: a
// notifier must not slow the steps, so the three are alike. The wait for
// the last deliveries after run.finished (engine.NotifyFlushTimeout at
// most, before the segment is signed) is reported as *-exit-ms/run.
func BenchmarkRunNotify(b *testing.B) {
	var src strings.Builder
	src.WriteString("apiVersion: drbook/v1\nkind: Runbook\nname: bench\nsteps:\n")
	for i := 0; i < 10; i++ {
		src.WriteString("  - id: s" + string(rune('a'+i)) + "\n    run: shell\n    on: node1\n    with: {command: 'true'}\n")
	}
	dir := b.TempDir()
	inv, err := runbooks.ParseInventory("inv.yaml", []byte("apiVersion: drbook/v1\nkind: Inventory\nnodes:\n  - name: node1\n    transport: local\n"))
	if err != nil {
		b.Fatal(err)
	}
	reg := newRegistry()
	rb, err := runbooks.LoadRunbook("bench.yaml", []byte(src.String()), reg, inv)
	if err != nil {
		b.Fatal(err)
	}
	modes := []string{"none", "hanging", "failing"}
	endpoint := map[string]notify.Endpoint{
		"hanging": {Name: "hang", URL: startHook(b, 200, true).url, Timeout: time.Minute},
		"failing": {Name: "fail", URL: startHook(b, 500, false).url},
	}
	dbs := map[string]*state.DB{}
	for _, m := range modes {
		// A database per mode, so that no mode runs on a larger one.
		db, err := state.Open(context.Background(), filepath.Join(dir, m, "drbook.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		dbs[m] = db
	}
	spent, exit := map[string]time.Duration{}, map[string]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range modes {
			b.StopTimer()
			cfg := engine.Config{Runbook: rb, Inventory: inv, Registry: reg, Store: dbs[m], Operator: &engine.Headless{Yes: true},
				Dial: func(context.Context, *runbooks.Node) (transport.Transport, error) {
					return &transport.Local{BaseEnv: os.Environ()}, nil
				}}
			if ep, ok := endpoint[m]; ok {
				cfg.Notify = &runNotifier{eps: []notify.Endpoint{ep}, a: &app{logger: slog.New(slog.DiscardHandler)}, who: "bench"}
			}
			// The run's time is up to its run.finished (the engine's
			// timing); what follows is the bounded wait for the last
			// deliveries before the segment is signed (exit-ms/run).
			var finished time.Time
			cfg.Observer = func(ev runlog.Event) {
				if r, ok := ev.(runlog.Recorded); ok && r.Event.Type == state.EvRunFinished {
					finished = time.Now()
				}
			}
			b.StartTimer()
			t0 := time.Now()
			if _, err := engine.Start(context.Background(), cfg, nil); err != nil {
				b.Fatal(err)
			}
			spent[m] += finished.Sub(t0)
			exit[m] += time.Since(finished)
		}
	}
	for _, m := range modes {
		b.ReportMetric(float64(spent[m].Microseconds())/1000/float64(b.N), m+"-ms/run")
		b.ReportMetric(float64(exit[m].Microseconds())/1000/float64(b.N), m+"-exit-ms/run")
	}
}

// TestNotifyInterrupted: SIGTERM during a run sends run.interrupted (after
// run.started) before drbook exits 130, and its delivery is recorded.
func TestNotifyInterrupted(t *testing.T) {
	l := newLocalLab(t)
	hook := startHook(t, 200, false)
	rb := l.write(t, "rb.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: long\nsteps:\n  - id: wait\n    run: shell\n    on: node1\n    with: {command: 'sleep 30'}\n")
	cfg := l.write(t, "config.yaml", "notify:\n  - name: ops\n    url: "+hook.url+"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, drbookBin, "--config", cfg, "--db", l.db, "run", rb, "-i", l.inv, "--headless")
	cmd.Env = append(os.Environ(), configEnv(l.dir)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if bodies, _ := hook.got(); len(bodies) > 0 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("no run.started within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the step is running
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want 130", err)
	}
	bodies, _ := hook.got()
	var kinds []string
	for _, b := range bodies {
		var ev notify.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, ev.Kind+"/"+ev.Status)
	}
	if strings.Join(kinds, " ") != "run.started/running run.interrupted/interrupted" {
		t.Fatalf("notifications %v", kinds)
	}
	runs := l.runs(t)
	if len(runs) != 1 {
		t.Fatalf("runs %+v", runs)
	}
	notes := recordNotes(t, configEnv(l.dir), l.db, runs[0].ID, "notify.")
	if len(notes) != 2 || notes[1]["event"] != notify.KindRunInterrupted || notes[1]["kind"] != "notify.delivered" {
		t.Errorf("delivery notes %v", notes)
	}
}
