package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

// sized sends a window size and returns the frame.
func sized(t *testing.T, d *driver, w, h int) string {
	t.Helper()
	m := d.m
	d.send(tea.WindowSizeMsg{Width: w, Height: h})
	s := frame(m)
	checkFrame(t, fmt.Sprintf("%dx%d", w, h), s, w, h)
	return s
}

func TestTUIPickerGolden(t *testing.T) {
	inv := loadInv(t)
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m := New(context.Background(), Options{Items: pickerItems(t, inv), PickerTitle: "testdata", Inventory: inv, Now: fixedNow, NoTick: true})
			d := drive(m)
			got := sized(t, d, sz.w, sz.h)
			if !strings.Contains(got, "unknown step kind") || !strings.Contains(got, "broken.yaml:6:10") {
				t.Errorf("broken runbook's first problem not shown:\n%s", got)
			}
			// A broken runbook cannot be picked.
			d.send(press("enter"))
			if m.screen != screenPicker || !strings.Contains(frame(m), "has problems") {
				t.Errorf("picking a broken runbook: screen %v\n%s", m.screen, frame(m))
			}
			d.send(press("down"))
			got = frame(m)
			if !strings.Contains(got, "3 steps · 1 danger") {
				t.Errorf("step and danger counts missing:\n%s", got)
			}
			golden(t, fmt.Sprintf("picker_%dx%d", sz.w, sz.h), got)
			d.send(press("enter"))
			if m.screen != screenForm {
				t.Fatalf("enter on a valid runbook: screen %v, want the form", m.screen)
			}
		})
	}
}

func TestTUIFormGolden(t *testing.T) {
	inv := loadInv(t)
	items := pickerItems(t, inv)
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m := New(context.Background(), Options{Runbook: &items[2], Inventory: inv, Now: fixedNow, NoTick: true})
			d := drive(m)
			d.run(m.Init())
			golden(t, fmt.Sprintf("form_%dx%d", sz.w, sz.h), sized(t, d, sz.w, sz.h))
		})
	}
}

func TestTUIRunScreenGolden(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m := runModel(t, runningEvents())
			d := drive(m)
			got := sized(t, d, sz.w, sz.h)
			for _, want := range []string{"RTO 00:01:23", "2/3 steps", "r20261121-030405-ab12", "report line 29", "└ ✓ node3", "following"} {
				if !strings.Contains(got, want) {
					t.Errorf("run screen lacks %q:\n%s", want, got)
				}
			}
			if strings.Contains(got, "\x1b") || strings.Contains(got, "\t") {
				t.Errorf("control characters from the output reached the screen")
			}
			golden(t, fmt.Sprintf("run_%dx%d", sz.w, sz.h), got)
		})
	}
}

func TestTUIDangerConfirmGolden(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			evs := runningEvents()[:12] // up to the wipe step's pending event
			m := runModel(t, evs)
			d := drive(m)
			reply := make(chan steps.ConfirmResponse, 1)
			d.send(batchMsg{
				EventMsg{Event: runlog.Question{Kind: state.WaitConfirm, StepID: "wipe", Prompt: `DANGER: wipe on node2 — type "node2" to go ahead`, Time: at(320)}},
				confirmMsg{reply: reply, req: steps.ConfirmRequest{StepID: "wipe", Title: "Wipe the scratch marker on the seed", Danger: true,
					Message: "Deletes the marker; the node must be out of the cluster.",
					Targets: []string{"node2"}, Summaries: []string{`test -n "$PASS" && echo "wiped marker drill on node2"`}, Expect: "node2"}},
			})
			sized(t, d, sz.w, sz.h)
			// A wrong name does nothing but say so.
			d.typeText("node3")
			d.send(press("enter"))
			select {
			case r := <-reply:
				t.Fatalf("a wrong name answered the engine: %+v", r)
			default:
			}
			got := frame(m)
			checkFrame(t, "danger", got, sz.w, sz.h)
			for _, want := range []string{"DANGER", "on node2:", `│ test -n "$PASS" && echo "wiped marker drill on node2"`, "Type node2 to go ahead", `"node3" is not "node2"`} {
				if !strings.Contains(got, want) {
					t.Errorf("danger box lacks %q:\n%s", want, got)
				}
			}
			golden(t, fmt.Sprintf("danger_%dx%d", sz.w, sz.h), got)
			d.typeText("node2")
			d.send(press("enter"))
			select {
			case r := <-reply:
				if !r.OK || r.Typed != "node2" || r.By != "alice" {
					t.Errorf("reply = %+v, want OK typed node2 by alice", r)
				}
			default:
				t.Fatal("the right name did not answer the engine")
			}
			if m.run.Prompting() {
				t.Error("the danger box stayed open")
			}
		})
	}
}

