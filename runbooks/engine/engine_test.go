package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
)

// localInventory has n nodes run by the local transport, each with its own
// directory as $NODE_DIR.
func localInventory(t testing.TB, dir string, n int) *runbooks.Inventory {
	var b strings.Builder
	b.WriteString("apiVersion: drbook/v1\nkind: Inventory\nnodes:\n")
	for i := 1; i <= n; i++ {
		nd := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(nd, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  - name: node%d\n    transport: local\n    env: {NODE_DIR: %q}\n", i, nd)
	}
	inv, err := runbooks.ParseInventory("inv.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

type recorder struct {
	mu     sync.Mutex
	events []runlog.Event
}

func (r *recorder) observe(ev runlog.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) lines() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, ev := range r.events {
		if l, ok := ev.(runlog.OutputLine); ok {
			fmt.Fprintf(&b, "%s/%s: %s\n", l.StepID, l.Target, l.Line)
		}
	}
	return b.String()
}

type fixture struct {
	dir string
	db  *state.DB
	inv *runbooks.Inventory
	reg *steps.Registry
	rec *recorder
}

func newFixture(t *testing.T, nodes int) *fixture {
	dir := t.TempDir()
	db, err := state.Open(context.Background(), filepath.Join(dir, "db", "drbook.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &fixture{dir: dir, db: db, inv: localInventory(t, dir, nodes), reg: steps.NewRegistry(), rec: &recorder{}}
}

func (f *fixture) config(t *testing.T, src string, op steps.Operator) engine.Config {
	t.Helper()
	rb, err := runbooks.LoadRunbook("rb.yaml", []byte(src), f.reg, f.inv)
	if err != nil {
		t.Fatal(err)
	}
	if op == nil {
		op = &engine.Headless{Yes: true}
	}
	return engine.Config{
		Runbook: rb, Inventory: f.inv, Registry: f.reg, Store: f.db, Operator: op, Observer: f.rec.observe,
		Dial: func(ctx context.Context, n *runbooks.Node) (transport.Transport, error) {
			return &transport.Local{BaseEnv: os.Environ()}, nil
		},
	}
}

func (f *fixture) count(t *testing.T, node, name string) int {
	b, err := os.ReadFile(filepath.Join(f.dir, node, name))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

const header = "apiVersion: drbook/v1\nkind: Runbook\nname: t\n"

func TestOutputsFlowAndParallelism(t *testing.T) {
	f := newFixture(t, 3)
	src := header + `inputs:
  who: {type: nodes, prompt: who}
steps:
  - id: a
    run: shell
    on: node1
    with: {command: 'echo "{\"token\": \"abc\", \"n\": 3}"'}
    outputs: [token, n]
  - id: b
    run: shell
    on: "{{ inputs.who }}"
    with: {command: 'date +%s%N > "$NODE_DIR/start"; sleep 0.3; echo got {{ steps.a.outputs.token }} {{ steps.a.outputs.n }}'}
  - id: c
    run: shell
    on: "{{ inputs.who }}"
    serial: 1
    with: {command: 'echo x >> "$NODE_DIR/c"'}
  - id: skipped
    run: shell
    on: node1
    when: "{{ steps.a.outputs.n == 4 }}"
    with: {command: 'echo x >> "$NODE_DIR/skipped"'}
`
	cfg := f.config(t, src, nil)
	start := time.Now()
	out, err := engine.Start(context.Background(), cfg, map[string]runbooks.Value{"who": {V: []string{"node1", "node2", "node3"}}})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, f.rec.lines())
	}
	if out.Status != state.StatusSucceeded {
		t.Fatalf("status %s", out.Status)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("three 0.3 s targets took %s: not parallel", d)
	}
	if !strings.Contains(f.rec.lines(), "b/node3: got abc 3") {
		t.Errorf("output not passed along:\n%s", f.rec.lines())
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		if f.count(t, n, "c") != 1 {
			t.Errorf("c did not run once on %s", n)
		}
	}
	if f.count(t, "node1", "skipped") != 0 {
		t.Error("a step whose when: is false ran")
	}
	execs, err := f.db.Execs(context.Background(), out.RunID)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, e := range execs {
		if e.Status == state.StatusSucceeded {
			ran++
		}
	}
	if ran != 1+3+3 {
		t.Errorf("%d executions succeeded, want 7: %+v", ran, execs)
	}
	rep, err := f.db.Verify(context.Background(), out.RunID)
	if err != nil || !rep.OK {
		t.Errorf("verify: %+v %v", rep, err)
	}
}

func TestRetriesAndFailurePolicies(t *testing.T) {
	tests := []struct {
		name      string
		step      string
		wantErr   error
		wantCount int
		op        steps.Operator
	}{
		{"retries then succeeds", `retries: 2
    retry_delay: 10ms
    with: {command: 'echo x >> "$NODE_DIR/n"; test $(wc -l < "$NODE_DIR/n") -ge 3'}`, nil, 3, nil},
		{"retries exhausted stops", `retries: 1
    retry_delay: 10ms
    with: {command: 'echo x >> "$NODE_DIR/n"; exit 3'}`, engine.ErrStepFailed, 2, nil},
		{"continue", `on_failure: continue
    with: {command: 'echo x >> "$NODE_DIR/n"; exit 1'}`, nil, 1, nil},
		{"ask headless stops", `on_failure: ask
    with: {command: 'echo x >> "$NODE_DIR/n"; exit 1'}`, engine.ErrStepFailed, 1, nil},
		{"ask retry then skip", `on_failure: ask
    with: {command: 'echo x >> "$NODE_DIR/n"; exit 1'}`, nil, 2, &scripted{decisions: []steps.Decision{{Kind: steps.DecisionRetry}, {Kind: steps.DecisionSkip, Reason: "node is decommissioned"}}}},
		{"ask abort", `on_failure: ask
    with: {command: 'echo x >> "$NODE_DIR/n"; exit 1'}`, engine.ErrAborted, 1, &scripted{decisions: []steps.Decision{{Kind: steps.DecisionAbort}}}},
		{"timeout", `timeout: 200ms
    with: {command: 'echo x >> "$NODE_DIR/n"; sleep 5'}`, engine.ErrStepFailed, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 1)
			src := header + "steps:\n  - id: s\n    run: shell\n    on: node1\n    " + tc.step + "\n  - id: after\n    run: shell\n    on: node1\n    with: {command: 'echo x >> \"$NODE_DIR/after\"'}\n"
			t0 := time.Now()
			_, err := engine.Start(context.Background(), f.config(t, src, tc.op), nil)
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == nil && err == nil) {
				t.Fatalf("err %v, want %v\n%s", err, tc.wantErr, f.rec.lines())
			}
			if got := f.count(t, "node1", "n"); got != tc.wantCount {
				t.Errorf("ran %d times, want %d", got, tc.wantCount)
			}
			if tc.name == "timeout" && time.Since(t0) > 3*time.Second {
				t.Errorf("timeout not applied: %s", time.Since(t0))
			}
			wantAfter := 0
			if tc.wantErr == nil {
				wantAfter = 1
			}
			if got := f.count(t, "node1", "after"); got != wantAfter {
				t.Errorf("next step ran %d times, want %d", got, wantAfter)
			}
		})
	}
}

