package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

func loadInv5(t testing.TB) *runbooks.Inventory {
	t.Helper()
	src, err := runbooks.ReadFile("testdata/inventory5.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := runbooks.ParseInventory("testdata/inventory5.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// formModel opens the form of the runbook at path on five nodes; the run's
// inputs arrive on the returned channel when it starts.
func formModel(t *testing.T, path string, w, h int) (*Model, *driver, chan map[string]runbooks.Value) {
	t.Helper()
	inv := loadInv5(t)
	rb := loadRB(t, path, inv)
	got := make(chan map[string]runbooks.Value, 1)
	m := New(context.Background(), Options{Runbook: &PickerItem{Path: path, Runbook: rb}, Inventory: inv, Now: fixedNow, NoTick: true,
		Start: func(_ context.Context, _ *runbooks.Runbook, inputs map[string]runbooks.Value, _ func(runlog.Event), _ steps.Operator) (engine.Outcome, error) {
			got <- inputs
			return engine.Outcome{}, nil
		}})
	d := drive(m)
	d.run(m.Init())
	sized(t, d, w, h)
	return m, d, got
}

// shown returns the node rows of the list on screen, in order.
func shown(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(strings.NewReplacer("┃", " ", ">", " ", "[ ]", " ", "[•]", " ", "[x]", " ", "[✓]", " ").Replace(l))
		if len(f) == 1 && strings.HasPrefix(f[0], "node") {
			out = append(out, f[0])
		}
	}
	return out
}

func has(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("screen lacks %q:\n%s", w, s)
		}
	}
}

// TestTUIFormNodeChoices: a node input distinct from another offers every
// node but the one chosen, and a nodes input leaves it out of its list.
func TestTUIFormNodeChoices(t *testing.T) {
	for _, tc := range []struct {
		name, path   string
		first, title string
		want         string
	}{
		{"joiners exclude the seed", "testdata/e2e/cluster.yaml", "Seed node", "Nodes to join", "node1,node3,node4,node5"},
		{"healthy is not the failed node", "testdata/failover.yaml", "Failed node", "Healthy node", "node1,node3,node4,node5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, d, _ := formModel(t, tc.path, 120, 40)
			s := frame(m)
			if got := strings.Join(shown(s), ","); got != "node1,node2,node3,node4,node5" || !strings.Contains(s, tc.first) {
				t.Fatalf("first input shows %q:\n%s", got, s)
			}
			d.send(press("down"))
			d.send(press("enter")) // node2
			s = frame(m)
			if got := strings.Join(shown(s), ","); got != tc.want || !strings.Contains(s, tc.title) {
				t.Errorf("second input offers %q, want %q:\n%s", got, tc.want, s)
			}
		})
	}
}

// TestTUIFormListAndErrors: the multi-select shows every node at both sizes
// (golden), no error before a key, the error after enter with nothing chosen.
func TestTUIFormListAndErrors(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m, d, _ := formModel(t, "testdata/e2e/cluster.yaml", sz.w, sz.h)
			d.send(press("enter")) // seed node1
			s := frame(m)
			checkFrame(t, "joiners", s, sz.w, sz.h)
			if got := strings.Join(shown(s), ","); got != "node2,node3,node4,node5" {
				t.Errorf("the multi-select shows %q at once, want node2..node5:\n%s", got, s)
			}
			if strings.Contains(s, "at least") {
				t.Errorf("an error before any key:\n%s", s)
			}
			golden(t, fmt.Sprintf("form_nodes_%dx%d", sz.w, sz.h), s)
			d.send(press("enter"))
			if s := frame(m); !strings.Contains(s, "at least 1") || !strings.Contains(s, "Nodes to join") {
				t.Errorf("enter with nothing chosen: no error, or the form moved on:\n%s", s)
			}
		})
	}
}

