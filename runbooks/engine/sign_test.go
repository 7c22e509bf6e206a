package engine_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/evidence"
	"github.com/drbook/drbook/state/runlog"
)

// signerFor makes an ed25519 key with the real ssh-keygen and returns its
// signer and allowed-signers line.
func signerFor(t *testing.T, name string) (*opsig.Signer, string) {
	t.Helper()
	kg, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Fatalf("ssh-keygen is required: %v", err)
	}
	p := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command(kg, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	s, err := opsig.LoadSigner(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	pub, _ := os.ReadFile(p + ".pub")
	return s, name + " " + strings.TrimSpace(string(pub)) + "\n"
}

const signSrc = header + `steps:
  - id: first
    run: shell
    on: node1
    with: {command: 'echo first'}
  - id: wipe
    run: shell
    on: node1
    danger: true
    with: {command: 'echo wiped'}
  - id: s
    run: shell
    on: node1
    with: {command: 'if [ -f "$NODE_DIR/once" ]; then echo again; else touch "$NODE_DIR/once"; echo started; sleep 30; fi'}
  - id: last
    run: shell
    on: node1
    with: {command: 'echo last'}
`

func decode[T any](t *testing.T, ev state.Event) T {
	t.Helper()
	var v T
	if err := ev.Decode(&v); err != nil {
		t.Fatalf("event %d: %v", ev.Seq, err)
	}
	return v
}

// TestSignedSegmentsAndHandover: a run signed by operator A is signed at
// its danger confirmation and at its (interrupted) end; a resume by
// operator B records a handover naming both, signed by B, and B's
// decisions carry B's identity; the record then verifies with both keys
// allowed, and fails with only A's.
//
// B is not a second OS account here: the test stands B in through
// Config.Actor (the engine's identity source), with a key of B's own.
// cmd/drbook's TestHandoverOtherOSUser resumes as a real second user.
func TestSignedSegmentsAndHandover(t *testing.T) {
	f := newFixture(t, 1)
	sgA, lineA := signerFor(t, "alice")
	sgB, lineB := signerFor(t, "bob")
	cfg := f.config(t, signSrc, nil)
	cfg.Signer = sgA
	cfg.Observer = nil
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Observer = func(ev runlog.Event) {
		if o, ok := ev.(runlog.OutputLine); ok && o.StepID == "s" && o.Line == "started" {
			cancel()
		}
	}
	out, err := engine.Start(ctx, cfg, nil)
	if err == nil || out.Status != state.StatusInterrupted {
		t.Fatalf("first segment: %v %s", err, out.Status)
	}
	id := out.RunID
	evs, _ := f.db.Events(context.Background(), id)
	created := decode[state.RunCreated](t, evs[0])
	me := state.CurrentActor(sgA.Fingerprint())
	if created.Actor == nil || *created.Actor != me || created.User != me.User {
		t.Fatalf("run.created actor %+v user %q, want %+v", created.Actor, created.User, me)
	}
	if last := evs[len(evs)-1]; last.Type != state.EvRecordSigned || decode[state.RecordSigned](t, last).Reason != state.SignInterrupted {
		t.Fatalf("the interrupted segment does not end with its signature: %s", last.Type)
	}

	bob := state.Actor{User: "bob-test", UID: 4242, Host: "jump-test"}
	cfg2 := f.config(t, signSrc, nil)
	cfg2.Signer, cfg2.Actor = sgB, bob
	bob.Key = "" // the engine records the actor as configured
	if _, err := engine.Resume(context.Background(), cfg2, id, engine.ResumeOptions{Redo: []string{"s"}}); err != nil {
		t.Fatalf("resume by bob: %v", err)
	}
	evs, _ = f.db.Events(context.Background(), id)
	var handover *state.RunHandover
	reasons := map[string]string{}
	for i, ev := range evs {
		switch ev.Type {
		case state.EvRunHandover:
			h := decode[state.RunHandover](t, ev)
			handover = &h
			if next := evs[i+1]; next.Type != state.EvRecordSigned || decode[state.RecordSigned](t, next).Reason != state.SignHandover {
				t.Errorf("the handover is not signed right after it")
			}
		case state.EvRecordSigned:
			p := decode[state.RecordSigned](t, ev)
			reasons[p.Reason] = p.Key
		case state.EvStepDecision:
			p := decode[state.StepDecision](t, ev)
			if p.Decision == state.DecisionRedo && (p.Actor == nil || *p.Actor != bob || p.By != "bob-test@jump-test") {
				t.Errorf("redo decision by %q actor %+v, want bob", p.By, p.Actor)
			}
		case state.EvRunResumed:
			if p := decode[state.RunResumed](t, ev); p.Actor == nil || *p.Actor != bob {
				t.Errorf("run.resumed actor %+v", p.Actor)
			}
		}
	}
	if handover == nil || handover.From != me || handover.To != bob {
		t.Fatalf("handover %+v, want from %+v to %+v", handover, me, bob)
	}
	if reasons[state.SignDanger] != sgA.Fingerprint() || reasons[state.SignInterrupted] != sgA.Fingerprint() ||
		reasons[state.SignHandover] != sgB.Fingerprint() || reasons[state.SignFinished] != sgB.Fingerprint() {
		t.Errorf("signatures by reason: %v", reasons)
	}
	allowedBoth, _ := opsig.ParseAllowedSigners(strings.NewReader(lineA+lineB), "allowed")
	rep, err := evidence.Check(id, evs, allowedBoth)
	if err != nil || rep.Status != evidence.StatusSigned || len(rep.Signatures) != 4 {
		t.Fatalf("check: %+v %v", rep, err)
	}
	onlyA, _ := opsig.ParseAllowedSigners(strings.NewReader(lineA), "allowed")
	if _, err := evidence.Check(id, evs, onlyA); err == nil || !strings.Contains(err.Error(), "bob-test@jump-test") {
		t.Fatalf("check with only alice allowed: %v", err)
	}
}

// TestResumeBySamePersonNoHandover: resuming one's own run records no
// handover.
func TestResumeBySamePersonNoHandover(t *testing.T) {
	f := newFixture(t, 1)
	id := interruptAt(t, f, skipSrc)
	opts := engine.ResumeOptions{Skip: []string{"s"}, SkipReason: "done by hand",
		SetOutputs: map[string]map[string]string{"s": {"tok": "x", "id": "1"}}}
	if _, err := engine.Resume(context.Background(), f.config(t, skipSrc, nil), id, opts); err != nil {
		t.Fatal(err)
	}
	evs, _ := f.db.Events(context.Background(), id)
	for _, ev := range evs {
		if ev.Type == state.EvRunHandover || ev.Type == state.EvRecordSigned {
			t.Errorf("unexpected %s (unsigned resume by the same person)", ev.Type)
		}
		if ev.Type == state.EvStepDecision {
			p := decode[state.StepDecision](t, ev)
			if p.Decision == state.DecisionSkip && (p.Actor == nil || p.Actor.String() != p.By || p.Actor.UID != os.Getuid()) {
				t.Errorf("skip by %q actor %+v", p.By, p.Actor)
			}
		}
	}
}
