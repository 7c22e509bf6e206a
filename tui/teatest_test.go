package tui

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest/v2"
)

// TestTUITeatestPicker runs the picker as a real bubbletea program through
// teatest at both sizes: the program renders, takes a key, and its final
// frame is compared with a golden file (go test ./tui -run Teatest -update).
func TestTUITeatestPicker(t *testing.T) {
	inv := loadInv(t)
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m := New(context.Background(), Options{Items: pickerItems(t, inv), PickerTitle: "testdata", Inventory: inv, Now: fixedNow, NoTick: true})
			tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(sz.w, sz.h))
			teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("testdata")) },
				teatest.WithDuration(5*time.Second))
			tm.Send(press("down"))
			// Wait until the key has been handled, then leave.
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(frame(m), "3 steps · 1 danger") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if err := tm.Quit(); err != nil {
				t.Fatal(err)
			}
			final, ok := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
			if !ok {
				t.Fatal("final model is not the TUI model")
			}
			got := frame(final)
			checkFrame(t, fmt.Sprintf("%dx%d", sz.w, sz.h), got, sz.w, sz.h)
			golden(t, fmt.Sprintf("teatest_picker_%dx%d", sz.w, sz.h), got)
		})
	}
}

// TestTUITeatestReplay opens a recorded run read-only as a real program and
// compares the final frame, after moving to the first step, at both sizes.
func TestTUITeatestReplay(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			rep := recorded(t)
			m := New(context.Background(), Options{Replay: &rep, Now: fixedNow, NoTick: true})
			tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(sz.w, sz.h))
			teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("REPLAY")) },
				teatest.WithDuration(5*time.Second))
			tm.Send(press("k"))
			tm.Send(press("k"))
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(frame(m), "hello from node1") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if err := tm.Quit(); err != nil {
				t.Fatal(err)
			}
			final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
			got := frame(final)
			if !strings.Contains(got, "chain verified ✓") {
				t.Errorf("replay frame lacks the verification status:\n%s", got)
			}
			golden(t, fmt.Sprintf("teatest_replay_%dx%d", sz.w, sz.h), got)
		})
	}
}

// TestTUITeatestForm fills the cluster form as a real program at both
// sizes, one field at a time (huh moves between fields by command), up to
// the review, and checks the final frame: every answer, the secret masked.
func TestTUITeatestForm(t *testing.T) {
	const secret = "teatest-s3cret"
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			inv := loadInv5(t)
			rb := loadRB(t, "testdata/e2e/cluster.yaml", inv)
			m := New(context.Background(), Options{Runbook: &PickerItem{Path: "cluster.yaml", Runbook: rb}, Inventory: inv, Now: fixedNow, NoTick: true})
			tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(sz.w, sz.h))
			wait := func(want string) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(frame(m), want) {
					if time.Now().After(deadline) {
						t.Fatalf("the form never showed %q:\n%s", want, frame(m))
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			wait("Seed node")
			tm.Send(press("down"))
			wait("> node2")
			tm.Send(press("enter"))
			wait("Nodes to join")
			tm.Send(press("x"))
			wait("[•] node1")
			tm.Send(press("enter"))
			wait("Backup passphrase")
			for _, r := range secret {
				tm.Send(press(string(r)))
			}
			tm.Send(press("enter")) // after the letters: one field, keys in order
			wait("drbook review")
			if err := tm.Quit(); err != nil {
				t.Fatal(err)
			}
			final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
			got := frame(final)
			checkFrame(t, "review", got, sz.w, sz.h)
			for _, want := range []string{"seed", "node2", "joiners", "node1", "••••••", "press s to start the run"} {
				if !strings.Contains(got, want) {
					t.Errorf("review lacks %q:\n%s", want, got)
				}
			}
			if strings.Contains(got, secret) {
				t.Errorf("review shows the secret:\n%s", got)
			}
		})
	}
}
