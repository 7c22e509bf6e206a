package evidence_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/evidence"
)

// needTool fails in CI (which installs openssh-client) and skips elsewhere.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// keygen makes an ed25519 key with the real ssh-keygen and returns its
// signer and allowed-signers line for principal.
func keygen(t *testing.T, dir, name, principal string) (*opsig.Signer, string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if out, err := exec.Command(needTool(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	s, err := opsig.LoadSigner(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(p + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return s, principal + " " + strings.TrimSpace(string(pub)) + "\n"
}

func allowedFrom(t *testing.T, text string) *opsig.AllowedSigners {
	t.Helper()
	a, err := opsig.ParseAllowedSigners(strings.NewReader(text), "allowed_signers")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// recorder appends to a real SQLite record and signs like the engine does.
type recorder struct {
	t     *testing.T
	db    *state.DB
	id    string
	head  state.Event
	actor state.Actor
	sg    *opsig.Signer
}

func (r *recorder) add(typ state.EventType, step string, p any) {
	r.t.Helper()
	ev, err := state.NewEvent(r.id, typ, p)
	if err != nil {
		r.t.Fatal(err)
	}
	ev.StepID = step
	if r.head, err = r.db.Append(context.Background(), ev); err != nil {
		r.t.Fatal(err)
	}
}

func (r *recorder) sign(reason, step string) {
	r.t.Helper()
	sig, err := opsig.Sign(r.sg, opsig.Namespace, state.SignedMessage(r.id, r.head.Seq, r.head.Hash))
	if err != nil {
		r.t.Fatal(err)
	}
	a := r.actor
	r.add(state.EvRecordSigned, "", state.RecordSigned{Seq: r.head.Seq, Hash: r.head.Hash, Reason: reason, StepID: step,
		Key: r.sg.Fingerprint(), PublicKey: opsig.MarshalPublicKey(r.sg.PublicKey()), Signature: string(sig), Actor: &a})
}

// signedRun records, in a real database, a run signed by sg: a danger
// confirmation (signed) and its end (signed). sg nil records it unsigned.
func signedRun(t *testing.T, sg *opsig.Signer) (*state.DB, string) {
	t.Helper()
	db, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "drbook.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	actor := state.CurrentActor("")
	if sg != nil {
		actor.Key = sg.Fingerprint()
	}
	run := state.Run{RunbookName: "rb", RunbookSHA256: strings.Repeat("ab", 32), RunbookPath: "rb.yaml",
		RunbookSource: []byte("name: rb\n"), Mode: state.ModeHeadless, Actor: &actor}
	if err := db.CreateRun(context.Background(), &run); err != nil {
		t.Fatal(err)
	}
	ev, _ := db.Events(context.Background(), run.ID)
	r := &recorder{t: t, db: db, id: run.ID, head: ev[0], actor: actor, sg: sg}
	r.add(state.EvStepStarted, "hello", state.StepStarted{Title: "hello", Kind: "shell"})
	fin := state.StepFinished{Status: state.StatusSucceeded}
	fin.SetLog([]byte("hello\n"))
	r.add(state.EvStepFinished, "hello", fin)
	r.add(state.EvOperatorWait, "wipe", state.OperatorWait{Kind: state.WaitConfirm, Response: "node1", By: actor.String(), Actor: &actor})
	if sg != nil {
		r.sign(state.SignDanger, "wipe")
	}
	r.add(state.EvStepStarted, "wipe", state.StepStarted{Title: "wipe", Kind: "shell", Danger: true})
	r.add(state.EvStepFinished, "wipe", fin)
	r.add(state.EvRunFinished, "", state.RunFinished{Status: state.StatusSucceeded})
	if sg != nil {
		r.sign(state.SignFinished, "")
	}
	return db, run.ID
}

func events(t *testing.T, db *state.DB, id string) []state.Event {
	t.Helper()
	evs, err := db.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// rechain recomputes every hash from the first event, as an attacker who
// can write the database does after editing it.
func rechain(evs []state.Event) []state.Event {
	out := make([]state.Event, len(evs))
	prev := ""
	for i, ev := range evs {
		ev.Seq = int64(i + 1)
		if i == 0 {
			prev = state.GenesisHash(ev.RunID)
		}
		ev.PrevHash = prev
		ev.Hash = state.EventHash(ev)
		prev = ev.Hash
		out[i] = ev
	}
	return out
}

func without(evs []state.Event, typ state.EventType, nth int) []state.Event {
	var out []state.Event
	k := 0
	for _, ev := range evs {
		if ev.Type == typ {
			k++
			if k == nth || nth == 0 {
				continue
			}
		}
		out = append(out, ev)
	}
	return out
}

// TestCheck: a signed run verifies against an allowed-signers file; the
// rewrite attack (an actor changed, every hash recomputed: the chain
// verifies), a cut tail, a dropped signature, a foreign signer and an
// unsigned run under an allowed-signers file each fail, naming why.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	sg, line := keygen(t, dir, "alice", "alice@example.org")
	_, foreign := keygen(t, dir, "mallory", "mallory@example.org")
	db, id := signedRun(t, sg)
	evs := events(t, db, id)
	udb, uid := signedRun(t, nil)
	unsigned := events(t, udb, uid)

	rewrite := func() []state.Event {
		out := append([]state.Event(nil), evs...)
		for i, ev := range out {
			if ev.Type == state.EvOperatorWait {
				ev.Data = bytes.Replace(ev.Data, []byte(`"uid":`), []byte(`"uid":1000`), 1)
				out[i] = ev
			}
		}
		return rechain(out)
	}
	tests := []struct {
		name    string
		events  []state.Event
		allowed string
		status  string
		want    string // in the reason; "" for OK
	}{
		{name: "signed, allowed", events: evs, allowed: line, status: evidence.StatusSigned},
		{name: "signed, signers unchecked", events: evs, status: evidence.StatusSigned},
		{name: "rewrite attack", events: rewrite(), allowed: line, want: "rewritten after it was signed"},
		{name: "cut tail", events: evs[:len(evs)-3], allowed: line, want: "no signature covers them"},
		{name: "cut after the danger signature", events: evs[:5], allowed: line, want: "not the end of a run segment"},
		{name: "last signature dropped", events: evs[:len(evs)-1], allowed: line, want: "no signature covers them"},
		{name: "danger signature dropped", events: rechain(without(evs, state.EvRecordSigned, 1)), allowed: line, want: "events were removed or inserted"},
		{name: "all signatures dropped", events: rechain(without(evs, state.EvRecordSigned, 0)), allowed: line, want: "holds no signature"},
		{name: "all signatures dropped, no file", events: rechain(without(evs, state.EvRecordSigned, 0)), status: evidence.StatusPartial},
		{name: "cut tail, no file", events: evs[:len(evs)-3], status: evidence.StatusPartial},
		{name: "foreign signer", events: evs, allowed: foreign, want: "not allowed by the allowed-signers file"},
		{name: "unsigned, no file", events: unsigned, status: evidence.StatusUnsigned},
		{name: "unsigned, allowed-signers asked", events: unsigned, allowed: line, want: "the run is unsigned"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var allowed *opsig.AllowedSigners
			if tc.allowed != "" {
				allowed = allowedFrom(t, tc.allowed)
			}
			if vr := state.VerifyEvents(tc.events[0].RunID, tc.events); !vr.OK {
				t.Fatalf("the chain itself must verify for this case: %s", vr.Reason)
			}
			rep, err := evidence.Check(tc.events[0].RunID, tc.events, allowed)
			if tc.want == "" {
				if err != nil || !rep.OK || rep.Status != tc.status {
					t.Fatalf("got %+v, %v; want OK %s", rep, err, tc.status)
				}
				return
			}
			if !errors.Is(err, evidence.ErrSignatures) || rep.OK || !strings.Contains(rep.Reason, tc.want) {
				t.Fatalf("got %q (%v), want a failure saying %q", rep.Reason, err, tc.want)
			}
		})
	}
	rep, _ := evidence.Check(id, evs, allowedFrom(t, line))
	if len(rep.Signatures) != 2 || rep.Signatures[0].Reason != state.SignDanger || rep.Signatures[0].StepID != "wipe" ||
		rep.Signatures[1].Reason != state.SignFinished || rep.Signatures[1].Principals[0] != "alice@example.org" ||
		rep.CoveredSeq != int64(len(evs)-1) {
		t.Errorf("signatures: %+v", rep)
	}
}

// TestAppendSignsOnlyTheHead: the store refuses a record.signed that does
// not sign the event right before it.
func TestAppendSignsOnlyTheHead(t *testing.T) {
	sg, _ := keygen(t, t.TempDir(), "alice", "alice")
	db, id := signedRun(t, sg)
	evs := events(t, db, id)
	old := evs[2]
	ev, _ := state.NewEvent(id, state.EvRecordSigned, state.RecordSigned{Seq: old.Seq, Hash: old.Hash, Reason: state.SignFinished, Signature: "x", Key: "k"})
	if _, err := db.Append(context.Background(), ev); !errors.Is(err, state.ErrInvalidEvent) {
		t.Fatalf("append of a signature of an old event: %v, want ErrInvalidEvent", err)
	}
}

// TestSignedMessage: the message has one form, and parses back.
func TestSignedMessage(t *testing.T) {
	msg := state.SignedMessage("r1", 42, "ab12")
	if string(msg) != "drbook run record\nrun: r1\nseq: 42\nhash: ab12\n" {
		t.Fatalf("message %q", msg)
	}
	id, seq, h, err := state.ParseSignedMessage(msg)
	if err != nil || id != "r1" || seq != 42 || h != "ab12" {
		t.Fatalf("parse: %q %d %q %v", id, seq, h, err)
	}
	for _, bad := range []string{"drbook run record\nrun: r1\nseq: 042\nhash: ab\n", "drbook run record\nrun: r1\nseq: 1\nhash: ab", "x\nrun: r\nseq: 1\nhash: a\n"} {
		if _, _, _, err := state.ParseSignedMessage([]byte(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}
