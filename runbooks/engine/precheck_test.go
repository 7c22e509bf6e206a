package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

// TestPrecheckBeforeFirstStep: a guard or template of a later step that
// depends only on the inputs and fails stops the run before step 1 (a danger
// step) runs anywhere.
func TestPrecheckBeforeFirstStep(t *testing.T) {
	first := `  - id: wipe
    run: shell
    on: node1
    danger: true
    with: {command: 'echo x >> "$NODE_DIR/wipe"'}
`
	tests := []struct {
		name, later string
		lint        bool // load through lint (else only parsed: lint would refuse it)
		want        string
	}{
		// Lint with the inventory refuses a var missing on a node the input
		// can choose; the engine's check stops an unlinted runbook too.
		{"guard reads a missing node var", `    when: nodes[inputs.seed].flag == "yes"`, false, `no field or var "flag"`},
		{"guard is not a boolean", `    when: inputs.mode`, false, "a guard must be true or false"},
		{"guard is text", `    when: "yes please"`, false, "is not an expression"},
		{"parameter reads a missing node var", `    with: {command: "echo {{ nodes[inputs.seed].flag }}"}`, false, `with.command`},
		{"target resolves to no node", `    on: "{{ inputs.seed }}x"`, true, `unknown node or group "node2x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 2)
			later := "  - id: later\n    run: shell\n    on: node2\n" + tc.later + "\n"
			if !strings.Contains(tc.later, "with:") {
				later += "    with: {command: 'echo y'}\n"
			}
			if strings.Contains(tc.later, "on:") {
				later = strings.Replace(later, "    on: node2\n", "", 1)
			}
			src := header + "inputs:\n  seed: {type: node, prompt: Seed}\n  mode: {type: string, prompt: Mode}\nsteps:\n" + first + later
			var cfg engine.Config
			if tc.lint {
				cfg = f.config(t, src, nil)
			} else {
				if _, err := runbooks.LoadRunbook("rb.yaml", []byte(src), f.reg, f.inv); err == nil {
					t.Fatal("lint accepted the runbook; the test needs one it refuses")
				}
				rb, err := runbooks.ParseRunbook("rb.yaml", []byte(src))
				if err != nil {
					t.Fatal(err)
				}
				cfg = f.config(t, header+"steps:\n"+first, nil)
				cfg.Runbook = rb
			}
			out, err := engine.Start(context.Background(), cfg, map[string]runbooks.Value{"seed": {V: "node2"}, "mode": {V: "full"}})
			if !errors.Is(err, engine.ErrPrecheck) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "step later") {
				t.Fatalf("err = %v; want ErrPrecheck naming step later and %q", err, tc.want)
			}
			if n := f.count(t, "node1", "wipe"); n != 0 {
				t.Fatalf("the danger step ran %d time(s) before the bad guard was found", n)
			}
			if out.Status != state.StatusFailed {
				t.Errorf("status %s, want failed", out.Status)
			}
			execs, err := f.db.Execs(context.Background(), out.RunID)
			if err != nil || len(execs) != 0 {
				t.Errorf("executions recorded: %v %v", execs, err)
			}
		})
	}
}

// TestGuardFalseFromInputSkips: a guard false by an input skips the step;
// the same runbook with the input true runs it.
func TestGuardFalseFromInputSkips(t *testing.T) {
	src := header + `inputs:
  drill: {type: bool, prompt: Drill}
steps:
  - id: drill-only
    run: shell
    on: node1
    when: inputs.drill
    with: {command: 'echo x >> "$NODE_DIR/drill"'}
`
	for _, drill := range []bool{false, true} {
		f := newFixture(t, 1)
		if _, err := engine.Start(context.Background(), f.config(t, src, nil), map[string]runbooks.Value{"drill": {V: drill}}); err != nil {
			t.Fatal(err)
		}
		want := 0
		if drill {
			want = 1
		}
		if got := f.count(t, "node1", "drill"); got != want {
			t.Errorf("drill=%v: the step ran %d time(s), want %d", drill, got, want)
		}
	}
}

// capture records the confirmation requests and types what it is told.
type capture struct {
	mu    sync.Mutex
	reqs  []steps.ConfirmRequest
	typed string
}

func (c *capture) Confirm(_ context.Context, req steps.ConfirmRequest) (steps.ConfirmResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	typed := c.typed
	if typed == "" {
		typed = req.Expect
	}
	return steps.ConfirmResponse{OK: true, Typed: typed, By: "tester"}, nil
}

func (c *capture) Ask(context.Context, steps.AskRequest) (string, error) {
	return "", steps.ErrNoOperator
}

func (c *capture) Decide(context.Context, steps.DecideRequest) (steps.Decision, error) {
	return steps.Decision{}, steps.ErrNoOperator
}

// TestConfirmWord: the word comes from confirm.word (an input: the node
// being removed, not the node the command runs on), with its reason; one word
// for several targets; headless --yes prints no "type X to go ahead".
func TestConfirmWord(t *testing.T) {
	removal := header + `inputs:
  failed: {type: node, prompt: Failed}
  healthy: {type: node, prompt: Healthy, distinct_from: [failed]}
steps:
  - id: remove
    run: shell
    on: "{{ inputs.healthy }}"
    danger: true
    confirm:
      word: "{{ inputs.failed }}"
      reason: "{{ inputs.failed }} is removed from the cluster"
    with: {command: 'echo {{ inputs.failed }} >> "$NODE_DIR/removed"'}
`
	inputs := map[string]runbooks.Value{"failed": {V: "node3"}, "healthy": {V: "node1"}}
	t.Run("word from an input", func(t *testing.T) {
		f := newFixture(t, 3)
		op := &capture{}
		if _, err := engine.Start(context.Background(), f.config(t, removal, op), inputs); err != nil {
			t.Fatal(err)
		}
		if len(op.reqs) != 1 || op.reqs[0].Expect != "node3" || op.reqs[0].Reason != "node3 is removed from the cluster" {
			t.Fatalf("requests %+v; want Expect node3 with its reason", op.reqs)
		}
		if f.count(t, "node1", "removed") != 1 {
			t.Error("the confirmed step did not run")
		}
	})
	t.Run("the target's name is refused", func(t *testing.T) {
		f := newFixture(t, 3)
		_, err := engine.Start(context.Background(), f.config(t, removal, &capture{typed: "node1"}), inputs)
		if !errors.Is(err, engine.ErrAborted) || f.count(t, "node1", "removed") != 0 {
			t.Fatalf("err %v, ran %d", err, f.count(t, "node1", "removed"))
		}
	})
	t.Run("one word for several targets", func(t *testing.T) {
		f := newFixture(t, 3)
		op := &capture{}
		src := header + "steps:\n  - id: wipe-all\n    run: shell\n    on: [node1, node2, node3]\n    danger: true\n    with: {command: 'echo x >> \"$NODE_DIR/wipe\"'}\n"
		if _, err := engine.Start(context.Background(), f.config(t, src, op), nil); err != nil {
			t.Fatal(err)
		}
		if len(op.reqs) != 1 || op.reqs[0].Expect != "wipe-all" || len(op.reqs[0].Targets) != 3 {
			t.Fatalf("requests %+v; want one request, word wipe-all, three targets", op.reqs)
		}
	})
	t.Run("headless --yes prints no instruction to type", func(t *testing.T) {
		f := newFixture(t, 3)
		if _, err := engine.Start(context.Background(), f.config(t, removal, &engine.Headless{Yes: true}), inputs); err != nil {
			t.Fatal(err)
		}
		f.rec.mu.Lock()
		defer f.rec.mu.Unlock()
		seen := false
		for _, ev := range f.rec.events {
			if n, ok := ev.(runlog.Question); ok && n.Kind == state.WaitConfirm {
				seen = true
				if strings.Contains(n.Prompt, "go ahead") || strings.Contains(strings.ToLower(n.Prompt), "type ") {
					t.Errorf("prompt tells a headless run to type: %q", n.Prompt)
				}
				if !strings.Contains(n.Prompt, "node3") || !strings.Contains(n.Prompt, "removed") {
					t.Errorf("prompt does not name what is destroyed: %q", n.Prompt)
				}
			}
		}
		if !seen {
			t.Error("no confirmation event")
		}
	})
}

// TestPrecheckLeavesGuardedSteps: the templates of a step whose guard is
// false, or reads a step's output, are not evaluated up front.
func TestPrecheckLeavesGuardedSteps(t *testing.T) {
	src := header + `inputs:
  extra: {type: string, prompt: Extra node, optional: true}
  drill: {type: bool, prompt: Drill}
steps:
  - id: probe
    run: shell
    on: node1
    with: {command: 'echo x >> "$NODE_DIR/probe"; echo ok=no'}
    outputs: [ok]
  - id: off-by-input
    run: shell
    on: "{{ inputs.extra }}"
    when: inputs.extra != "" and inputs.drill
    with: {command: 'echo {{ nodes[inputs.extra].api }}'}
  - id: off-by-output
    run: shell
    on: "{{ inputs.extra }}"
    when: steps.probe.outputs.ok == "yes"
    with: {command: 'echo {{ nodes[inputs.extra].api }}'}
`
	f := newFixture(t, 1)
	out, err := engine.Start(context.Background(), f.config(t, src, nil), map[string]runbooks.Value{"extra": {V: ""}, "drill": {V: false}})
	if err != nil || out.Status != state.StatusSucceeded {
		t.Fatalf("status %s, err %v", out.Status, err)
	}
	if f.count(t, "node1", "probe") != 1 {
		t.Error("the first step did not run")
	}
}
