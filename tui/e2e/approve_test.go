package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sshKey makes an ed25519 key with the real ssh-keygen and returns the
// private key file and the public key line.
func sshKey(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return path, f[0] + " " + f[1]
}

// window captures or types into one named window of the session.
func (tm *tmux) captureW(w string) string { return tm.run("capture-pane", "-p", "-t", "e2e:"+w) }

func (tm *tmux) waitForW(w, want string) string {
	tm.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if last = tm.captureW(w); strings.Contains(last, want) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	tm.t.Fatalf("window %s never showed %q; last screen:\n%s", w, want, last)
	return ""
}

// TestTUITwoPersonRule: operator alice's run waits at a danger step that
// needs approval, in an 80x24 terminal; alice approving it herself from a
// second terminal is refused; bob approves it from another terminal with his
// own key (typing the step id); alice's run then asks for her confirmation
// word and the step runs. The record names both, and verifies.
func TestTUITwoPersonRule(t *testing.T) {
	dir, db := workdir(t, "approve.yaml")
	inv := abs(t, "../testdata/inventory.yaml")
	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	aliceKey, alicePub := sshKey(t, keys, "alice")
	bobKey, bobPub := sshKey(t, keys, "bob")
	allowed := filepath.Join(dir, "allowed_signers")
	ns := `namespaces="drbook-approve@drbook.dev"`
	if err := os.WriteFile(allowed, []byte("alice@example.org "+ns+" "+alicePub+"\nbob@example.org "+ns+" "+bobPub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	op := fmt.Sprintf("cd %s && env NO_COLOR=1 TERM=xterm-256color USER=alice %s --db %s -i %s --dir runbooks --allowed-signers %s --sign-key %s; echo DRBOOK-EXIT=$?; sleep 60",
		dir, drbookBin, db, inv, allowed, aliceKey)
	tm := startTmux(t, 80, 24, op)
	tm.run("rename-window", "-t", "e2e", "op")
	tm.waitForW("op", "pick a runbook")
	tm.run("send-keys", "-t", "e2e:op", "Enter") // tui-approve, the only runbook; no inputs

	waiting := tm.waitForW("op", "APPROVAL NEEDED")
	m := regexp.MustCompile(`drbook approve (r\d{8}-\d{6}-[0-9a-f]+) wipe`).FindStringSubmatch(waiting)
	if m == nil {
		t.Fatalf("the approval box does not show the command to run:\n%s", waiting)
	}
	runID := m[1]
	t.Logf("operator's screen at 80x24 while waiting:\n%s", waiting)
	for _, want := range []string{"step wipe", "wiped.log", "on node1", "0 of 1 approvals", "awaiting approval", "esc esc abort run", "ctrl+c interrupt"} {
		if !strings.Contains(waiting, want) {
			t.Errorf("the approval box lacks %q:\n%s", want, waiting)
		}
	}
	lines := strings.Split(strings.TrimRight(waiting, "\n"), "\n")
	if len(lines) > 24 {
		t.Errorf("the screen has %d lines in a 24-line terminal", len(lines))
	}
	for _, l := range lines {
		if n := len([]rune(l)); n > 80 {
			t.Errorf("line wider than 80 columns (%d): %q", n, l)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "wiped.log")); err == nil {
		t.Fatal("the danger step ran before its approval")
	}

	// Alice approving her own step, from a second terminal.
	self := fmt.Sprintf("cd %s && env USER=alice %s --db %s approve %s wipe --sign-key %s --allowed-signers %s --yes; echo APPROVE-EXIT=$?; sleep 60",
		dir, drbookBin, db, runID, aliceKey, allowed)
	tm.run("new-window", "-d", "-t", "e2e", "-n", "self", self)
	refused := tm.waitForW("self", "APPROVE-EXIT=")
	if !strings.Contains(refused, "self-approval") || !strings.Contains(refused, "(recorded as event #") || !strings.Contains(refused, "APPROVE-EXIT=4") {
		t.Fatalf("self-approval was not refused with exit 4:\n%s", refused)
	}
	if _, err := os.Stat(filepath.Join(dir, "wiped.log")); err == nil {
		t.Fatal("the danger step ran after a self-approval")
	}

	// Bob approves from his terminal, typing the step id.
	bob := fmt.Sprintf("cd %s && env USER=bob %s --db %s approve %s wipe --sign-key %s --allowed-signers %s; echo APPROVE-EXIT=$?; sleep 60",
		dir, drbookBin, db, runID, bobKey, allowed)
	tm.run("new-window", "-d", "-t", "e2e", "-n", "bob", bob)
	shown := tm.waitForW("bob", "Type wipe to approve")
	for _, want := range []string{"wiped.log", "on node1", "run by alice@example.org", "You are bob@example.org"} {
		if !strings.Contains(shown, want) {
			t.Errorf("drbook approve does not show %q:\n%s", want, shown)
		}
	}
	tm.run("send-keys", "-t", "e2e:bob", "-l", "wipe")
	tm.run("send-keys", "-t", "e2e:bob", "Enter")
	approved := tm.waitForW("bob", "APPROVE-EXIT=")
	t.Logf("approver's terminal:\n%s", approved)
	if !strings.Contains(approved, "Approved: recorded as event") || !strings.Contains(approved, "APPROVE-EXIT=0") {
		t.Fatalf("bob's approval:\n%s", approved)
	}

	// Alice's run goes on: her own confirmation word, then the step runs.
	tm.waitForW("op", "Type node1 to go ahead")
	tm.run("send-keys", "-t", "e2e:op", "-l", "node1")
	tm.run("send-keys", "-t", "e2e:op", "Enter")
	done := tm.waitForW("op", "run succeeded")
	if !strings.Contains(done, "» approved by bob@example.org") {
		t.Errorf("the run screen does not say who approved:\n%s", done)
	}
	tm.run("send-keys", "-t", "e2e:op", "q")
	if s := tm.waitForW("op", "DRBOOK-EXIT="); !strings.Contains(s, "DRBOOK-EXIT=0") {
		t.Fatalf("the operator's drbook did not exit 0:\n%s", s)
	}
	b, err := os.ReadFile(filepath.Join(dir, "wiped.log"))
	if err != nil || string(b) != "wiped on node1\n" {
		t.Fatalf("the danger step did not run exactly once: %q %v", b, err)
	}

	// The record names both persons and verifies.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, drbookBin, "--db", db, "replay", runID, "--verify").CombinedOutput()
	if err != nil {
		t.Fatalf("drbook replay --verify: %v\n%s", err, out)
	}
	t.Logf("replay:\n%s", out)
	for _, want := range []string{"hash chain intact", "approval.requested", "approval.granted",
		"run by alice@example.org (", "approved by bob@example.org (", "refused alice@example.org (", "self-approval: key SHA256:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("replay lacks %q:\n%s", want, out)
		}
	}
}

// TestTUIApprovalStopWaiting: while a step waits for approval, esc once
// says what a second does and the second aborts the run (exit 4); ctrl+c
// asks, then interrupts it (exit 130, resumable). Either way the step never
// runs and the record says how the wait ended.
func TestTUIApprovalStopWaiting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keys   [][2]string // wait for [0], then send [1]
		done   string
		exit   string
		record []string
	}{
		{"esc esc aborts", [][2]string{{"APPROVAL NEEDED", "Escape"}, {"press esc again to stop waiting", "Escape"}},
			"stopped waiting for the approval of wipe", "4", []string{`-> "aborted"`, "run.finished"}},
		{"ctrl+c interrupts", [][2]string{{"APPROVAL NEEDED", "C-c"}, {"Interrupt the run?", "y"}},
			"resume with: drbook resume", "130", []string{"run.finished", "interrupted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, db := workdir(t, "approve.yaml")
			inv := abs(t, "../testdata/inventory.yaml")
			keys := filepath.Join(dir, "keys")
			if err := os.Mkdir(keys, 0o700); err != nil {
				t.Fatal(err)
			}
			aliceKey, alicePub := sshKey(t, keys, "alice")
			_, bobPub := sshKey(t, keys, "bob")
			allowed := filepath.Join(dir, "allowed_signers")
			ns := `namespaces="drbook-approve@drbook.dev"`
			if err := os.WriteFile(allowed, []byte("alice@example.org "+ns+" "+alicePub+"\nbob@example.org "+ns+" "+bobPub+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			op := fmt.Sprintf("cd %s && env NO_COLOR=1 TERM=xterm-256color USER=alice %s --db %s -i %s --dir runbooks --allowed-signers %s --sign-key %s; echo DRBOOK-EXIT=$?; sleep 60",
				dir, drbookBin, db, inv, allowed, aliceKey)
			tm := startTmux(t, 100, 30, op)
			tm.waitFor("pick a runbook")
			tm.keys("Enter")
			waiting := tm.waitFor("APPROVAL NEEDED")
			m := regexp.MustCompile(`drbook approve (r\d{8}-\d{6}-[0-9a-f]+) wipe`).FindStringSubmatch(waiting)
			if m == nil {
				t.Fatalf("no approve command on screen:\n%s", waiting)
			}
			for _, k := range tc.keys {
				tm.waitFor(k[0])
				tm.keys(k[1])
			}
			stopped := tm.waitFor(tc.done)
			if strings.Contains(stopped, "APPROVAL NEEDED") {
				t.Errorf("the approval box is still on screen:\n%s", stopped)
			}
			tm.keys("q")
			if s := tm.waitFor("DRBOOK-EXIT="); !strings.Contains(s, "DRBOOK-EXIT="+tc.exit) {
				t.Fatalf("want exit %s:\n%s", tc.exit, s)
			}
			if _, err := os.Stat(filepath.Join(dir, "wiped.log")); err == nil {
				t.Fatal("the danger step ran")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, drbookBin, "--db", db, "replay", m[1]).CombinedOutput()
			if err != nil {
				t.Fatalf("replay: %v\n%s", err, out)
			}
			for _, want := range append([]string{"approval.requested"}, tc.record...) {
				if !strings.Contains(string(out), want) {
					t.Errorf("replay lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