// TestTUIFormScrolls: with more nodes than fit, the list fills the room it
// has and scrolls to the cursor.
func TestTUIFormScrolls(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: drbook/v1\nkind: Inventory\nname: many\nnodes:\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  - {name: node%d, transport: local}\n", i)
	}
	inv, err := runbooks.ParseInventory("many.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	rb := loadRB(t, "testdata/e2e/cluster.yaml", inv)
	m := New(context.Background(), Options{Runbook: &PickerItem{Path: "cluster.yaml", Runbook: rb}, Inventory: inv, Now: fixedNow, NoTick: true})
	d := drive(m)
	d.run(m.Init())
	sized(t, d, 80, 24)
	d.send(press("enter"))
	s := frame(m)
	rows := shown(s)
	// 24 lines less header (2), title and description (2), error room
	// (2) and help (2).
	if len(rows) != 16 || rows[0] != "node2" {
		t.Fatalf("80x24 shows %d nodes from %v, want 16 from node2:\n%s", len(rows), rows, s)
	}
	for range 30 {
		d.send(press("down"))
	}
	s = frame(m)
	checkFrame(t, "scrolled", s, 80, 24)
	if rows := shown(s); len(rows) != 16 || rows[len(rows)-1] != "node32" {
		t.Errorf("after 30 downs the list shows %v, want 16 ending at node32:\n%s", rows, s)
	}
}

// TestTUIFormReview: the review lists every answer with the secret masked,
// enter changes one and comes back, a change that breaks a later answer is
// shown and blocks the start, esc goes back to the last input and back, and
// s starts the run with the answers.
func TestTUIFormReview(t *testing.T) {
	const secret = "k3y-review-9d2"
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m, d, got := formModel(t, "testdata/e2e/cluster.yaml", sz.w, sz.h)
			d.send(press("down"))
			d.send(press("enter")) // seed node2
			d.send(press("x"))     // node1
			d.send(press("down"))
			d.send(press("x")) // node3
			d.send(press("enter"))
			d.typeText(secret)
			d.send(press("enter"))
			s := frame(m)
			checkFrame(t, "review", s, sz.w, sz.h)
			has(t, s, "drbook review", "node2", "node1, node3", "••••••", "press s to start the run", "esc previous input")
			if strings.Contains(s, secret) {
				t.Fatalf("the review shows the secret:\n%s", s)
			}
			golden(t, fmt.Sprintf("review_%dx%d", sz.w, sz.h), s)

			// Change the seed to node1: the joiners now hold the seed.
			d.send(press("enter")) // cursor on seed
			has(t, frame(m), "Seed node", "esc back to the review")
			d.send(press("up"))
			d.send(press("enter"))
			s = frame(m)
			has(t, s, "drbook review", "needs a change", "node1 is already chosen for seed")
			d.send(press("s"))
			select {
			case <-got:
				t.Fatal("the run started with the seed among the joiners")
			default:
			}
			has(t, frame(m), "cannot start")
			// The cursor is on the joiners: fix them (drop node1, add node4).
			d.send(press("enter"))
			s = frame(m)
			if rows := strings.Join(shown(s), ","); rows != "node2,node3,node4,node5" {
				t.Errorf("the joiners now offer %q, want node2..node5:\n%s", rows, s)
			}
			// The cursor starts on the first chosen node, node3.
			d.send(press("down"))
			has(t, frame(m), "> [ ] node4")
			d.send(press("x")) // node4
			d.send(press("enter"))
			has(t, frame(m), "node3, node4", "All answers are valid")

			// esc: to the last input, and from there back to the review.
			d.send(press("esc"))
			has(t, frame(m), "Backup passphrase", "input 3 of 3", "esc back to the review")
			d.send(press("esc"))
			has(t, frame(m), "drbook review")

			d.send(press("s"))
			select {
			case in := <-got:
				if in["seed"].V != "node1" || in["passphrase"].V != secret || !in["passphrase"].Secret {
					t.Errorf("inputs = %+v", in)
				}
				if j, _ := in["joiners"].V.([]string); strings.Join(j, ",") != "node3,node4" {
					t.Errorf("joiners = %#v, want node3,node4", in["joiners"].V)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("s did not start the run:\n%s", frame(m))
			}
		})
	}
}

