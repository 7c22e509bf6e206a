// Package approvals checks the two-person rule in a run's record
// (docs/approvals.md) without trusting the process that wrote it: every
// approval.granted must carry a valid SSHSIG, by a key other than the
// operator's, over exactly the message its request implies, and every danger
// step that waited for approval must have started only after enough such
// approvals of the request it waited on.
//
// The package depends on package state and internal/opsig only.
package approvals

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/ssh"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/state"
)

// ErrInvalid is wrapped by the error Check returns when the record's
// approvals do not hold.
var ErrInvalid = errors.New("approvals in the record do not verify")

// Problem is one event where the rule does not hold.
type Problem struct {
	Seq    int64
	Reason string
}

func (p Problem) String() string { return fmt.Sprintf("event %d: %s", p.Seq, p.Reason) }

type request struct {
	ev    state.Event
	p     state.ApprovalRequested
	valid int
	keys  []string
	names []string
	open  bool
}

// Options tune Check.
type Options struct {
	// Allowed, when set, is the auditor's allowed-signers file: every
	// approver must be allowed in opsig.ApproveNamespace for the principal
	// recorded. Without it, signatures are checked against the keys the
	// record holds.
	Allowed *opsig.AllowedSigners
	// Required, when set, reads a runbook as the record holds it (run.created,
	// or a run.resumed that changed it) and returns its steps that need
	// approval (step id → approvals): such a step must not start without a
	// request, even when the record holds none.
	Required func(runbook []byte) (map[string]int, error)
}

// Check verifies the approvals of one run's events (in seq order) and
// returns the problems found (none: the rule held).
func Check(events []state.Event, opts Options) []Problem {
	allowed := opts.Allowed
	var probs []Problem
	add := func(seq int64, format string, a ...any) {
		probs = append(probs, Problem{Seq: seq, Reason: fmt.Sprintf(format, a...)})
	}
	bySeq := map[int64]*request{}
	open := map[string]*request{} // step → the request it waits on
	started := map[string]bool{}  // steps started in this segment
	var required map[string]int
	readRunbook := func(ev state.Event, f *state.RecordedFile) {
		if f == nil || opts.Required == nil {
			return
		}
		req, err := opts.Required(f.Bytes())
		if err != nil {
			add(ev.Seq, "the recorded runbook %s: %v", f.Path, err)
			return
		}
		required = req
	}
	var prev state.Event
	for i, ev := range events {
		switch ev.Type {
		case state.EvRunCreated:
			var p state.RunCreated
			if ev.Decode(&p) == nil {
				readRunbook(ev, p.Runbook)
			}
		case state.EvApprovalRequested:
			r := &request{ev: ev, open: true}
			if err := ev.Decode(&r.p); err != nil {
				add(ev.Seq, "approval.requested: %v", err)
				continue
			}
			if i == 0 || r.p.HeadSeq != prev.Seq || r.p.HeadHash != prev.Hash {
				add(ev.Seq, "the request names chain head %d %.12s, not the event before it", r.p.HeadSeq, r.p.HeadHash)
			}
			if got := state.CommandsDigest(r.p.Commands); got != r.p.CommandsSHA256 {
				add(ev.Seq, "the request's commands digest is %.12s, its commands give %.12s", r.p.CommandsSHA256, got)
			}
			bySeq[ev.Seq] = r
			open[ev.StepID] = r
		case state.EvApprovalGranted:
			var g state.ApprovalGranted
			if err := ev.Decode(&g); err != nil {
				add(ev.Seq, "approval.granted: %v", err)
				continue
			}
			r := bySeq[g.RequestSeq]
			if r == nil || r.ev.StepID != ev.StepID {
				add(ev.Seq, "the approval names request %d, which is not a request of step %s", g.RequestSeq, ev.StepID)
				continue
			}
			if why := checkGrant(ev, g, r, allowed); why != "" {
				add(ev.Seq, "approval by %s: %s", g.Approver, why)
				continue
			}
			r.valid++
			r.keys = append(r.keys, g.Approver.Key)
			r.names = append(r.names, g.Approver.Principal)
		case state.EvRunFinished, state.EvRunResumed:
			// A request holds for its segment only: a resume asks again.
			clear(open)
			clear(started)
			if ev.Type == state.EvRunResumed {
				var p state.RunResumed
				if ev.Decode(&p) == nil {
					readRunbook(ev, p.Runbook)
				}
			}
		case state.EvStepStarted:
			var p state.StepStarted
			if ev.Decode(&p) == nil && p.Kind == "check" {
				break // a resume's check: command, not the step
			}
			r := open[ev.StepID]
			if r == nil {
				if n := required[ev.StepID]; n > 0 && !started[ev.StepID] {
					add(ev.Seq, "step %s started without an approval request; its runbook asks %d approval(s)", ev.StepID, n)
				}
				started[ev.StepID] = true
				break
			}
			started[ev.StepID] = true
			if r.valid < r.p.Approvals {
				add(ev.Seq, "step %s started with %d valid approval(s) of request %d, %d needed", ev.StepID, r.valid, r.ev.Seq, r.p.Approvals)
			}
			delete(open, ev.StepID) // its other targets and attempts follow
		}
		prev = ev
	}
	return probs
}

// checkGrant says why a grant does not count ("" when it does).
func checkGrant(ev state.Event, g state.ApprovalGranted, r *request, allowed *opsig.AllowedSigners) string {
	if g.Namespace != opsig.ApproveNamespace {
		return fmt.Sprintf("namespace %q, not %q", g.Namespace, opsig.ApproveNamespace)
	}
	want := state.ApprovalMessage(ev.RunID, ev.StepID, r.ev.Seq, r.p)
	if g.Message != string(want) {
		return "the signed message is not the one its request implies"
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(g.PublicKey))
	if err != nil {
		return "no valid public key"
	}
	key, err := opsig.VerifyKey([]byte(g.Signature), opsig.ApproveNamespace, want)
	if err != nil {
		return err.Error()
	}
	if opsig.MarshalPublicKey(key) != opsig.MarshalPublicKey(pub) {
		return "the signature is by another key than the one recorded"
	}
	fp := opsig.Fingerprint(key)
	if fp != g.Approver.Key {
		return fmt.Sprintf("key %s, recorded as %s", fp, g.Approver.Key)
	}
	if fp == r.p.Operator.Key {
		return "self-approval: the operator's own key"
	}
	if slices.Contains(r.keys, fp) || (g.Approver.Principal != "" && slices.Contains(r.names, g.Approver.Principal)) {
		return "the same person approved the request twice"
	}
	if slices.Contains(r.p.OperatorPrincipals, g.Approver.Principal) {
		return fmt.Sprintf("self-approval: %s is the operator", g.Approver.Principal)
	}
	if len(r.p.Approvers) > 0 && !slices.Contains(r.p.Approvers, g.Approver.Principal) {
		return fmt.Sprintf("%s is not among the step's approvers", g.Approver.Principal)
	}
	if allowed != nil {
		if _, _, err := allowed.Verify([]byte(g.Signature), opsig.ApproveNamespace, want, g.Approver.Principal, g.SubmittedAt); err != nil {
			return err.Error()
		}
	}
	return ""
}
