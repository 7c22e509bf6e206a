// Package e2e drives the real drbook binary's terminal UI inside tmux: pick
// a runbook, fill the form, confirm a danger step (a wrong name first), and
// verify the record it leaves.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/state"
)

// drbookBin is the drbook binary, built once.
var drbookBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drbook-tui-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	drbookBin = filepath.Join(dir, "drbook")
	out, err := exec.Command("go", "build", "-o", drbookBin, "github.com/drbook/drbook/cmd/drbook").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build drbook: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tmux is one private tmux server with one session running a command.
type tmux struct {
	t      *testing.T
	socket string
}

func startTmux(t *testing.T, w, h int, command string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is needed for the TUI end-to-end test: %v", err)
	}
	tm := &tmux{t: t, socket: fmt.Sprintf("drbook-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())}
	tm.run("new-session", "-d", "-s", "e2e", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), command)
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", tm.socket, "kill-server").Run() })
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tmux", append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (tm *tmux) capture() string { return tm.run("capture-pane", "-p", "-t", "e2e") }

// keys sends tmux key names (Enter, Down, ...).
func (tm *tmux) keys(keys ...string) { tm.run(append([]string{"send-keys", "-t", "e2e"}, keys...)...) }

// text types literal text.
func (tm *tmux) text(s string) { tm.run("send-keys", "-t", "e2e", "-l", s) }

// waitFor polls the pane until it shows want, within 20 s, and returns it.
func (tm *tmux) waitFor(want string) string {
	tm.t.Helper()
	return tm.waitUntil(fmt.Sprintf("%q", want), func(s string) bool { return strings.Contains(s, want) })
}

// waitUntil polls the pane until ok holds, within 20 s.
func (tm *tmux) waitUntil(what string, ok func(string) bool) string {
	tm.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for time.Now().Before(deadline) {
		last = tm.capture()
		if ok(last) {
			return last
		}
		<-tick.C
	}
	tm.t.Fatalf("the screen never showed %s; last screen:\n%s", what, last)
	return ""
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// workdir copies the named runbooks into a fresh directory's runbooks/.
func workdir(t *testing.T, files ...string) (dir, db string) {
	t.Helper()
	dir = t.TempDir()
	books := filepath.Join(dir, "runbooks")
	if err := os.Mkdir(books, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "e2e", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(books, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(dir, "drbook.db")
}

func TestTUIEndToEnd(t *testing.T) {
	dir, db := workdir(t, "broken.yaml", "drill.yaml")
	inv := abs(t, "../testdata/inventory.yaml")
	const secret = "pass-e2e-7f3a91"
	cmd := fmt.Sprintf("cd %s && env NO_COLOR=1 TERM=xterm-256color USER=e2e-operator %s --db %s -i %s --dir runbooks --log-file %s; echo DRBOOK-EXIT=$?; sleep 60",
		dir, drbookBin, db, inv, filepath.Join(dir, "tui.log"))
	tm := startTmux(t, 120, 40, cmd)

	screens := []string{tm.waitFor("pick a runbook")}
	if !strings.Contains(screens[0], "broken.yaml:6:10") {
		t.Errorf("the broken runbook's first problem is not shown:\n%s", screens[0])
	}
	tm.keys("Down", "Enter")
	screens = append(screens, tm.waitFor("Node to wipe"))
	tm.keys("Down", "Enter") // node2
	screens = append(screens, tm.waitFor("Passphrase"))
	tm.text(secret)
	screens = append(screens, tm.capture())
	tm.keys("Enter")
	screens = append(screens, tm.waitFor("Label"))
	tm.keys("Enter") // default "drill"
	screens = append(screens, tm.waitFor("press s to start the run"))
	tm.keys("s")

	screens = append(screens, tm.waitFor("Type node2 to go ahead"))
	tm.text("node3")
	tm.keys("Enter")
	screens = append(screens, tm.waitFor(`"node3" is not "node2"`))
	if s := tm.capture(); !strings.Contains(s, "1/3 steps") {
		t.Errorf("a wrong name let the danger step run:\n%s", s)
	}
	tm.text("node2")
	tm.keys("Enter")
	final := tm.waitFor("run succeeded")
	screens = append(screens, final)
	for _, want := range []string{"3/3 steps", "wipe", "report", "└ ✓ node3"} {
		if !strings.Contains(final, want) {
			t.Errorf("final screen lacks %q:\n%s", want, final)
		}
	}
	// Resizing reflows; this capture is the one the README shows.
	tm.run("resize-window", "-t", "e2e", "-x", "100", "-y", "30")
	small := tm.waitUntil("the whole run screen at 100x30", func(s string) bool {
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		return strings.HasPrefix(lines[0], "drbook RUN") && strings.Contains(s, "run succeeded") && len(lines) <= 30
	})
	screens = append(screens, small)
	if err := os.WriteFile(filepath.Join(dir, "run-screen-100x30.txt"), []byte(small), 0o644); err == nil {
		t.Logf("run screen at 100x30:\n%s", small)
	}
	for _, line := range strings.Split(small, "\n") {
		if n := len([]rune(line)); n > 100 {
			t.Errorf("line wider than the 100-column terminal (%d): %q", n, line)
		}
	}
	tm.keys("q")
	exited := tm.waitFor("DRBOOK-EXIT=")
	if !strings.Contains(exited, "DRBOOK-EXIT=0") {
		t.Fatalf("drbook did not exit 0:\n%s", exited)
	}
	for _, s := range append(screens, exited) {
		if strings.Contains(s, secret) {
			t.Fatalf("the secret was echoed on the screen:\n%s", s)
		}
	}
	m := regexp.MustCompile(`run (r\d{8}-\d{6}-[0-9a-f]+) succeeded`).FindStringSubmatch(exited)
	if m == nil {
		t.Fatalf("no run id printed after the TUI exited:\n%s", exited)
	}
	runID := m[1]

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	verify := exec.CommandContext(ctx, drbookBin, "--db", db, "replay", runID, "--verify")
	out, err := verify.CombinedOutput()
	if err != nil {
		t.Fatalf("drbook replay %s --verify: %v\n%s", runID, err, out)
	}
	// The record names the real account (USER=e2e-operator is ignored:
	// anyone can set it), in the one form user@host.
	for _, want := range []string{"hash chain intact", "wipe@node2#1", "(by " + state.CurrentActor("").String() + ")"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("replay output lacks %q:\n%s", want, out)
		}
	}
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Error("the secret is in clear in the checkpoint database")
	}

	// The same record opens read-only in the TUI.
	rp := startTmux(t, 120, 40, fmt.Sprintf("env NO_COLOR=1 TERM=xterm-256color %s --db %s replay %s --tui; echo DRBOOK-EXIT=$?; sleep 60", drbookBin, db, runID))
	shown := rp.waitFor("chain verified ✓")
	if !strings.Contains(shown, "REPLAY") || !strings.Contains(shown, "3/3 steps") {
		t.Errorf("replay screen:\n%s", shown)
	}
	rp.keys("q")
	if s := rp.waitFor("DRBOOK-EXIT="); !strings.Contains(s, "DRBOOK-EXIT=0") {
		t.Errorf("replay --tui did not exit 0:\n%s", s)
	}
}

// TestTUIInterruptAndResume interrupts a slow step with ctrl+c (asked
// first), then starts drbook again: the unfinished run is offered first,
// resuming it shows the check: decision, and the run completes.
func TestTUIInterruptAndResume(t *testing.T) {
	dir, db := workdir(t, "slow.yaml")
	inv := abs(t, "../testdata/inventory.yaml")
	drbook := fmt.Sprintf("cd %s && env NO_COLOR=1 TERM=xterm-256color USER=e2e-operator %s --db %s -i %s --dir runbooks; echo DRBOOK-EXIT=$?; sleep 60",
		dir, drbookBin, db, inv)
	tm := startTmux(t, 120, 40, drbook)
	tm.waitFor("pick a runbook")
	tm.keys("Enter") // tui-slow, first in the list; it has no inputs
	tm.waitFor("Copy the snapshot (slow)")
	tm.waitFor("copying")
	tm.keys("C-c")
	asked := tm.waitFor("Interrupt the run?")
	if !strings.Contains(asked, "It can be resumed: drbook resume r") {
		t.Errorf("the interrupt question does not say how to resume:\n%s", asked)
	}
	tm.keys("y")
	stopped := tm.waitFor("resume with: drbook resume")
	if !strings.Contains(stopped, "interrupted") {
		t.Errorf("interrupted run screen:\n%s", stopped)
	}
	tm.keys("q")
	exited := tm.waitFor("DRBOOK-EXIT=")
	if !strings.Contains(exited, "DRBOOK-EXIT=130") {
		t.Fatalf("an interrupted run should exit 130:\n%s", exited)
	}

	again := startTmux(t, 120, 40, drbook)
	offer := again.waitFor("unfinished runs")
	if !strings.Contains(offer, "tui-slow") || !strings.Contains(offer, "interrupted") {
		t.Fatalf("the interrupted run is not offered:\n%s", offer)
	}
	again.keys("Enter")
	done := again.waitFor("run succeeded")
	for _, want := range []string{"RESUMED", "3/3 steps"} {
		if !strings.Contains(done, want) {
			t.Errorf("resumed run screen lacks %q:\n%s", want, done)
		}
	}
	again.keys("Up") // the slow step: its check: decided
	notice := again.waitFor("output · slow")
	if !strings.Contains(notice, "»") {
		t.Errorf("the resume decision of the slow step is not shown:\n%s", notice)
	}
	t.Logf("slow step after resume:\n%s", notice)
	again.keys("q")
	if s := again.waitFor("DRBOOK-EXIT="); !strings.Contains(s, "DRBOOK-EXIT=0") {
		t.Fatalf("resumed run did not exit 0:\n%s", s)
	}
}

// TestTUIDangerFailureWrapPager drives a run at 80x24 and 120x40: the
// danger box shows a multi-line command line by line; a step that fails
// shows its stderr in the failure prompt, esc goes back and a choice still
// works; w toggles wrapping; p opens the whole step output in $PAGER (a
// script that copies the file it is given).
func TestTUIDangerFailureWrapPager(t *testing.T) {
	for _, sz := range []struct{ w, h int }{{80, 24}, {120, 40}} {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			dir, db := workdir(t, "failing.yaml")
			inv := abs(t, "../testdata/inventory.yaml")
			pager := filepath.Join(dir, "pager.sh")
			script := "#!/bin/sh\nn=$(ls " + dir + "/pager-*.txt 2>/dev/null | wc -l)\n" +
				"cp \"$1\" " + dir + "/pager-$n.txt\nstat -c %a \"$1\" > " + dir + "/pager-$n.mode\necho \"$1\" > " + dir + "/pager-$n.path\n"
			if err := os.WriteFile(pager, []byte(script), 0o700); err != nil {
				t.Fatal(err)
			}
			cmd := fmt.Sprintf("cd %s && env NO_COLOR=1 TERM=xterm-256color USER=e2e-operator PAGER=%s %s --db %s run runbooks/failing.yaml -i %s; echo DRBOOK-EXIT=$?; sleep 60",
				dir, pager, drbookBin, db, inv)
			tm := startTmux(t, sz.w, sz.h, cmd)

			box := tm.waitFor("Type scratch-m2 to go ahead")
			for _, want := range []string{"Why scratch-m2: the marker file m2 on node2 is what this step deletes", "on node2:", "1│ d=./scratch/m2", `2│ if [ -f "$d" ]; then`, `3│   rm -f "$d" || true`, "4│ fi", "5│ echo \"removed $d on node2"} {
				if !strings.Contains(box, want) {
					t.Errorf("danger box lacks %q:\n%s", want, box)
				}
			}
			if strings.Contains(box, "m2if") {
				t.Errorf("the danger box joins the command's lines:\n%s", box)
			}
			tm.text("node2") // the target's name is not the word
			tm.keys("Enter")
			tm.waitFor(`"node2" is not "scratch-m2"`)
			tm.text("scratch-m2")
			tm.keys("Enter")

			failed := tm.waitFor("Step flaky failed on node1, node3")
			if !strings.Contains(failed, "! fatal: snapshot checksum mismatch on node3") {
				t.Errorf("the failed target's stderr is not readable in the failure prompt:\n%s", failed)
			}
			tm.keys("Escape")
			tm.waitFor("choose what happens next")
			tm.keys("Down", "Enter") // skip: asks a reason
			tm.waitFor("Why skip it?")
			tm.text("not sure")
			tm.keys("Escape") // back to the choices, not an empty box
			back := tm.waitFor("What now?")
			if !strings.Contains(back, "abort — stop the run here") {
				t.Errorf("esc in the reason did not go back to the choices:\n%s", back)
			}
			tm.keys("p") // the failed step's whole output
			copied := waitFile(t, filepath.Join(dir, "pager-0.txt"))
			for _, want := range []string{"checking the snapshot on node1", "fatal: snapshot checksum mismatch on node3 (expected 9f2c, got 0000): the cause is at the end of this long line"} {
				if !strings.Contains(copied, want) {
					t.Errorf("the pager did not get %q:\n%s", want, copied)
				}
			}
			checkPagerFile(t, dir, 0)
			tm.waitFor("What now?")
			tm.keys("Up", "Enter") // retry
			done := tm.waitFor("run succeeded")
			if !strings.Contains(done, "3/3 steps") {
				t.Errorf("final screen:\n%s", done)
			}

			tm.keys("Up", "Up") // the noisy step: its last line is long
			tm.waitFor("output · noisy")
			wrapped := tm.waitFor("END-OF-LONG-LINE")
			tm.keys("w")
			cut := tm.waitFor("lines cut (w wraps)")
			if strings.Contains(cut, "END-OF-LONG-LINE") {
				t.Errorf("w did not cut the long line:\n%s", cut)
			}
			tm.keys("w")
			if s := tm.waitFor("END-OF-LONG-LINE"); !strings.Contains(s, "output · noisy") {
				t.Errorf("w again did not wrap:\n%s\nbefore:\n%s", s, wrapped)
			}
			tm.keys("p")
			whole := waitFile(t, filepath.Join(dir, "pager-1.txt"))
			for _, want := range []string{"noisy line 1\n", "noisy line 400\n", "segment-020 segment-021", "END-OF-LONG-LINE"} {
				if !strings.Contains(whole, want) {
					t.Errorf("the pager did not get the whole output (%q missing):\n%s", want, whole)
				}
			}
			checkPagerFile(t, dir, 1)
			for _, line := range strings.Split(tm.capture(), "\n") {
				if n := len([]rune(line)); n > sz.w {
					t.Errorf("line wider than the terminal (%d): %q", n, line)
				}
			}
			tm.keys("q")
			if s := tm.waitFor("DRBOOK-EXIT="); !strings.Contains(s, "DRBOOK-EXIT=0") {
				t.Fatalf("drbook did not exit 0:\n%s", s)
			}
		})
	}
}

// waitFile waits (bounded) for path to exist and returns its content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			time.Sleep(100 * time.Millisecond) // the script writes its files in turn
			b, _ = os.ReadFile(path)
			return string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
	return ""
}

// checkPagerFile checks that the pager's n-th file was private and is gone.
func checkPagerFile(t *testing.T, dir string, n int) {
	t.Helper()
	mode := strings.TrimSpace(waitFile(t, filepath.Join(dir, fmt.Sprintf("pager-%d.mode", n))))
	if mode != "600" {
		t.Errorf("the pager's file had mode %s, want 600", mode)
	}
	path := strings.TrimSpace(waitFile(t, filepath.Join(dir, fmt.Sprintf("pager-%d.path", n))))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the pager's file %s was not removed", path)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