// TestTUIFormEscLeaves: esc on the first input goes back to the picker, and
// esc on a later one to the input before, keeping what was chosen.
func TestTUIFormEscLeaves(t *testing.T) {
	inv := loadInv5(t)
	items := []PickerItem{{Path: "testdata/e2e/cluster.yaml", Runbook: loadRB(t, "testdata/e2e/cluster.yaml", inv)}}
	m := New(context.Background(), Options{Items: items, Inventory: inv, Now: fixedNow, NoTick: true})
	d := drive(m)
	sized(t, d, 80, 24)
	d.send(press("enter"))
	has(t, frame(m), "Seed node", "esc back to the runbooks")
	d.send(press("down"))
	d.send(press("enter")) // node2
	has(t, frame(m), "Nodes to join", "esc previous input")
	d.send(press("esc"))
	if s := frame(m); !strings.Contains(s, "Seed node") || !strings.Contains(s, "> node2") {
		t.Errorf("esc did not go back to the seed with node2 kept:\n%s", s)
	}
	d.send(press("esc"))
	if m.screen != screenPicker || !strings.Contains(frame(m), "pick a runbook") {
		t.Errorf("esc on the first input: screen %v, want the picker:\n%s", m.screen, frame(m))
	}
}

// oneByte returns its bytes one read at a time, then blocks until ctx ends
// (a closed input would end the program before the key is read).
type oneByte struct {
	ctx context.Context
	b   []byte
}

func (r *oneByte) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		<-r.ctx.Done()
		return 0, io.EOF
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

// TestTUICtrlCInFormIsInterrupted: ctrl+c in the form ends the program with
// ErrInterrupted (exit 130 in the command) and no run started.
func TestTUICtrlCInFormIsInterrupted(t *testing.T) {
	inv := loadInv5(t)
	rb := loadRB(t, "testdata/e2e/cluster.yaml", inv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Runbook: &PickerItem{Path: "cluster.yaml", Runbook: rb}, Inventory: inv, Now: fixedNow, NoTick: true},
		tea.WithInput(&oneByte{ctx: ctx, b: []byte{0x03}}), tea.WithOutput(io.Discard), tea.WithWindowSize(80, 24), tea.WithoutSignals())
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("Run = %v, want ErrInterrupted (matching engine.ErrInterrupted)", err)
	}
	if res.Started {
		t.Error("a run started")
	}
}

// TestTUIPickerWithoutInventory: without -i the picker says how to give an
// inventory, and a runbook that runs on nodes does not open empty pickers.
func TestTUIPickerWithoutInventory(t *testing.T) {
	inv := loadInv(t)
	m := New(context.Background(), Options{Items: pickerItems(t, inv), PickerTitle: "testdata", Now: fixedNow, NoTick: true})
	d := drive(m)
	s := sized(t, d, 80, 24)
	has(t, s, "No inventory", "-i inventory.yaml")
	d.send(press("down"))
	d.send(press("enter"))
	s = frame(m)
	checkFrame(t, "hint", s, 80, 24)
	if m.screen != screenPicker {
		t.Fatalf("a runbook on nodes opened without an inventory:\n%s", s)
	}
	has(t, s, "tui-drill runs on nodes and needs an inventory", "drbook -i")
}

// TestTUIFormEscQuits: opened on one runbook (drbook run), esc on the first
// input ends the program (nothing ran) and the last frame still renders.
func TestTUIFormEscQuits(t *testing.T) {
	m, _, _ := formModel(t, "testdata/e2e/cluster.yaml", 80, 24)
	has(t, frame(m), "esc quit")
	_, cmd := m.Update(press("esc"))
	if cmd == nil {
		t.Fatal("esc on the first input did nothing")
	}
	_, cmd = m.Update(cmd())
	if cmd == nil {
		t.Fatal("esc on the first input did not quit")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("esc on the first input did not quit")
	}
	has(t, frame(m), "Seed node")
}

