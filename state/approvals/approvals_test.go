package approvals_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/approvals"
)

func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// chain builds a run's events with seqs and hashes as Append would.
type chain struct {
	t   *testing.T
	evs []state.Event
}

func (c *chain) add(typ state.EventType, step string, p any) state.Event {
	c.t.Helper()
	ev, err := state.NewEvent("r1", typ, p)
	if err != nil {
		c.t.Fatal(err)
	}
	ev.StepID, ev.Seq, ev.Time = step, int64(len(c.evs)+1), time.Unix(1700000000+int64(len(c.evs)), 0).UTC()
	if n := len(c.evs); n > 0 {
		ev.PrevHash = c.evs[n-1].Hash
	}
	ev.Hash = state.EventHash(ev)
	c.evs = append(c.evs, ev)
	return ev
}

// record: alice runs step wipe, which needs bob's approval (granted).
func record(t *testing.T, alice, bob ssh.Signer, grantedBy ssh.Signer, principal string) []state.Event {
	c := &chain{t: t}
	c.add(state.EvRunCreated, "", state.RunCreated{RunbookName: "rb"})
	c.add(state.EvStepStarted, "prepare", state.StepStarted{Kind: "shell"})
	head := c.evs[len(c.evs)-1]
	req := state.ApprovalRequested{Approvals: 1, Commands: []state.ApprovalCommand{{Target: "n1", Command: "wipe"}},
		HeadSeq: head.Seq, HeadHash: head.Hash, Operator: state.Person{Actor: state.Actor{User: "alice", Key: opsig.Fingerprint(alice.PublicKey())}, Principal: "alice@x"},
		OperatorPrincipals: []string{"alice@x"}}
	req.CommandsSHA256 = state.CommandsDigest(req.Commands)
	reqEv := c.add(state.EvApprovalRequested, "wipe", req)
	msg := state.ApprovalMessage("r1", "wipe", reqEv.Seq, req)
	sig, err := opsig.Sign(grantedBy, opsig.ApproveNamespace, msg)
	if err != nil {
		t.Fatal(err)
	}
	c.add(state.EvApprovalGranted, "wipe", state.ApprovalGranted{RequestSeq: reqEv.Seq, Approver: state.Person{Actor: state.Actor{User: "bob", Key: opsig.Fingerprint(grantedBy.PublicKey())}, Principal: principal},
		PublicKey: opsig.MarshalPublicKey(grantedBy.PublicKey()), Message: string(msg), Signature: string(sig), Namespace: opsig.ApproveNamespace, Count: 1, Needed: 1})
	c.add(state.EvStepStarted, "wipe", state.StepStarted{Kind: "shell", Danger: true})
	return c.evs
}

func TestCheck(t *testing.T) {
	alice, bob, carol := newKey(t), newKey(t), newKey(t)
	allowed, err := opsig.ParseAllowedSigners(strings.NewReader(
		"alice@x "+opsig.MarshalPublicKey(alice.PublicKey())+"\nbob@x "+opsig.MarshalPublicKey(bob.PublicKey())+"\n"), "allowed")
	if err != nil {
		t.Fatal(err)
	}
	needs := func([]byte) (map[string]int, error) { return map[string]int{"wipe": 1}, nil }
	withRunbook := func(evs []state.Event) []state.Event {
		// run.created holds the runbook: Required reads it.
		b, _ := json.Marshal(state.RunCreated{RunbookName: "rb", Runbook: state.NewRecordedFile("rb.yaml", []byte("steps: []"))})
		evs[0].Data = b
		return evs
	}
	for _, tc := range []struct {
		name string
		evs  []state.Event
		opts approvals.Options
		want string // "" for no problem
	}{
		{"honest", record(t, alice, bob, bob, "bob@x"), approvals.Options{Allowed: allowed}, ""},
		{"honest, runbook read", withRunbook(record(t, alice, bob, bob, "bob@x")), approvals.Options{Allowed: allowed, Required: needs}, ""},
		{"operator's own key", record(t, alice, bob, alice, "bob@x"), approvals.Options{}, "self-approval: the operator's own key"},
		{"operator's principal", record(t, alice, bob, carol, "alice@x"), approvals.Options{}, "alice@x is the operator"},
		{"key not in the file", record(t, alice, bob, carol, "carol@x"), approvals.Options{Allowed: allowed}, "not allowed"},
		{"no request at all", withRunbook(func() []state.Event {
			evs := record(t, alice, bob, bob, "bob@x")
			return []state.Event{evs[0], evs[1], evs[4]}
		}()), approvals.Options{Required: needs}, "started without an approval request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probs := approvals.Check(tc.evs, tc.opts)
			got := fmt.Sprint(probs)
			switch {
			case tc.want == "" && len(probs) > 0:
				t.Fatalf("problems: %s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Fatalf("problems %s, want %q", got, tc.want)
			}
		})
	}
}