// scripted is an operator with canned answers.
type scripted struct {
	mu        sync.Mutex
	decisions []steps.Decision
	typed     []string
	confirms  int
}

func (s *scripted) Confirm(_ context.Context, req steps.ConfirmRequest) (steps.ConfirmResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.confirms++
	typed := req.Expect
	if len(s.typed) > 0 {
		typed, s.typed = s.typed[0], s.typed[1:]
	}
	return steps.ConfirmResponse{OK: true, Typed: typed, By: "tester"}, nil
}

func (s *scripted) Ask(context.Context, steps.AskRequest) (string, error) { return "42", nil }

func (s *scripted) Decide(context.Context, steps.DecideRequest) (steps.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.decisions) == 0 {
		return steps.Decision{}, steps.ErrNoOperator
	}
	d := s.decisions[0]
	s.decisions = s.decisions[1:]
	d.By = "tester"
	return d, nil
}

func TestDangerNeedsTypedName(t *testing.T) {
	src := header + `steps:
  - id: wipe
    run: shell
    on: node1
    danger: true
    with: {command: 'echo x >> "$NODE_DIR/wipe"'}
`
	t.Run("headless without --yes", func(t *testing.T) {
		f := newFixture(t, 1)
		_, err := engine.Start(context.Background(), f.config(t, src, &engine.Headless{}), nil)
		if !errors.Is(err, engine.ErrNeedsDecision) || f.count(t, "node1", "wipe") != 0 {
			t.Fatalf("err %v, ran %d", err, f.count(t, "node1", "wipe"))
		}
	})
	t.Run("wrong name", func(t *testing.T) {
		f := newFixture(t, 1)
		_, err := engine.Start(context.Background(), f.config(t, src, &scripted{typed: []string{"node2"}}), nil)
		if !errors.Is(err, engine.ErrAborted) || f.count(t, "node1", "wipe") != 0 {
			t.Fatalf("err %v, ran %d", err, f.count(t, "node1", "wipe"))
		}
	})
	t.Run("right name", func(t *testing.T) {
		f := newFixture(t, 1)
		out, err := engine.Start(context.Background(), f.config(t, src, &scripted{}), nil)
		if err != nil || f.count(t, "node1", "wipe") != 1 {
			t.Fatalf("err %v, ran %d", err, f.count(t, "node1", "wipe"))
		}
		events, _ := f.db.Events(context.Background(), out.RunID)
		found := false
		for _, ev := range events {
			if ev.Type == state.EvOperatorWait && strings.Contains(string(ev.Data), `"response":"node1"`) && strings.Contains(string(ev.Data), "tester") {
				found = true
			}
		}
		if !found {
			t.Error("the confirmation (who, what was typed) is not in the record")
		}
	})
}

