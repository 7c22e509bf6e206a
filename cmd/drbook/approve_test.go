package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/notify"
	"github.com/drbook/drbook/state"
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
	// The JSON stream says the same.
	js := drbook(t, env, "--db", l.db, "-o", "json", "run", rb, "-i", l.inv, "--headless", "--yes", "--sign-key", alice, "--allowed-signers", allowed, "--approval-timeout", "1s")
	var req, waiting map[string]any
	for _, line := range strings.Split(js.stdout, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		switch {
		case m["event"] == "approval.requested":
			req = m
		case m["event"] == "operator.waiting" && m["kind"] == "approval":
			waiting = m
		}
	}
	data, _ := req["data"].(map[string]any)
	if js.code != exitNeedsPerson || req == nil || req["step_id"] != "wipe" || data["approvals"] != float64(1) ||
		!strings.Contains(fmt.Sprint(data["commands"]), "wipe.count") || !strings.Contains(fmt.Sprint(waiting["prompt"]), "drbook approve r") {
		t.Fatalf("JSON stream: exit %d, request %v, waiting %v\n%s", js.code, req, waiting, js.stdout)
	}
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
	if !strings.Contains(out.String(), "approved by bob@example.org (") {
		t.Errorf("the resume does not say who approved:\n%s", out.String())
	}
	rep := drbook(t, nil, "--db", l.db, "replay", id, "--verify")
	if rep.code != 0 {
		t.Fatalf("replay --verify: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
	for _, want := range []string{"Approvals", "request #", "run by alice@example.org (", "approved by bob@example.org (",
		"refused alice@example.org (", "hash chain intact"} {
		if !strings.Contains(rep.stdout, want) {
			t.Errorf("replay lacks %q:\n%s", want, rep.stdout)
		}
	}
	if strings.Count(rep.stdout, "approval.requested") != 2 {
		t.Errorf("want two requests (the resume asked again):\n%s", rep.stdout)
	}
}

// lockedBuffer is a buffer a child process writes to while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rewriteChain rewrites run id's events as an attacker with write access to
// the database would: edit may change, drop (return false) or keep each
// event; every later seq, hash and the stored head are recomputed, so the
// hash chain verifies.
func rewriteChain(t *testing.T, dbPath, id string, edit func(*state.Event) bool) {
	t.Helper()
	ctx := context.Background()
	sdb, err := state.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := sdb.Events(ctx, id)
	sdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite3", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tx, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`DELETE FROM events WHERE run_id = ?`, id); err != nil {
		t.Fatal(err)
	}
	var prev state.Event
	seq := int64(0)
	for i, ev := range evs {
		if !edit(&ev) {
			continue
		}
		seq++
		ev.Seq = seq
		if i > 0 {
			ev.PrevHash = prev.Hash
		}
		ev.Hash = state.EventHash(ev)
		if _, err := tx.Exec(`INSERT INTO events (run_id, seq, time, type, step_id, target, attempt, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.RunID, ev.Seq, ev.Time.UTC().Format("2006-01-02T15:04:05.000000000Z07:00"), string(ev.Type), ev.StepID, ev.Target, ev.Attempt, []byte(ev.Data), ev.PrevHash, ev.Hash); err != nil {
			t.Fatal(err)
		}
		prev = ev
	}
	if _, err := tx.Exec(`UPDATE runs SET head_seq = ?, head_hash = ? WHERE id = ?`, prev.Seq, prev.Hash, id); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestApprovalSurvivesRewrite: an operator who rewrites the record (hash
// chain recomputed, so it verifies) cannot fake the two-person rule: an
// approval forged with her own key, or a request and approval left out,
// fail replay --verify with exit 5, naming the event.
func TestApprovalSurvivesRewrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, alice string) func(*state.Event) bool
		want string
	}{
		{"approval forged with the operator's key", func(t *testing.T, alice string) func(*state.Event) bool {
			return func(ev *state.Event) bool {
				if ev.Type != state.EvApprovalGranted {
					return true
				}
				var g state.ApprovalGranted
				if err := ev.Decode(&g); err != nil {
					t.Fatal(err)
				}
				msg := filepath.Join(filepath.Dir(alice), "msg")
				if err := os.WriteFile(msg, []byte(g.Message), 0o600); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command("ssh-keygen", "-Y", "sign", "-f", alice, "-n", "drbook-approve@drbook.dev", msg).CombinedOutput(); err != nil {
					t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
				}
				sig, _ := os.ReadFile(msg + ".sig")
				pub, _ := os.ReadFile(alice + ".pub")
				f := strings.Fields(string(pub))
				g.Signature, g.PublicKey = string(sig), f[0]+" "+f[1]
				out, err := exec.Command("ssh-keygen", "-lf", alice+".pub").Output()
				if err != nil {
					t.Fatal(err)
				}
				g.Approver.Key = strings.Fields(string(out))[1]
				ev.Data, _ = json.Marshal(g)
				return true
			}
		}, "self-approval: the operator's own key"},
		{"request and approval left out", func(*testing.T, string) func(*state.Event) bool {
			return func(ev *state.Event) bool { return !strings.HasPrefix(string(ev.Type), "approval.") }
		}, "started without an approval request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLocalLab(t)
			keys := filepath.Join(l.dir, "keys")
			if err := os.Mkdir(keys, 0o700); err != nil {
				t.Fatal(err)
			}
			alice, aliceLine := approverKey(t, keys, "alice@example.org")
			bob, bobLine := approverKey(t, keys, "bob@example.org")
			allowed := l.write(t, "allowed_signers", aliceLine+bobLine)
			rb := l.write(t, "rb.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: two\nsteps:\n  - id: wipe\n    run: shell\n    on: node1\n    danger: true\n    approvals: 1\n    with: {command: 'true'}\n")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			run := exec.CommandContext(ctx, drbookBin, "--db", l.db, "run", rb, "-i", l.inv, "--headless", "--yes", "--sign-key", alice, "--allowed-signers", allowed)
			run.Env = append(os.Environ(), "USER=alice", "NO_COLOR=1")
			out := &lockedBuffer{}
			run.Stdout, run.Stderr = out, out
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			var id string
			for deadline := time.Now().Add(60 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if m := regexp.MustCompile(`drbook approve (r\S+) wipe`).FindStringSubmatch(out.String()); m != nil {
					id = m[1]
				}
			}
			if id == "" {
				t.Fatalf("no approval request:\n%s", out.String())
			}
			if a := drbook(t, []string{"USER=bob"}, "--db", l.db, "approve", id, "wipe", "--sign-key", bob, "--yes"); a.code != 0 {
				t.Fatalf("bob: %s%s", a.stdout, a.stderr)
			}
			if err := run.Wait(); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			if r := drbook(t, nil, "--db", l.db, "replay", id, "--verify"); r.code != 0 {
				t.Fatalf("the honest record: exit %d\n%s", r.code, r.stderr)
			}
			rewriteChain(t, l.db, id, tc.edit(t, alice))
			r := drbook(t, nil, "--db", l.db, "replay", id, "--verify")
			if r.code != exitUnverified || !strings.Contains(r.stdout, "hash chain intact") || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("rewritten record: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestApprovalNotification: a step that waits for approval sends the
// approval.waiting notification, naming the step, its targets and the
// command the approver runs.
func TestApprovalNotification(t *testing.T) {
	l := newLocalLab(t)
	keys := filepath.Join(l.dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	alice, aliceLine := approverKey(t, keys, "alice@example.org")
	_, bobLine := approverKey(t, keys, "bob@example.org")
	allowed := l.write(t, "allowed_signers", aliceLine+bobLine)
	hook := startHook(t, 200, false)
	cfg := l.write(t, "config.yaml", "notify:\n  - name: ops\n    url: "+hook.url+"\n")
	rb := l.write(t, "rb.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: two\nsteps:\n  - id: wipe\n    run: shell\n    on: node1\n    danger: true\n    approvals: 1\n    with: {command: 'true'}\n")
	r := drbook(t, configEnv(l.dir), "--config", cfg, "--db", l.db, "run", rb, "-i", l.inv, "--headless", "--yes", "--sign-key", alice, "--allowed-signers", allowed, "--approval-timeout", "1s")
	if r.code != exitNeedsPerson {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	bodies, _ := hook.got()
	var got *notify.Event
	for _, b := range bodies {
		var ev notify.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		if ev.Kind == notify.KindApprovalWaiting {
			got = &ev
		}
	}
	if got == nil {
		t.Fatalf("no approval.waiting notification among %d deliveries", len(bodies))
	}
	b, _ := json.Marshal(got)
	if got.Step != "wipe" || len(got.Targets) != 1 || got.Targets[0] != "node1" || !strings.Contains(string(b), "drbook approve r") {
		t.Fatalf("approval.waiting: %s", b)
	}
}
