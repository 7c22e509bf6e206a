package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/steps/transport/sshtest"
)

// approverKey makes an ed25519 key with the real ssh-keygen; it returns the
// private key file and the allowed-signers line for principal.
func approverKey(t *testing.T, dir, principal string) (string, string) {
	t.Helper()
	path := filepath.Join(dir, strings.Split(principal, "@")[0])
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return path, principal + ` namespaces="drbook-approve@drbook.dev" ` + f[0] + " " + f[1] + "\n"
}

// TestApproveHeadlessOverSSH: a headless run whose danger step (on a real
// OpenSSH node) needs approval refuses to start without an allowed-signers
// file (exit 2), stops with exit 4 when no approval comes in time, and,
// resumed, asks again: the operator's own approval is refused (exit 4),
// another person's counts (exit 0) and the step runs once.
func TestApproveHeadlessOverSSH(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 1)
	keys := filepath.Join(l.dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	alice, aliceLine := approverKey(t, keys, "alice@example.org")
	bob, bobLine := approverKey(t, keys, "bob@example.org")
	allowed := l.write(t, "allowed_signers", aliceLine+bobLine)
	rb := l.write(t, "rb.yaml", `apiVersion: drbook/v1
kind: Runbook
name: two-person
steps:
  - id: wipe
    title: Wipe node1
    run: shell
    on: node1
    danger: true
    approvals: 1
    with: {command: 'echo x >> "$NODE_DIR/wipe.count"; echo wiped'}
`)
	env := []string{"USER=alice", "SSH_AUTH_SOCK="}

	r := drbook(t, env, "--db", l.db, "run", rb, "-i", l.inv, "--headless", "--yes", "--sign-key", alice)
	if r.code != exitUsage || !strings.Contains(r.stderr, "allowed-signers") || !strings.Contains(r.stderr, "nothing was run") {
		t.Fatalf("without allowed signers: exit %d\n%s", r.code, r.stderr)
	}
	if rs := drbook(t, nil, "--db", l.db, "runs"); strings.Count(rs.stdout, "\n") > 1 {
		t.Fatalf("a refused start recorded a run:\n%s", rs.stdout)
	}

	t0 := time.Now()
	r = drbook(t, env, "--db", l.db, "run", rb, "-i", l.inv, "--headless", "--yes", "--sign-key", alice, "--allowed-signers", allowed, "--approval-timeout", "1s")
	if r.code != exitNeedsPerson || !strings.Contains(r.stderr, "got 0 of 1 approval(s) in 1s") || !strings.Contains(r.stdout, "approver runs: drbook approve ") {
		t.Fatalf("timeout: exit %d after %s\nstdout:\n%s\nstderr:\n%s", r.code, time.Since(t0), r.stdout, r.stderr)
	}
	id := runID(t, r.stdout)
	if n := l.counter(t, "node1", "wipe"); n != 0 {
		t.Fatalf("the step ran %d times without approval", n)
	}
	if a := drbook(t, []string{"USER=bob"}, "--db", l.db, "approve", id, "wipe", "--sign-key", bob, "--yes"); a.code != exitNeedsPerson || !strings.Contains(a.stderr, "the run stopped") {
		t.Fatalf("approving a stopped run: exit %d\n%s%s", a.code, a.stdout, a.stderr)
	}

	// Resume in the background: it asks again.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := exec.CommandContext(ctx, drbookBin, "--db", l.db, "resume", id, "--yes", "--sign-key", alice, "--allowed-signers", allowed, "--approval-timeout", "90s")
	res.Env = append(os.Environ(), append(env, "NO_COLOR=1")...)
	var out bytes.Buffer
	res.Stdout, res.Stderr = &out, &out
	if err := res.Start(); err != nil {
		t.Fatal(err)
	}
	// The operator's own approval is refused once the new request is
	// open (before that, the record says the run stopped).
	var self result
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		self = drbook(t, []string{"USER=alice"}, "--db", l.db, "approve", id, "wipe", "--sign-key", alice, "--yes")
		if !strings.Contains(self.stderr, "the run stopped") {
			break
		}
	}
	if self.code != exitNeedsPerson || !strings.Contains(self.stderr, "self-approval") || !strings.Contains(self.stderr, "recorded as event #") {
		t.Fatalf("self-approval: exit %d\n%s%s", self.code, self.stdout, self.stderr)
	}
	a := drbook(t, []string{"USER=bob"}, "--db", l.db, "approve", id, "wipe", "--sign-key", bob, "--allowed-signers", allowed, "--yes")
	if a.code != exitOK || !strings.Contains(a.stdout, "Approved: recorded as event") || !strings.Contains(a.stdout, "echo x >>") {
		t.Fatalf("bob's approval: exit %d\n%s%s", a.code, a.stdout, a.stderr)
	}
	if err := res.Wait(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out.String())
	}
	if n := l.counter(t, "node1", "wipe"); n != 1 {
		t.Fatalf("the step ran %d times, want once\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "approved by bob@example.org (bob@") {
		t.Errorf("the resume does not say who approved:\n%s", out.String())
	}
	rep := drbook(t, nil, "--db", l.db, "replay", id, "--verify")
	if rep.code != 0 {
		t.Fatalf("replay --verify: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
	for _, want := range []string{"Approvals", "request #", "run by alice@example.org (alice@", "approved by bob@example.org (bob@",
		"refused alice@example.org (alice@", "hash chain intact"} {
		if !strings.Contains(rep.stdout, want) {
			t.Errorf("replay lacks %q:\n%s", want, rep.stdout)
		}
	}
	if strings.Count(rep.stdout, "approval.requested") != 2 {
		t.Errorf("want two requests (the resume asked again):\n%s", rep.stdout)
	}
}