// TestResumeDecisions interrupts a run (context cancel) in a step and resumes
// it under each rule: check:, idempotent kind, --redo, --skip, operator.
func TestResumeDecisions(t *testing.T) {
	tests := []struct {
		name      string
		step      string
		opts      engine.ResumeOptions
		wantErr   error
		wantCount int // runs of the interrupted step in total
	}{
		{"check says done", `check: 'test -f "$NODE_DIR/marker"'
    with: {command: 'touch "$NODE_DIR/marker"; echo x >> "$NODE_DIR/n"; sleep 30'}`, engine.ResumeOptions{}, nil, 1},
		{"check says not done", `check: 'test -f "$NODE_DIR/never"'
    with: {command: 'echo x >> "$NODE_DIR/n"; test -f "$NODE_DIR/n2" || { touch "$NODE_DIR/n2"; sleep 30; }'}`, engine.ResumeOptions{}, nil, 2},
		{"no check: headless stops", `with: {command: 'echo x >> "$NODE_DIR/n"; sleep 30'}`, engine.ResumeOptions{}, engine.ErrNeedsDecision, 1},
		{"--redo", `with: {command: 'echo x >> "$NODE_DIR/n"; test -f "$NODE_DIR/n2" || { touch "$NODE_DIR/n2"; sleep 30; }'}`, engine.ResumeOptions{Redo: []string{"s"}}, nil, 2},
		{"--skip", `with: {command: 'echo x >> "$NODE_DIR/n"; sleep 30'}`, engine.ResumeOptions{Skip: []string{"s"}, SkipReason: "done by hand"}, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 1)
			src := header + "steps:\n  - id: first\n    run: shell\n    on: node1\n    with: {command: 'echo x >> \"$NODE_DIR/first\"'}\n  - id: s\n    run: shell\n    on: node1\n    " + tc.step + "\n  - id: last\n    run: shell\n    on: node1\n    with: {command: 'echo x >> \"$NODE_DIR/last\"'}\n"
			cfg := f.config(t, src, nil)
			ctx, cancel := context.WithCancel(context.Background())
			cfg.Observer = func(ev runlog.Event) {
				if s, ok := ev.(runlog.Recorded); ok && s.Event.Type == state.EvStepStarted && s.Event.StepID == "s" {
					go func() {
						// Interrupt once the command has really started.
						deadline := time.Now().Add(10 * time.Second)
						for f.count(t, "node1", "n") == 0 && time.Now().Before(deadline) {
							time.Sleep(10 * time.Millisecond)
						}
						time.Sleep(50 * time.Millisecond)
						cancel()
					}()
				}
			}
			out, err := engine.Start(ctx, cfg, nil)
			if !errors.Is(err, engine.ErrInterrupted) {
				t.Fatalf("first run: %v", err)
			}
			run, _ := f.db.GetRun(context.Background(), out.RunID)
			if run.Status != state.StatusInterrupted {
				t.Fatalf("status %s, want interrupted", run.Status)
			}
			cfg = f.config(t, src, nil)
			_, err = engine.Resume(context.Background(), cfg, out.RunID, tc.opts)
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == nil && err == nil) {
				t.Fatalf("resume: %v, want %v\n%s", err, tc.wantErr, f.rec.lines())
			}
			if got := f.count(t, "node1", "n"); got != tc.wantCount {
				t.Errorf("interrupted step ran %d times, want %d", got, tc.wantCount)
			}
			if got := f.count(t, "node1", "first"); got != 1 {
				t.Errorf("completed step ran %d times", got)
			}
			wantLast := 1
			if tc.wantErr != nil {
				wantLast = 0
			}
			if got := f.count(t, "node1", "last"); got != wantLast {
				t.Errorf("last ran %d times, want %d", got, wantLast)
			}
			if rep, err := f.db.Verify(context.Background(), out.RunID); err != nil || !rep.OK {
				t.Errorf("verify: %+v %v", rep, err)
			}
		})
	}
}