// TestTUIFormReviewScrolls: a review taller than the screen keeps the
// cursor row and the help line on it, and says how many rows are hidden.
func TestTUIFormReviewScrolls(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: drbook/v1\nkind: Runbook\nname: many-inputs\ninputs:\n")
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "  in%02d: {type: string, prompt: \"Answer %d\", default: \"v%d\"}\n", i, i, i)
	}
	b.WriteString("steps:\n  - {id: one, run: shell, on: node1, with: {command: \"true\"}}\n")
	inv := loadInv(t)
	rb, err := runbooks.LoadRunbook("many.yaml", []byte(b.String()), steps.NewRegistry(), inv)
	if err != nil {
		t.Fatal(err)
	}
	m := New(context.Background(), Options{Runbook: &PickerItem{Path: "many.yaml", Runbook: rb}, Inventory: inv, Now: fixedNow, NoTick: true})
	d := drive(m)
	d.run(m.Init())
	sized(t, d, 80, 24)
	for range 30 {
		d.send(press("enter"))
	}
	s := frame(m)
	checkFrame(t, "review", s, 80, 24)
	has(t, s, "drbook review", "› in01", "↓ ", "more", "s start the run")
	for range 20 {
		d.send(press("down"))
	}
	s = frame(m)
	checkFrame(t, "review scrolled", s, 80, 24)
	has(t, s, "› in21", "↑ ", "v21", "s start the run")
}

// TestTUIFormNothingToChoose: a node input with no node left says why and
// how to go on instead of showing an empty list; esc leaves it.
func TestTUIFormNothingToChoose(t *testing.T) {
	src := []byte(`apiVersion: drbook/v1
kind: Runbook
name: ghost
inputs:
  first: {type: nodes, prompt: "Every node", min: 1}
  other: {type: node, prompt: "Another node", distinct_from: [first]}
steps:
  - {id: one, run: shell, on: "{{ inputs.other }}", with: {command: "true"}}
`)
	inv := loadInv(t)
	rb, err := runbooks.LoadRunbook("ghost.yaml", src, steps.NewRegistry(), inv)
	if err != nil {
		t.Fatal(err)
	}
	m := New(context.Background(), Options{Runbook: &PickerItem{Path: "ghost.yaml", Runbook: rb}, Inventory: inv, Now: fixedNow, NoTick: true})
	d := drive(m)
	d.run(m.Init())
	sized(t, d, 80, 24)
	d.send(tea.KeyPressMsg{Code: 'a', Mod: tea.ModCtrl}) // select all
	d.send(press("enter"))
	s := frame(m)
	has(t, s, "Another node", "No node is left to choose", "nodes of first are left out", "esc previous input")
	d.send(press("enter"))
	has(t, frame(m), "No node is left to choose")
	d.send(press("esc"))
	has(t, frame(m), "Every node", "input 1 of 2")
}

// TestTUIFormRandomKeys sends seeded random keys to the form at both sizes:
// it never panics and every frame fits the terminal.
func TestTUIFormRandomKeys(t *testing.T) {
	keys := []string{"up", "down", "enter", "esc", "x", "left", "tab", "backspace", "/", "a", "1", "n", "k"}
	for _, sz := range sizes {
		for seed := uint64(1); seed <= 2; seed++ {
			t.Run(fmt.Sprintf("%dx%d/seed%d", sz.w, sz.h, seed), func(t *testing.T) {
				m, d, _ := formModel(t, "testdata/e2e/cluster.yaml", sz.w, sz.h)
				r := rand.New(rand.NewPCG(seed, 42))
				for i := 0; i < 150 && m.screen == screenForm; i++ {
					k := keys[r.IntN(len(keys))]
					d.send(press(k))
					if s := frame(m); m.screen == screenForm {
						checkFrame(t, fmt.Sprintf("after key %d (%s)", i, k), s, sz.w, sz.h)
					}
				}
			})
		}
	}
}
