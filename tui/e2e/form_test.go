package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// formCommand runs drbook on the cluster runbook of the form tests with five
// local nodes, then prints its exit code.
func formCommand(t *testing.T) (dir, cmd string) {
	t.Helper()
	dir, db := workdir(t, "cluster.yaml")
	inv := abs(t, "../testdata/inventory5.yaml")
	cmd = fmt.Sprintf("cd %s && env NO_COLOR=1 TERM=xterm-256color USER=e2e-operator %s --db %s --log-file %s run runbooks/cluster.yaml -i %s; echo DRBOOK-EXIT=$?; sleep 60",
		dir, drbookBin, db, filepath.Join(dir, "tui.log"), inv)
	return dir, cmd
}

// optionRow matches a node row of the multi-select: cursor, box, name.
var optionRow = regexp.MustCompile(`(?m)^┃\s+(?:>\s+)?\[.\]\s+(node\d)\b`)

// listed returns the nodes the multi-select shows, in screen order.
func listed(screen string) []string {
	var out []string
	for _, m := range optionRow.FindAllStringSubmatch(screen, -1) {
		out = append(out, m[1])
	}
	return out
}

func fits(t *testing.T, screen string, w int) {
	t.Helper()
	for _, l := range strings.Split(screen, "\n") {
		if n := len([]rune(l)); n > w {
			t.Errorf("line wider than the %d-column terminal (%d): %q", w, n, l)
		}
	}
}

// TestTUIFormEndToEnd fills the form of a runbook whose joiners must not
// include the seed, in tmux at 80x24 and 120x40: the multi-select shows
// every node at once and leaves the seed out, its error shows only after
// the operator acts, and the review lists every answer (the secret masked),
// takes the operator back to change one, and starts the run.
func TestTUIFormEndToEnd(t *testing.T) {
	const secret = "pass-form-e2e-41c7"
	for _, sz := range []struct{ w, h int }{{80, 24}, {120, 40}} {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			_, cmd := formCommand(t)
			tm := startTmux(t, sz.w, sz.h, cmd)
			var screens []string
			seed := tm.waitFor("Seed node")
			screens = append(screens, seed)
			for _, n := range []string{"node1", "node2", "node3", "node4", "node5"} {
				if !strings.Contains(seed, n) {
					t.Errorf("the seed select does not show %s:\n%s", n, seed)
				}
			}
			tm.keys("Down", "Enter") // node2

			join := tm.waitFor("Nodes to join")
			screens = append(screens, join)
			if got := strings.Join(listed(join), ","); got != "node1,node3,node4,node5" {
				t.Errorf("the multi-select shows %q at once, want node1,node3,node4,node5 (every node but the seed):\n%s", got, join)
			}
			if strings.Contains(join, "at least") {
				t.Errorf("the error shows before the operator acted:\n%s", join)
			}
			tm.keys("Enter") // nothing chosen
			screens = append(screens, tm.waitFor("at least 1"))
			tm.keys("x", "Down", "x") // node1, node3
			tm.waitUntil("node1 and node3 chosen, error gone", func(s string) bool {
				return !strings.Contains(s, "at least") && strings.Count(s, "[ ]") == 2
			})
			tm.keys("Enter")

			screens = append(screens, tm.waitFor("Backup passphrase"))
			tm.text(secret)
			tm.keys("Enter")

			review := tm.waitFor("press s to start the run")
			screens = append(screens, review)
			for _, want := range []string{"drbook review", "seed", "node2", "joiners", "node1, node3", "passphrase", "••••••", "esc previous input"} {
				if !strings.Contains(review, want) {
					t.Errorf("the review lacks %q:\n%s", want, review)
				}
			}
			if strings.Contains(tm.capture(), "1/2 steps") || strings.Contains(review, "drbook RUN") {
				t.Fatalf("the run started before the review:\n%s", review)
			}

			// Change the joiners from the review.
			tm.keys("Down")
			tm.waitFor("› joiners")
			tm.keys("Enter")
			edit := tm.waitFor("esc back to the review")
			screens = append(screens, edit)
			if !strings.Contains(edit, "Nodes to join") {
				t.Fatalf("enter on the joiners row did not open the joiners:\n%s", edit)
			}
			tm.keys("Down", "Down", "x") // node4
			tm.waitUntil("node4 chosen", func(s string) bool { return strings.Count(s, "[ ]") == 1 })
			tm.keys("Enter")
			review = tm.waitFor("node1, node3, node4")
			screens = append(screens, review)

			// Esc goes back to the last input, and esc there back to the review.
			// (Each key waits for the screen it leads to: an escape followed
			// at once by another key reads as alt+key.)
			tm.keys("Escape")
			back := tm.waitFor("esc back to the review")
			if !strings.Contains(back, "drbook inputs") || !strings.Contains(back, "input 3 of 3") {
				t.Errorf("esc on the review did not go back to the last input:\n%s", back)
			}
			tm.keys("Escape")
			screens = append(screens, tm.waitFor("press s to start the run"))

			tm.keys("s")
			final := tm.waitFor("run succeeded")
			screens = append(screens, final)
			for _, want := range []string{"2/2 steps", "└ ✓ node4"} {
				if !strings.Contains(final, want) {
					t.Errorf("final screen lacks %q:\n%s", want, final)
				}
			}
			tm.keys("q")
			exited := tm.waitFor("DRBOOK-EXIT=")
			if !strings.Contains(exited, "DRBOOK-EXIT=0") {
				t.Errorf("drbook did not exit 0:\n%s", exited)
			}
			for _, s := range append(screens, exited) {
				fits(t, s, sz.w)
				if strings.Contains(s, secret) {
					t.Fatalf("the secret was echoed on the screen:\n%s", s)
				}
			}
		})
	}
}