func TestResumeRefusesChangedRunbook(t *testing.T) {
	f := newFixture(t, 1)
	src := header + "steps:\n  - id: a\n    run: shell\n    on: node1\n    with: {command: 'exit 1'}\n"
	out, err := engine.Start(context.Background(), f.config(t, src, nil), nil)
	if !errors.Is(err, engine.ErrStepFailed) {
		t.Fatal(err)
	}
	changed := src + "  - id: b\n    run: shell\n    on: node1\n    with: {command: 'true'}\n"
	_, err = engine.Resume(context.Background(), f.config(t, changed, nil), out.RunID, engine.ResumeOptions{})
	if !errors.Is(err, engine.ErrRunbookChanged) || !strings.Contains(err.Error(), "+ step b") {
		t.Fatalf("want a refusal naming the new step, got %v", err)
	}
	fixed := strings.Replace(changed, "exit 1", "true", 1)
	if _, err := engine.Resume(context.Background(), f.config(t, fixed, nil), out.RunID, engine.ResumeOptions{AcceptChanged: true}); err != nil {
		t.Fatalf("accepted resume: %v", err)
	}
}

// TestFanOutRetryOnlyFailedTargets: resuming a failed fanned-out step runs
// only the targets that failed.
func TestFanOutRetryOnlyFailedTargets(t *testing.T) {
	f := newFixture(t, 3)
	src := header + "steps:\n  - id: a\n    run: shell\n    on: [node1, node2, node3]\n    with: {command: 'echo x >> \"$NODE_DIR/n\"; test ! -f \"$NODE_DIR/broken\"'}\n"
	if err := os.WriteFile(filepath.Join(f.dir, "node2", "broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := engine.Start(context.Background(), f.config(t, src, nil), nil)
	if !errors.Is(err, engine.ErrStepFailed) {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(f.dir, "node2", "broken"))
	if _, err := engine.Resume(context.Background(), f.config(t, src, nil), out.RunID, engine.ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]int{"node1": 1, "node2": 2, "node3": 1} {
		if got := f.count(t, node, "n"); got != want {
			t.Errorf("%s ran %d times, want %d", node, got, want)
		}
	}
}

func TestSecretsMasked(t *testing.T) {
	f := newFixture(t, 1)
	const secret = "pa55-w0rd-very-secret"
	src := header + `inputs:
  key: {type: secret, prompt: key}
steps:
  - id: a
    run: shell
    on: node1
    with:
      command: 'echo "the key is $KEY"; echo "token=tok-$KEY-x"; echo "{\"other\": 1}"'
      env: {KEY: "{{ inputs.key }}"}
    outputs: [{name: token, secret: true}]
  - id: b
    run: shell
    on: node1
    with:
      command: 'echo "using $T"; exit 1'
      env: {T: "{{ steps.a.outputs.token }}"}
`
	out, err := engine.Start(context.Background(), f.config(t, src, nil), map[string]runbooks.Value{"key": {V: secret, Secret: true}})
	if err == nil {
		t.Fatal("b should fail")
	}
	lines := f.rec.lines()
	if strings.Contains(lines, secret) || strings.Contains(lines, "tok-") || strings.Contains(err.Error(), secret) {
		t.Errorf("secret shown:\n%s\n%v", lines, err)
	}
	if !strings.Contains(lines, "the key is "+engine.Mask) || !strings.Contains(lines, "using "+engine.Mask) {
		t.Errorf("masked lines missing:\n%s", lines)
	}
	f.db.Close()
	for _, suffix := range []string{"", "-wal"} {
		b, _ := os.ReadFile(f.db.Path() + suffix)
		if strings.Contains(string(b), secret) || strings.Contains(string(b), "tok-"+secret) {
			t.Errorf("secret in db%s", suffix)
		}
	}
	_ = out
}

// slowOperator takes its time, as a person does.
type slowOperator struct {
	scripted
	delay time.Duration
}

func (s *slowOperator) Confirm(ctx context.Context, req steps.ConfirmRequest) (steps.ConfirmResponse, error) {
	time.Sleep(s.delay)
	return s.scripted.Confirm(ctx, req)
}

func (s *slowOperator) Ask(ctx context.Context, req steps.AskRequest) (string, error) {
	time.Sleep(s.delay)
	return s.scripted.Ask(ctx, req)
}

// TestHumanTimeApart: time spent in confirm and input steps and danger
// confirmations is measured as operator time and recorded with the answers.
func TestHumanTimeApart(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `steps:
  - id: ack
    run: confirm
    with: {message: "DNS switched?"}
  - id: ticket
    run: input
    with: {prompt: "Ticket"}
  - id: wipe
    run: shell
    on: node1
    danger: true
    with: {command: 'sleep 0.1'}
`
	op := &slowOperator{delay: 150 * time.Millisecond}
	out, err := engine.Start(context.Background(), f.config(t, src, op), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Human < 450*time.Millisecond {
		t.Errorf("operator time %s, want ≥ 450ms (three questions of 150ms)", out.Human)
	}
	if out.Machine < 100*time.Millisecond || out.Machine > out.Human+2*time.Second {
		t.Errorf("machine time %s does not look like the 0.1s step", out.Machine)
	}
	events, _ := f.db.Events(context.Background(), out.RunID)
	kinds := map[string]int{}
	var fin state.RunFinished
	for _, ev := range events {
		switch ev.Type {
		case state.EvOperatorWait:
			var w state.OperatorWait
			_ = ev.Decode(&w)
			kinds[w.Kind]++
			if w.Kind == state.WaitInput && w.Response != "42" {
				t.Errorf("input answer not recorded: %+v", w)
			}
		case state.EvRunFinished:
			_ = ev.Decode(&fin)
		}
	}
	if kinds[state.WaitConfirm] != 2 || kinds[state.WaitInput] != 1 {
		t.Errorf("operator waits recorded: %v", kinds)
	}
	if fin.HumanMS < 450 {
		t.Errorf("run.finished human_ms %d", fin.HumanMS)
	}
}