func TestTUIDangerRefuse(t *testing.T) {
	m := runModel(t, runningEvents()[:12])
	d := drive(m)
	reply := make(chan steps.ConfirmResponse, 1)
	d.send(batchMsg{confirmMsg{reply: reply, req: steps.ConfirmRequest{StepID: "wipe", Danger: true, Targets: []string{"node2"}, Expect: "node2"}}})
	d.send(press("esc"))
	if len(reply) != 0 {
		t.Fatal("one esc refused the step")
	}
	d.send(press("esc"))
	r := <-reply
	if r.OK {
		t.Errorf("double esc: %+v, want a refusal", r)
	}
}

func TestTUIFailurePromptGolden(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			c := &chain{runID: "r20261121-030405-ab12", seq: 1}
			evs := append(runningEvents()[:2:2],
				c.started("hello", "node3", 1, "Say hello everywhere", "echo hello", at(20)),
				runlog.OutputLine{StepID: "hello", Target: "node3", Stderr: true, Line: "permission denied", Time: at(30)},
				c.finished("hello", "node3", 1, state.StatusFailed, 3, errBoom.Error(), time.Second, at(1030)),
			)
			m := runModel(t, evs)
			d := drive(m)
			reply := make(chan steps.Decision, 1)
			d.send(tea.WindowSizeMsg{Width: sz.w, Height: sz.h})
			d.send(batchMsg{decideMsg{reply: reply, req: steps.DecideRequest{StepID: "hello", Target: "node3", Err: errBoom,
				Options: []steps.DecisionKind{steps.DecisionRetry, steps.DecisionSkip, steps.DecisionAbort}}}})
			got := sized(t, d, sz.w, sz.h)
			for _, want := range []string{"Step hello failed on node3", "retry", "skip", "abort"} {
				if !strings.Contains(got, want) {
					t.Errorf("failure prompt lacks %q:\n%s", want, got)
				}
			}
			golden(t, fmt.Sprintf("failure_%dx%d", sz.w, sz.h), got)

			// skip needs a reason: an empty one is refused.
			d.send(press("down"))
			d.send(press("enter"))
			d.send(press("enter"))
			if len(reply) != 0 {
				t.Fatalf("skip without a reason answered: %+v", <-reply)
			}
			if !strings.Contains(frame(m), "reason is required") {
				t.Errorf("no hint that a reason is required:\n%s", frame(m))
			}
			d.typeText("node3 is decommissioned")
			d.send(press("enter"))
			select {
			case d := <-reply:
				if d.Kind != steps.DecisionSkip || d.Reason != "node3 is decommissioned" || d.By != "alice" {
					t.Errorf("decision = %+v", d)
				}
			default:
				t.Fatalf("no decision after the reason:\n%s", frame(m))
			}
		})
	}
}

func TestTUIInterruptAsksFirst(t *testing.T) {
	m := runModel(t, runningEvents())
	d := drive(m)
	d.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	d.send(press("ctrl+c"))
	got := frame(m)
	if !strings.Contains(got, "Interrupt the run?") || !strings.Contains(got, "drbook resume r20261121-030405-ab12") {
		t.Fatalf("ctrl+c did not ask:\n%s", got)
	}
	d.send(press("n"))
	if m.confirm || !m.running {
		t.Fatal("n did not keep the run going")
	}
	d.send(press("ctrl+c"))
	d.send(press("y"))
	// The engine's context is cancelled: its goroutine returns and reports.
	msg := m.bridge.Wait()()
	d.send(msg)
	if m.running {
		t.Fatal("run still running after the interrupt")
	}
	got = frame(m)
	if !strings.Contains(got, "resume with: drbook resume r20261121-030405-ab12") {
		t.Errorf("no resume hint after the interrupt:\n%s", got)
	}
}

