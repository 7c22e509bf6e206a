package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

// TestTUIFormEveryInputType fills the every-input runbook's form one field
// at a time, with a bad answer first where the runbook's rules refuse it, and
// checks the values the run starts with.
func TestTUIFormEveryInputType(t *testing.T) {
	inv := loadInv(t)
	rb := loadRB(t, "testdata/inputs.yaml", inv)
	var got map[string]runbooks.Value
	started := make(chan struct{}, 1)
	m := New(context.Background(), Options{Runbook: &PickerItem{Path: "inputs.yaml", Runbook: rb}, Inventory: inv, Now: fixedNow, NoTick: true,
		Start: func(_ context.Context, _ *runbooks.Runbook, inputs map[string]runbooks.Value, _ func(runlog.Event), _ steps.Operator) (engine.Outcome, error) {
			got = inputs
			started <- struct{}{}
			return engine.Outcome{}, nil
		}})
	d := drive(m)
	d.run(m.Init())
	sized(t, d, 80, 24)
	step := func(title string) {
		t.Helper()
		if s := frame(m); !strings.Contains(s, title) {
			t.Fatalf("form does not show %q:\n%s", title, s)
		}
	}
	// string with a pattern
	step("Incident ticket")
	d.typeText("abc")
	d.send(press("enter"))
	if s := frame(m); !strings.Contains(s, "does not match") {
		t.Fatalf("a ticket not matching the pattern was accepted:\n%s", s)
	}
	for range 3 {
		d.send(press("backspace"))
	}
	d.typeText("INC-42")
	d.send(press("enter"))
	// secret: masked
	step("Backup passphrase")
	d.typeText("s3cr3t-value")
	if s := frame(m); strings.Contains(s, "s3cr3t-value") {
		t.Fatalf("secret echoed:\n%s", s)
	}
	d.send(press("enter"))
	// bool
	step("Force?")
	d.send(press("left")) // yes
	d.send(press("enter"))
	// enum
	step("Mode")
	d.send(press("down"))
	d.send(press("enter"))
	// duration, prefilled from its default
	step("Settle time")
	if s := frame(m); !strings.Contains(s, "30s") {
		t.Errorf("duration default not prefilled:\n%s", s)
	}
	d.send(press("enter"))
	// int with bounds
	step("Copies")
	d.typeText("9")
	d.send(press("enter"))
	if s := frame(m); !strings.Contains(s, "above the maximum 5") {
		t.Fatalf("an int above max was accepted:\n%s", s)
	}
	d.send(press("backspace"))
	d.typeText("2")
	d.send(press("enter"))
	// node, filtered by label role=seed: node3 is not offered
	step("Seed node")
	if s := frame(m); strings.Contains(s, "node3") || !strings.Contains(s, "node2") {
		t.Errorf("node select not filtered by label:\n%s", s)
	}
	d.send(press("down"))
	d.send(press("enter"))
	// nodes, min 2
	step("Nodes to join")
	d.send(press("x"))
	d.send(press("enter"))
	if s := frame(m); !strings.Contains(s, "at least 2") {
		t.Fatalf("one node accepted for min 2:\n%s", s)
	}
	d.send(press("down"))
	d.send(press("x"))
	d.send(press("enter"))
	step("review")
	d.send(press("s"))
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatalf("the run did not start:\n%s", frame(m))
	}
	want := map[string]any{"ticket": "INC-42", "key": "s3cr3t-value", "force": true, "mode": "safe", "wait": "30s",
		"count": int64(2), "seed": "node2"}
	for k, w := range want {
		if got[k].V != w {
			t.Errorf("input %s = %#v, want %#v", k, got[k].V, w)
		}
	}
	if !got["key"].Secret {
		t.Error("the secret input is not marked secret")
	}
	if j, ok := got["joiners"].V.([]string); !ok || strings.Join(j, ",") != "node1,node2" {
		t.Errorf("joiners = %#v, want node1,node2", got["joiners"].V)
	}
}

func TestTUIFormPrefilledFromAnswers(t *testing.T) {
	inv := loadInv(t)
	rb := loadRB(t, "testdata/e2e/drill.yaml", inv)
	t.Setenv("TUI_TEST_PASS", "from-env-secret")
	src := []byte("inputs:\n  seed: node3\n  passphrase: {env: TUI_TEST_PASS}\n  label: from-answers\n")
	answers, err := runbooks.ParseAnswers("answers.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan map[string]runbooks.Value, 1)
	m := New(context.Background(), Options{Runbook: &PickerItem{Path: "drill.yaml", Runbook: rb}, Inventory: inv, Answers: answers, Now: fixedNow, NoTick: true,
		Start: func(_ context.Context, _ *runbooks.Runbook, inputs map[string]runbooks.Value, _ func(runlog.Event), _ steps.Operator) (engine.Outcome, error) {
			got <- inputs
			return engine.Outcome{}, nil
		}})
	d := drive(m)
	d.run(m.Init())
	sized(t, d, 80, 24)
	for range 3 {
		if s := frame(m); strings.Contains(s, "from-env-secret") {
			t.Fatalf("prefilled secret shown in clear:\n%s", s)
		}
		d.send(press("enter"))
	}
	if s := frame(m); !strings.Contains(s, "review") || strings.Contains(s, "from-env-secret") {
		t.Fatalf("three enters did not lead to the review, or it shows the secret:\n%s", s)
	}
	d.send(press("s"))
	select {
	case in := <-got:
		if in["seed"].V != "node3" || in["label"].V != "from-answers" || in["passphrase"].V != "from-env-secret" {
			t.Errorf("inputs = %+v", in)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("s on the review did not start the run:\n%s", frame(m))
	}
}