// TestTUIFormCtrlC: ctrl+c in the form ends drbook with exit code 130 and
// says nothing ran.
func TestTUIFormCtrlC(t *testing.T) {
	_, cmd := formCommand(t)
	tm := startTmux(t, 80, 24, cmd)
	tm.waitFor("Seed node")
	tm.keys("Down", "Enter")
	tm.waitFor("Nodes to join")
	tm.keys("C-c")
	exited := tm.waitFor("DRBOOK-EXIT=")
	if !strings.Contains(exited, "DRBOOK-EXIT=130") || !strings.Contains(exited, "nothing ran") {
		t.Fatalf("ctrl+c in the form should exit 130 saying nothing ran:\n%s", exited)
	}
}

// TestTUIPickerPluginRunbook: the picker opens a runbook whose step kind
// comes from a plugin it pins (as run and lint do), and runs it; the
// plugin process ends with drbook.
func TestTUIPickerPluginRunbook(t *testing.T) {
	dir, db := workdir(t)
	plug := filepath.Join(dir, "runbooks", "drbook-plugin-hello")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", plug, "github.com/drbook/drbook/steps/plugin/testdata/hello").CombinedOutput(); err != nil {
		t.Fatalf("build the hello plugin: %v\n%s", err, out)
	}
	sum, err := fileSHA256(plug)
	if err != nil {
		t.Fatal(err)
	}
	rb := fmt.Sprintf(`apiVersion: drbook/v1
kind: Runbook
name: tui-plugin
title: Greet through a plugin
plugins:
  - {path: ./drbook-plugin-hello, sha256: %s}
steps:
  - id: greet
    run: hello.say
    on: all
    with: {to: picker}
`, sum)
	if err := os.WriteFile(filepath.Join(dir, "runbooks", "plugin.yaml"), []byte(rb), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := abs(t, "../testdata/inventory.yaml")
	tm := startTmux(t, 80, 24, fmt.Sprintf("cd %s && env NO_COLOR=1 TERM=xterm-256color %s --db %s -i %s --dir runbooks; echo DRBOOK-EXIT=$?; sleep 60",
		dir, drbookBin, db, inv))
	pick := tm.waitFor("pick a runbook")
	if !strings.Contains(pick, "tui-plugin") || strings.Contains(pick, "unknown step kind") {
		t.Fatalf("the plugin runbook is not offered as runnable:\n%s", pick)
	}
	tm.keys("Enter") // first in the list; no inputs
	done := tm.waitFor("run succeeded")
	if !strings.Contains(done, "hello picker from node") {
		t.Errorf("the plugin step's output is not shown:\n%s", done)
	}
	tm.keys("q")
	if s := tm.waitFor("DRBOOK-EXIT="); !strings.Contains(s, "DRBOOK-EXIT=0") {
		t.Fatalf("drbook did not exit 0:\n%s", s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pids := processesOf(plug); len(pids) > 0; pids = processesOf(plug) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes left after drbook exited: %v", pids)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", sha256.Sum256(b)), nil
}

// processesOf lists the PIDs whose command line starts with path.
func processesOf(path string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), path) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