func TestTUIResumeListGolden(t *testing.T) {
	runs := []state.Run{
		{ID: "r20261121-020000-aaaa", RunbookName: "total-cluster-recovery", RunbookTitle: "Rebuild the key store from a backup", RunbookPath: "runbooks/total.yaml",
			InventoryPath: "prod.yaml", Status: state.StatusInterrupted, Host: "ops1", CreatedAt: t0.Add(-70 * time.Minute), UpdatedAt: t0.Add(-62 * time.Minute)},
		{ID: "r20261120-230000-bbbb", RunbookName: "remove-node", RunbookPath: "runbooks/remove.yaml", Status: state.StatusFailed, Host: "ops2",
			CreatedAt: t0.Add(-5 * time.Hour), UpdatedAt: t0.Add(-4 * time.Hour)},
	}
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			var resumed state.Run
			m := New(context.Background(), Options{Unfinished: runs, Now: fixedNow, NoTick: true,
				Resume: func(_ context.Context, run state.Run, _ func(runlog.Event), _ steps.Operator) (engine.Outcome, error) {
					resumed = run
					return engine.Outcome{RunID: run.ID, Status: state.StatusSucceeded}, nil
				}})
			d := drive(m)
			got := sized(t, d, sz.w, sz.h)
			golden(t, fmt.Sprintf("resume_%dx%d", sz.w, sz.h), got)
			d.send(press("down"))
			d.send(press("enter"))
			if m.screen != screenRun {
				t.Fatalf("enter did not open the run screen")
			}
			if m.running {
				d.bridged(t)
			}
			if m.running {
				t.Error("run screen still running after the resume returned")
			}
			if resumed.ID != runs[1].ID {
				t.Errorf("resumed %q, want %q", resumed.ID, runs[1].ID)
			}
		})
	}
}

func TestTUIRunScreenScrollAndResize(t *testing.T) {
	m := runModel(t, runningEvents())
	d := drive(m)
	sized(t, d, 80, 24)
	d.send(press("b")) // page up
	got := frame(m)
	if !strings.Contains(got, "report line 09") || strings.Contains(got, "report line 29") || !strings.Contains(got, "line 11 of 31") {
		t.Errorf("page up did not scroll back:\n%s", got)
	}
	// New output does not pull a scrolled-back reader down.
	d.send(batchMsg{EventMsg{Event: runlog.OutputLine{StepID: "report", Target: "node2", Line: "late line", Time: at(70000)}}})
	if got := frame(m); strings.Contains(got, "late line") {
		t.Errorf("new output moved a pinned viewport:\n%s", got)
	}
	d.send(press("G"))
	if got := frame(m); !strings.Contains(got, "late line") {
		t.Errorf("G did not go back to the end:\n%s", got)
	}
	// Resizing reflows every part of the screen.
	for _, sz := range []struct{ w, h int }{{60, 15}, {132, 50}, {80, 24}} {
		sized(t, d, sz.w, sz.h)
	}
	// ? toggles the full help.
	d.send(press("?"))
	if got := frame(m); !strings.Contains(got, "follow running step") {
		t.Errorf("? did not show the full help:\n%s", got)
	}
	checkFrame(t, "full help", frame(m), 80, 24)
}

func TestTUIDangerManyTargetsKeepsInput(t *testing.T) {
	m := runModel(t, runningEvents()[:12])
	d := drive(m)
	var targets, sums []string
	for i := range 20 {
		n := fmt.Sprintf("node%02d", i)
		targets = append(targets, n)
		sums = append(sums, "drbook-agent reset --delete-data on "+n)
	}
	d.send(batchMsg{confirmMsg{reply: make(chan steps.ConfirmResponse, 1), req: steps.ConfirmRequest{StepID: "reset", Danger: true,
		Targets: targets, Summaries: sums, Expect: strings.Join(targets, ",")}}})
	got := sized(t, d, 80, 24)
	for _, want := range []string{"DANGER", "more lines below (pgdn)", "> ", "to go ahead", "enter confirm", "esc esc refuse"} {
		if !strings.Contains(got, want) {
			t.Errorf("tall danger box lacks %q:\n%s", want, got)
		}
	}
}
