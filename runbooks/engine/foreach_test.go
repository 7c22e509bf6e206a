package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

// countingOperator confirms everything, typing the expected word, and keeps
// every confirmation request.
type countingOperator struct {
	mu   sync.Mutex
	reqs []steps.ConfirmRequest
}

func (o *countingOperator) Confirm(_ context.Context, req steps.ConfirmRequest) (steps.ConfirmResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reqs = append(o.reqs, req)
	return steps.ConfirmResponse{OK: true, Typed: req.Expect, By: "test"}, nil
}

func (o *countingOperator) Ask(context.Context, steps.AskRequest) (string, error) {
	return "", steps.ErrNoOperator
}

func (o *countingOperator) Decide(context.Context, steps.DecideRequest) (steps.Decision, error) {
	return steps.Decision{}, steps.ErrNoOperator
}

// TestForEachDangerOneConfirmation: a danger for_each step asks once,
// listing every item and what runs for it, then runs each item on the node
// on: gives, each its own recorded execution.
func TestForEachDangerOneConfirmation(t *testing.T) {
	f := newFixture(t, 3)
	src := header + `inputs:
  seed: {type: node, prompt: seed}
  who: {type: nodes, prompt: who}
steps:
  - id: remove
    run: shell
    danger: true
    for_each: "{{ inputs.who }}"
    on: "{{ inputs.seed }}"
    with: {command: 'echo {{ item }} >> "$NODE_DIR/removed"; echo gone={{ item }}'}
    outputs: [gone]
`
	op := &countingOperator{}
	out, err := engine.Start(context.Background(), f.config(t, src, op), map[string]runbooks.Value{
		"seed": {V: "node1"}, "who": {V: []string{"node2", "node3"}},
	})
	if err != nil || out.Status != state.StatusSucceeded {
		t.Fatalf("run: %v %s\n%s", err, out.Status, f.rec.lines())
	}
	if len(op.reqs) != 1 {
		t.Fatalf("%d confirmations, want 1 for the step", len(op.reqs))
	}
	req := op.reqs[0]
	if strings.Join(req.Targets, ",") != "node2,node3" || req.Expect != "remove" || len(req.Summaries) != 2 ||
		!strings.Contains(req.Summaries[1], "echo node3 >>") {
		t.Errorf("confirmation %+v: want items node2, node3, word remove, a summary per item", req)
	}
	if got := f.count(t, "node1", "removed"); got != 2 {
		t.Errorf("the items ran %d times on the seed, want 2", got)
	}
	for _, n := range []string{"node2", "node3"} {
		if got := f.count(t, n, "removed"); got != 0 {
			t.Errorf("an item ran on %s itself, not on the seed", n)
		}
	}
	execs, err := f.db.Execs(context.Background(), out.RunID)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range execs {
		keys = append(keys, e.Target)
	}
	slices.Sort(keys) // items run in parallel
	if strings.Join(keys, ",") != "node2,node3" {
		t.Errorf("recorded executions %v, want one per item", keys)
	}
}

// TestForEachRefusals: items from a secret, on: giving several nodes, and a
// list with a repeated item stop the step before anything runs.
func TestForEachRefusals(t *testing.T) {
	tests := []struct {
		name, forEach, on string
		inputs            map[string]runbooks.Value
		want              string
	}{
		{"secret", `"{{ inputs.pass }}"`, "node1", map[string]runbooks.Value{"pass": {V: []string{"node1"}, Secret: true}}, "derive from a secret"},
		{"several nodes", `"{{ inputs.who }}"`, `"{{ inputs.who }}"`, map[string]runbooks.Value{"who": {V: []string{"node1", "node2"}}}, "on: gives 2 nodes"},
		{"twice", `"{{ inputs.who }}"`, "node1", map[string]runbooks.Value{"who": {V: []string{"node1", "node1"}}}, `item "node1" appears twice`},
		{"not a list", `"{{ inputs.one }}"`, "node1", map[string]runbooks.Value{"one": {V: "node1"}}, "needs a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 2)
			src := header + `inputs:
  pass: {type: string, optional: true}
  who: {type: nodes, optional: true}
  one: {type: string, optional: true}
steps:
  - id: s
    run: shell
    for_each: ` + tt.forEach + `
    on: ` + tt.on + `
    with: {command: 'echo x >> "$NODE_DIR/ran"'}
`
			// Not linted (lint refuses the secret and the string): the engine
			// must refuse them on its own.
			cfg := f.config(t, header+"steps: [{id: x, run: shell, on: node1, with: {command: 'true'}}]\n", nil)
			rb, err := runbooks.ParseRunbook("rb.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Runbook = rb
			_, err = engine.Start(context.Background(), cfg, tt.inputs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if f.count(t, "node1", "ran")+f.count(t, "node2", "ran") != 0 {
				t.Error("something ran")
			}
		})
	}
}

// TestUntilWithinTimeout: until: with no retries keeps trying while the
// step's timeout has not run out, then fails showing the last outputs.
func TestUntilWithinTimeout(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `steps:
  - id: never
    run: shell
    on: node1
    timeout: 1500ms
    retry_delay: 100ms
    until: outputs.state == "ready"
    with: {command: 'echo x >> "$NODE_DIR/tries"; echo state=starting'}
    outputs: [state]
`
	t0 := time.Now()
	out, err := engine.Start(context.Background(), f.config(t, src, nil), nil)
	took := time.Since(t0)
	if !errors.Is(err, engine.ErrStepFailed) || out.Status != state.StatusFailed {
		t.Fatalf("err = %v, status %s: want the step failed", err, out.Status)
	}
	tries := f.count(t, "node1", "tries")
	if tries < 2 || tries > 6 {
		t.Errorf("%d attempts in %s, want a few (backoff 100ms, 200ms, 400ms… within 1.5s)", tries, took)
	}
	if took > 10*time.Second {
		t.Errorf("until: went on for %s, past its 1.5s timeout", took)
	}
	if !strings.Contains(f.rec.failures(), `until: outputs.state == "ready" does not hold yet (outputs: state="starting")`) {
		t.Errorf("the failure does not show the last outputs:\n%s", f.rec.failures())
	}
}

// failures lists the errors of finished executions.
func (r *recorder) failures() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, ev := range r.events {
		if r, ok := ev.(runlog.Recorded); ok && r.Event.Type == state.EvStepFinished {
			var f state.StepFinished
			if err := r.Event.Decode(&f); err == nil && f.Error != "" {
				b.WriteString(r.Event.StepID + "/" + r.Event.Target + ": " + f.Error + "\n")
			}
		}
	}
	return b.String()
}

// TestForEachNoItems: an empty list runs nothing; the step is skipped and a
// later step sees it so.
func TestForEachNoItems(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `inputs:
  who: {type: nodes, prompt: who, optional: true}
steps:
  - id: each
    run: shell
    for_each: "{{ inputs.who }}"
    with: {command: 'echo x >> "$NODE_DIR/ran"'}
  - id: after
    run: shell
    on: node1
    with: {command: 'echo each was {{ steps.each.status }}'}
`
	out, err := engine.Start(context.Background(), f.config(t, src, nil), map[string]runbooks.Value{"who": {V: []string{}}})
	if err != nil || out.Status != state.StatusSucceeded {
		t.Fatalf("run: %v %s\n%s", err, out.Status, f.rec.lines())
	}
	if f.count(t, "node1", "ran") != 0 {
		t.Error("an item ran")
	}
	if !strings.Contains(f.rec.lines(), "after/node1: each was skipped") {
		t.Errorf("the later step did not see the step skipped:\n%s", f.rec.lines())
	}
}
