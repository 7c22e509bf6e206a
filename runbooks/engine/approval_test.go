package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/approvals"
	"github.com/drbook/drbook/state/runlog"
)

// testKey makes an ed25519 key with the real ssh-keygen.
func testKey(t *testing.T, dir, name string) (string, ssh.PublicKey) {
	t.Helper()
	path := filepath.Join(dir, name)
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return path, pub
}

type approvalFixture struct {
	*fixture
	keys    map[string]string // principal → private key file
	allowed *opsig.AllowedSigners
	file    string
	opKey   ssh.PublicKey
}

// newApprovalFixture: alice runs the run; alice, bob and carol are in the
// allowed-signers file for approvals.
func newApprovalFixture(t *testing.T) *approvalFixture {
	f := &approvalFixture{fixture: newFixture(t, 1), keys: map[string]string{}}
	kd := filepath.Join(f.dir, "keys")
	if err := os.MkdirAll(kd, 0o700); err != nil {
		t.Fatal(err)
	}
	var lines strings.Builder
	for _, who := range []string{"alice", "bob", "carol"} {
		path, pub := testKey(t, kd, who)
		p := who + "@example.org"
		f.keys[p] = path
		lines.WriteString(p + ` namespaces="` + opsig.ApproveNamespace + `" ` + opsig.MarshalPublicKey(pub) + "\n")
		if who == "alice" {
			f.opKey = pub
		}
	}
	f.file = filepath.Join(f.dir, "allowed_signers")
	if err := os.WriteFile(f.file, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.allowed, err = opsig.ParseAllowedSigners(strings.NewReader(lines.String()), f.file); err != nil {
		t.Fatal(err)
	}
	return f
}

const approvalRunbook = header + `inputs:
  what: {type: string, prompt: what}
steps:
  - id: prepare
    run: shell
    on: node1
    with: {command: 'echo prepared >> "$NODE_DIR/log"'}
  - id: wipe
    run: shell
    on: node1
    danger: true
    confirm: {word: node1}
    approvals: 1
    with: {command: 'echo "wiped {{ inputs.what }}" >> "$NODE_DIR/log"'}
`

func (f *approvalFixture) config(t *testing.T, timeout time.Duration) engine.Config {
	cfg := f.fixture.config(t, approvalRunbook, nil)
	cfg.Approval = engine.ApprovalConfig{Allowed: f.allowed, File: f.file, OperatorKey: f.opKey, Timeout: timeout, Poll: 50 * time.Millisecond}
	return cfg
}

// waitRequest waits for the run's approval.requested number n (1-based).
func (f *approvalFixture) waitRequest(t *testing.T, runID func() string, n int) (state.Event, state.ApprovalRequested) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if id := runID(); id != "" {
			evs, err := f.db.Events(context.Background(), id)
			if err == nil {
				seen := 0
				for _, ev := range evs {
					if ev.Type == state.EvApprovalRequested {
						if seen++; seen == n {
							var req state.ApprovalRequested
							if err := ev.Decode(&req); err != nil {
								t.Fatal(err)
							}
							return ev, req
						}
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no approval request #%d", n)
	return state.Event{}, state.ApprovalRequested{}
}

// submit signs msg with principal's key and submits it; it waits until the
// run recorded it and returns that event.
func (f *approvalFixture) submit(t *testing.T, runID, stepID, principal string, msg []byte) state.Event {
	t.Helper()
	ctx := context.Background()
	s, err := opsig.LoadSigner(ctx, f.keys[principal])
	if err != nil {
		t.Fatal(err)
	}
	sig, err := opsig.Sign(s, opsig.ApproveNamespace, msg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.db.SubmitApproval(ctx, state.ApprovalSubmission{RunID: runID, StepID: stepID, Message: msg, Signature: sig, User: strings.Split(principal, "@")[0], Host: "test"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		sub, err := f.db.ApprovalSubmission(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if sub.DoneSeq > 0 {
			evs, err := f.db.Events(ctx, runID)
			if err != nil {
				t.Fatal(err)
			}
			return evs[sub.DoneSeq-1]
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("submission %d never recorded", id)
	return state.Event{}
}

func refusedCode(t *testing.T, ev state.Event) (string, string) {
	t.Helper()
	if ev.Type != state.EvApprovalRefused {
		t.Fatalf("event #%d is %s, want approval.refused", ev.Seq, ev.Type)
	}
	var r state.ApprovalRefused
	if err := ev.Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.Code, r.Reason
}

type asyncRun struct {
	id   chan string
	done chan error
	out  engine.Outcome
	last string
}

func (a *asyncRun) runID() string {
	if a.last != "" {
		return a.last
	}
	select {
	case id := <-a.id:
		a.last = id
	default:
	}
	return a.last
}

// startAsync starts a run and reports its id as soon as it exists.
func startAsync(ctx context.Context, f *approvalFixture, cfg engine.Config) *asyncRun {
	a := &asyncRun{id: make(chan string, 1), done: make(chan error, 1)}
	obs := cfg.Observer
	sent := false
	cfg.Observer = func(ev runlog.Event) {
		if rec, ok := ev.(runlog.Recorded); ok && !sent {
			sent = true
			a.id <- rec.Event.RunID
		}
		if obs != nil {
			obs(ev)
		}
	}
	go func() {
		out, err := engine.Start(ctx, cfg, map[string]runbooks.Value{"what": {V: "everything"}})
		a.out = out
		a.done <- err
	}()
	return a
}

func TestApprovalTwoPersons(t *testing.T) {
	f := newApprovalFixture(t)
	ctx := context.Background()
	run := startAsync(ctx, f, f.config(t, 2*time.Minute))
	reqEv, req := f.waitRequest(t, run.runID, 1)
	id := run.runID()

	if req.Approvals != 1 || len(req.Commands) != 1 || req.Commands[0].Target != "node1" ||
		!strings.Contains(req.Commands[0].Command, "wiped everything") || req.Operator.Principal != "alice@example.org" ||
		req.Operator.Key != opsig.Fingerprint(f.opKey) || req.HeadSeq != reqEv.Seq-1 {
		t.Fatalf("request: %+v", req)
	}
	if f.count(t, "node1", "log") != 1 {
		t.Fatal("the danger step ran before its approval")
	}
	good := state.ApprovalMessage(id, "wipe", reqEv.Seq, req)

	// The operator approving their own step.
	if code, why := refusedCode(t, f.submit(t, id, "wipe", "alice@example.org", good)); code != state.RefusedSelf || !strings.Contains(why, "operator's own signing key") {
		t.Fatalf("self-approval: %s %s", code, why)
	}
	// Other commands (the inputs changed).
	other := req
	other.Commands = []state.ApprovalCommand{{Target: "node1", Command: `echo "wiped nothing" >> "$NODE_DIR/log"`}}
	other.CommandsSHA256 = state.CommandsDigest(other.Commands)
	if code, why := refusedCode(t, f.submit(t, id, "wipe", "bob@example.org", state.ApprovalMessage(id, "wipe", reqEv.Seq, other))); code != state.RefusedChanged {
		t.Fatalf("changed commands: %s %s", code, why)
	}
	// Another request (an earlier chain head).
	stale := req
	stale.HeadSeq, stale.HeadHash = req.HeadSeq-1, strings.Repeat("0", 64)
	if code, why := refusedCode(t, f.submit(t, id, "wipe", "bob@example.org", state.ApprovalMessage(id, "wipe", reqEv.Seq-1, stale))); code != state.RefusedOther {
		t.Fatalf("other request: %s %s", code, why)
	}
	// A signature that does not match its message.
	s, _ := opsig.LoadSigner(ctx, f.keys["bob@example.org"])
	sig, _ := opsig.Sign(s, opsig.ApproveNamespace, []byte("something else"))
	sid, err := f.db.SubmitApproval(ctx, state.ApprovalSubmission{RunID: id, StepID: "wipe", Message: good, Signature: sig, User: "bob", Host: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if f.count(t, "node1", "log") != 1 {
		t.Fatal("the danger step ran after refused approvals")
	}
	// Bob approves.
	ev := f.submit(t, id, "wipe", "bob@example.org", good)
	if ev.Type != state.EvApprovalGranted {
		t.Fatalf("bob's approval: %s %s", ev.Type, ev.Data)
	}
	var g state.ApprovalGranted
	if err := ev.Decode(&g); err != nil {
		t.Fatal(err)
	}
	if g.Approver.Principal != "bob@example.org" || g.RequestSeq != reqEv.Seq || g.Count != 1 || g.Needed != 1 {
		t.Fatalf("granted: %+v", g)
	}
	// The recorded signature verifies with the real ssh-keygen.
	sigFile := filepath.Join(f.dir, "approval.sig")
	if err := os.WriteFile(sigFile, []byte(g.Signature), 0o600); err != nil {
		t.Fatal(err)
	}
	vc := exec.Command("ssh-keygen", "-Y", "verify", "-f", f.file, "-I", "bob@example.org", "-n", opsig.ApproveNamespace, "-s", sigFile)
	vc.Stdin = strings.NewReader(g.Message)
	if out, err := vc.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v: %s", err, out)
	}
	select {
	case err := <-run.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not finish after the approval")
	}
	if f.count(t, "node1", "log") != 2 {
		t.Fatal("the danger step did not run once after its approval")
	}
	if sub, err := f.db.ApprovalSubmission(ctx, sid); err != nil || sub.DoneSeq == 0 {
		t.Fatalf("bad-signature submission not recorded: %+v %v", sub, err)
	} else if code, _ := refusedCode(t, mustEvent(t, f, id, sub.DoneSeq)); code != state.RefusedSignature {
		t.Fatalf("bad signature: %s", code)
	}
	// The record names both persons and verifies.
	evs, _ := f.db.Events(ctx, id)
	var kinds []string
	for _, ev := range evs {
		if strings.HasPrefix(string(ev.Type), "approval.") {
			kinds = append(kinds, string(ev.Type))
		}
	}
	want := "approval.requested approval.refused approval.refused approval.refused approval.refused approval.granted"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("approval events: %v\nwant %s", kinds, want)
	}
	if _, err := f.db.Verify(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func mustEvent(t *testing.T, f *approvalFixture, runID string, seq int64) state.Event {
	evs, err := f.db.Events(context.Background(), runID)
	if err != nil || int(seq) > len(evs) {
		t.Fatalf("event %d: %v", seq, err)
	}
	return evs[seq-1]
}

func TestApprovalTimeoutThenResumeAsksAgain(t *testing.T) {
	f := newApprovalFixture(t)
	ctx := context.Background()
	cfg := f.config(t, 1500*time.Millisecond)
	run := startAsync(ctx, f, cfg)
	reqEv, req := f.waitRequest(t, run.runID, 1)
	id := run.runID()
	var err error
	select {
	case err = <-run.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the wait did not time out")
	}
	if !errors.Is(err, engine.ErrNeedsDecision) || run.out.Status != state.StatusInterrupted {
		t.Fatalf("timeout: status %s, err %v", run.out.Status, err)
	}
	if f.count(t, "node1", "log") != 1 {
		t.Fatal("the danger step ran without approval")
	}
	// Resume asks again: a new request; an approval of the first one does
	// not count.
	cfg = f.config(t, 2*time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := engine.Resume(ctx, cfg, id, engine.ResumeOptions{})
		done <- err
	}()
	req2Ev, req2 := f.waitRequest(t, func() string { return id }, 2)
	if req2Ev.Seq == reqEv.Seq || req2.HeadSeq == req.HeadSeq || req2.CommandsSHA256 != req.CommandsSHA256 {
		t.Fatalf("second request %d %+v", req2Ev.Seq, req2)
	}
	if code, why := refusedCode(t, f.submit(t, id, "wipe", "carol@example.org", state.ApprovalMessage(id, "wipe", reqEv.Seq, req))); code != state.RefusedOther {
		t.Fatalf("old approval: %s %s", code, why)
	}
	if ev := f.submit(t, id, "wipe", "carol@example.org", state.ApprovalMessage(id, "wipe", req2Ev.Seq, req2)); ev.Type != state.EvApprovalGranted {
		t.Fatalf("carol: %s %s", ev.Type, ev.Data)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("resume did not finish")
	}
	if f.count(t, "node1", "log") != 2 {
		t.Fatal("the danger step did not run once")
	}
	evs, _ := f.db.Events(ctx, id)
	if p := approvals.Check(evs, approvals.Options{Allowed: f.allowed, Required: required}); len(p) != 0 {
		t.Fatalf("the record of a resumed, approved run: %v", p)
	}
}

func TestApprovalSetupRefused(t *testing.T) {
	f := newApprovalFixture(t)
	for _, tc := range []struct {
		name string
		edit func(*engine.ApprovalConfig)
		want string
	}{
		{"no allowed signers", func(c *engine.ApprovalConfig) { c.Allowed = nil }, "allowed-signers"},
		{"no operator key", func(c *engine.ApprovalConfig) { c.OperatorKey = nil }, "your SSH key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.config(t, time.Minute)
			tc.edit(&cfg.Approval)
			_, err := engine.Start(context.Background(), cfg, map[string]runbooks.Value{"what": {V: "x"}})
			if !errors.Is(err, engine.ErrApprovalSetup) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v", err)
			}
			if f.count(t, "node1", "log") != 0 {
				t.Fatal("a step ran")
			}
		})
	}
}

// TestApprovalTwoNamedPersons: approvals: 2 from named approvers needs two
// different persons among them; the same person twice, or one not named,
// does not count.
func TestApprovalTwoNamedPersons(t *testing.T) {
	f := newApprovalFixture(t)
	ctx := context.Background()
	src := strings.Replace(approvalRunbook, "    approvals: 1\n", "    approvals: 2\n    approvers: [bob@example.org, carol@example.org]\n", 1)
	cfg := f.fixture.config(t, src, nil)
	cfg.Approval = engine.ApprovalConfig{Allowed: f.allowed, File: f.file, OperatorKey: f.opKey, Timeout: 2 * time.Minute, Poll: 50 * time.Millisecond}
	// A fourth person, in the file but not named.
	dave, davePub := testKey(t, filepath.Join(f.dir, "keys"), "dave")
	f.keys["dave@example.org"] = dave
	extra := "dave@example.org namespaces=\"" + opsig.ApproveNamespace + "\" " + opsig.MarshalPublicKey(davePub) + "\n"
	b, _ := os.ReadFile(f.file)
	all, err := opsig.ParseAllowedSigners(strings.NewReader(string(b)+extra), f.file)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Approval.Allowed = all
	run := startAsync(ctx, f, cfg)
	reqEv, req := f.waitRequest(t, run.runID, 1)
	id := run.runID()
	if req.Approvals != 2 || strings.Join(req.Approvers, ",") != "bob@example.org,carol@example.org" {
		t.Fatalf("request %+v", req)
	}
	msg := state.ApprovalMessage(id, "wipe", reqEv.Seq, req)
	if code, why := refusedCode(t, f.submit(t, id, "wipe", "dave@example.org", msg)); code != state.RefusedNotNamed {
		t.Fatalf("dave: %s %s", code, why)
	}
	if ev := f.submit(t, id, "wipe", "bob@example.org", msg); ev.Type != state.EvApprovalGranted {
		t.Fatalf("bob: %s %s", ev.Type, ev.Data)
	}
	if code, why := refusedCode(t, f.submit(t, id, "wipe", "bob@example.org", msg)); code != state.RefusedDuplicate {
		t.Fatalf("bob again: %s %s", code, why)
	}
	if f.count(t, "node1", "log") != 1 {
		t.Fatal("the step ran with one approval of two")
	}
	ev := f.submit(t, id, "wipe", "carol@example.org", msg)
	var g state.ApprovalGranted
	if ev.Type != state.EvApprovalGranted || ev.Decode(&g) != nil || g.Count != 2 || g.Needed != 2 {
		t.Fatalf("carol: %s %s", ev.Type, ev.Data)
	}
	select {
	case err := <-run.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not finish")
	}
	if f.count(t, "node1", "log") != 2 {
		t.Fatal("the step did not run once")
	}
}

// TestApprovalDigestCoversParams: the approval covers the step's whole
// rendered parameters, not only its command line: an input that reaches the
// command through env: changes the digest; a secret stays masked.
func TestApprovalDigestCoversParams(t *testing.T) {
	src := header + `inputs:
  what: {type: string, prompt: what}
  key: {type: secret, prompt: key}
steps:
  - id: wipe
    run: shell
    on: node1
    danger: true
    approvals: 1
    with:
      command: 'echo "$WHAT" >> "$NODE_DIR/log"'
      env: {WHAT: "{{ inputs.what }}", KEY: "{{ inputs.key }}"}
`
	const secret = "s3cr3t-\"<&>-value"
	var reqs []state.ApprovalRequested
	for _, what := range []string{"one", "two"} {
		f := newApprovalFixture(t)
		cfg := f.fixture.config(t, src, nil)
		cfg.Approval = engine.ApprovalConfig{Allowed: f.allowed, File: f.file, OperatorKey: f.opKey, Timeout: 300 * time.Millisecond, Poll: 50 * time.Millisecond}
		_, err := engine.Start(context.Background(), cfg, map[string]runbooks.Value{"what": {V: what}, "key": {V: secret, Secret: true}})
		if !errors.Is(err, engine.ErrNeedsDecision) {
			t.Fatalf("want a timeout, got %v", err)
		}
		runs, err := f.db.ListRuns(context.Background(), state.RunFilter{})
		if err != nil || len(runs) != 1 {
			t.Fatalf("runs: %v %v", runs, err)
		}
		evs, _ := f.db.Events(context.Background(), runs[0].ID)
		for _, ev := range evs {
			if strings.Contains(string(ev.Data), "s3cr3t") {
				t.Fatalf("the secret is in event #%d: %s", ev.Seq, ev.Data)
			}
			if ev.Type == state.EvApprovalRequested {
				var req state.ApprovalRequested
				if err := ev.Decode(&req); err != nil {
					t.Fatal(err)
				}
				reqs = append(reqs, req)
			}
		}
	}
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	a, b := reqs[0], reqs[1]
	if a.Commands[0].Command != b.Commands[0].Command {
		t.Fatalf("the command lines should be the same: %q %q", a.Commands[0].Command, b.Commands[0].Command)
	}
	if a.CommandsSHA256 == b.CommandsSHA256 || !strings.Contains(a.Commands[0].Params, `"WHAT":"one"`) || !strings.Contains(a.Commands[0].Params, engine.Mask) {
		t.Fatalf("params not covered: %q %q / %s %s", a.Commands[0].Params, b.Commands[0].Params, a.CommandsSHA256, b.CommandsSHA256)
	}
}

// TestApprovalNotAskedWithoutYes: a headless run without --yes could not
// confirm the danger step after its approvals, so it asks nobody.
func TestApprovalNotAskedWithoutYes(t *testing.T) {
	f := newApprovalFixture(t)
	cfg := f.config(t, time.Minute)
	cfg.Operator = &engine.Headless{}
	out, err := engine.Start(context.Background(), cfg, map[string]runbooks.Value{"what": {V: "x"}})
	if !errors.Is(err, engine.ErrNeedsDecision) || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("err %v", err)
	}
	evs, _ := f.db.Events(context.Background(), out.RunID)
	for _, ev := range evs {
		if ev.Type == state.EvApprovalRequested {
			t.Fatal("an approval was requested")
		}
	}
	if f.count(t, "node1", "log") != 1 {
		t.Fatal("want only the first step run")
	}
}

// required reads a recorded runbook's steps that need approval, as replay
// --verify does.
func required(src []byte) (map[string]int, error) {
	rb, err := runbooks.ParseRunbook("recorded", src)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for i := range rb.Steps {
		if s := &rb.Steps[i]; s.NeedsApproval() {
			out[s.ID] = s.ApprovalsNeeded()
		}
	}
	return out, nil
}

// approvedRun runs approvalRunbook to the end with bob's approval and
// returns the fixture and the run's events.
func approvedRun(t *testing.T) (*approvalFixture, []state.Event) {
	f := newApprovalFixture(t)
	ctx := context.Background()
	run := startAsync(ctx, f, f.config(t, 2*time.Minute))
	reqEv, req := f.waitRequest(t, run.runID, 1)
	id := run.runID()
	if ev := f.submit(t, id, "wipe", "bob@example.org", state.ApprovalMessage(id, "wipe", reqEv.Seq, req)); ev.Type != state.EvApprovalGranted {
		t.Fatalf("bob: %s", ev.Data)
	}
	select {
	case err := <-run.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not finish")
	}
	evs, err := f.db.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return f, evs
}

// TestApprovalsCheckRecord: the record of an approved run passes
// approvals.Check; each way of faking an approval in it fails, naming why.
func TestApprovalsCheckRecord(t *testing.T) {
	f, evs := approvedRun(t)
	if p := approvals.Check(evs, approvals.Options{Allowed: f.allowed, Required: required}); len(p) != 0 {
		t.Fatalf("an honest record: %v", p)
	}
	find := func(evs []state.Event, typ state.EventType) int {
		for i, ev := range evs {
			if ev.Type == typ {
				return i
			}
		}
		t.Fatalf("no %s", typ)
		return -1
	}
	editGrant := func(edit func(*state.ApprovalGranted)) func([]state.Event) []state.Event {
		return func(evs []state.Event) []state.Event {
			i := find(evs, state.EvApprovalGranted)
			var g state.ApprovalGranted
			if err := evs[i].Decode(&g); err != nil {
				t.Fatal(err)
			}
			edit(&g)
			b, _ := json.Marshal(g)
			evs[i].Data = b
			return evs
		}
	}
	aliceSigner, err := opsig.LoadSigner(context.Background(), f.keys["alice@example.org"])
	if err != nil {
		t.Fatal(err)
	}
	onlyAlice, err := opsig.ParseAllowedSigners(strings.NewReader("alice@example.org "+opsig.MarshalPublicKey(f.opKey)+"\n"), "alice-only")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		tamper  func([]state.Event) []state.Event
		allowed *opsig.AllowedSigners
		want    string
	}{
		{"approval removed", func(evs []state.Event) []state.Event {
			i := find(evs, state.EvApprovalGranted)
			return append(evs[:i:i], evs[i+1:]...)
		}, nil, "started with 0 valid approval(s)"},
		{"request and approval removed", func(evs []state.Event) []state.Event {
			var out []state.Event
			for _, ev := range evs {
				if !strings.HasPrefix(string(ev.Type), "approval.") {
					out = append(out, ev)
				}
			}
			return out
		}, nil, "started without an approval request; its runbook asks 1"},
		{"message for other commands", editGrant(func(g *state.ApprovalGranted) {
			g.Message = strings.Replace(g.Message, "commands-sha256 ", "commands-sha256 0", 1)
		}), nil, "not the one its request implies"},
		{"signature by the operator", editGrant(func(g *state.ApprovalGranted) {
			sig, err := opsig.Sign(aliceSigner, opsig.ApproveNamespace, []byte(g.Message))
			if err != nil {
				t.Fatal(err)
			}
			g.Signature, g.PublicKey = string(sig), opsig.MarshalPublicKey(f.opKey)
			g.Approver.Key = opsig.Fingerprint(f.opKey)
		}), nil, "self-approval"},
		{"signature swapped", editGrant(func(g *state.ApprovalGranted) {
			sig, _ := opsig.Sign(aliceSigner, opsig.ApproveNamespace, []byte(g.Message))
			g.Signature = string(sig)
		}), nil, "another key than the one recorded"},
		{"principal rewritten to the operator", editGrant(func(g *state.ApprovalGranted) {
			g.Approver.Principal = "alice@example.org"
		}), nil, "alice@example.org is the operator"},
		{"approver not in the auditor's file", func(evs []state.Event) []state.Event { return evs }, onlyAlice, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := make([]state.Event, len(evs))
			copy(cp, evs)
			p := approvals.Check(tc.tamper(cp), approvals.Options{Allowed: tc.allowed, Required: required})
			if len(p) == 0 || !strings.Contains(fmt.Sprint(p), tc.want) {
				t.Fatalf("problems %v, want %q", p, tc.want)
			}
		})
	}
}
