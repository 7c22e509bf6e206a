package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

// ApprovalConfig configures the two-person rule (docs/approvals.md): a
// danger step with approvals: or approvers: waits, before its confirmation,
// until enough other persons approved its exact commands with their own SSH
// keys (drbook approve).
type ApprovalConfig struct {
	// Allowed is the allowed-signers file approvals are checked against
	// (namespace opsig.ApproveNamespace); File names it in messages.
	Allowed *opsig.AllowedSigners
	File    string
	// OperatorKey is the key of the person running the run: it can never
	// approve, nor can any principal the file gives it. Nil: the key of
	// Config.Signer.
	OperatorKey ssh.PublicKey
	// Timeout bounds the wait for approvals (0: no limit); then the run
	// stops (ErrNeedsDecision, exit 4) and a resume asks again.
	Timeout time.Duration
	// Poll is how often submitted approvals are read (default 500ms).
	Poll time.Duration
	// SetupErr is a problem met while loading the above (a bad
	// allowed-signers file, a --sign-key that cannot be used): a run with
	// a step that needs approval stops with it before its first step.
	SetupErr error
}

// ApprovalStore is the part of the store approvals need; *state.DB
// implements it.
type ApprovalStore interface {
	ApprovalSubmissions(ctx context.Context, runID, stepID string, pending bool) ([]state.ApprovalSubmission, error)
	MarkApprovalDone(ctx context.Context, id, seq int64) error
}

var _ ApprovalStore = (*state.DB)(nil)

// ApprovalWait is what a person watching the run is shown while it waits
// for approval: who must approve what, and the command to run.
type ApprovalWait struct {
	RunID, StepID, Title string
	RequestSeq           int64
	Request              state.ApprovalRequested
	// Command is what an approver runs.
	Command string
}

// ApprovalWaiter is implemented by operators that show the wait (the TUI).
// WaitApproval returns when the person gives up (abort true: the run is
// aborted; false: interrupted, resumable) or when ctx ends (the approvals
// came, or the run stops): it must then return promptly.
type ApprovalWaiter interface {
	WaitApproval(ctx context.Context, w ApprovalWait) (abort bool, by string, err error)
}

// Refusal is a submitted approval that did not count, and why.
type Refusal struct {
	Approver state.Person
	Reason   string
}

func (f Refusal) String() string { return f.Approver.String() + ": " + f.Reason }

// ErrApprovalSetup is wrapped when a step needs approval but the run cannot
// enforce the rule (no allowed-signers file, no operator key, approvers the
// file does not know): nothing was run.
var ErrApprovalSetup = errors.New("two-person rule cannot be enforced")

// ApproveCommand is the command an approver runs.
func ApproveCommand(runID, stepID string) string {
	return fmt.Sprintf("drbook approve %s %s", runID, stepID)
}

// approvalPrecheck checks, before the first step, that every step needing
// approval can get it.
func (r *run) approvalPrecheck() error {
	if r.cfg.Approval.OperatorKey == nil && r.cfg.Signer != nil {
		// The key that signs the record is the operator's.
		r.cfg.Approval.OperatorKey = r.cfg.Signer.PublicKey()
	}
	ac := r.cfg.Approval
	var errs []error
	for i := range r.cfg.Runbook.Steps {
		s := &r.cfg.Runbook.Steps[i]
		if !s.NeedsApproval() {
			continue
		}
		if p := r.prior[s.ID]; p != nil && p.skipped {
			continue
		}
		if ac.SetupErr != nil {
			return fmt.Errorf("%w: step %s needs approval: %w; nothing was run", ErrApprovalSetup, s.ID, ac.SetupErr)
		}
		if _, ok := r.cfg.Store.(ApprovalStore); !ok {
			return fmt.Errorf("%w: step %s needs approval: the store cannot take approvals", ErrApprovalSetup, s.ID)
		}
		if ac.Allowed == nil {
			return fmt.Errorf("%w: step %s needs approval by another person: give the allowed-signers file of the approvers (--allowed-signers FILE or DRBOOK_ALLOWED_SIGNERS); nothing was run", ErrApprovalSetup, s.ID)
		}
		if ac.OperatorKey == nil {
			return fmt.Errorf("%w: step %s needs approval by another person: drbook must know your SSH key to refuse approving your own step: load it into the ssh-agent or name it with --sign-key; nothing was run", ErrApprovalSetup, s.ID)
		}
		names := ac.Allowed.Names(opsig.ApproveNamespace, time.Time{})
		mine := ac.Allowed.Principals(ac.OperatorKey, opsig.ApproveNamespace, time.Now())
		for _, a := range s.Approvers {
			if !slices.Contains(names, a) {
				errs = append(errs, fmt.Errorf("step %s: approver %q is not in %s for namespace %s", s.ID, a, ac.File, opsig.ApproveNamespace))
			}
		}
		cands := names
		if len(s.Approvers) > 0 {
			cands = s.Approvers
		}
		var others []string
		for _, c := range cands {
			if !slices.Contains(mine, c) && slices.Contains(names, c) {
				others = append(others, c)
			}
		}
		if need := s.ApprovalsNeeded(); len(others) < need {
			errs = append(errs, fmt.Errorf("step %s needs %d approval(s) by persons other than you (%s), but %s names only %d: %s",
				s.ID, need, orNone(mine), ac.File, len(others), orNone(others)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; nothing was run: %w", ErrApprovalSetup, errors.Join(errs...))
	}
	return nil
}

// awaitApproval records the approval request of a danger step and waits
// until enough other persons approved it, the operator gives up, or the
// timeout passes.
func (r *run) awaitApproval(ctx context.Context, s *runbooks.Step, kind steps.Kind, targets []string) error {
	ac := r.cfg.Approval
	store, _ := r.cfg.Store.(ApprovalStore)
	if store == nil || ac.Allowed == nil || ac.OperatorKey == nil {
		return fmt.Errorf("%w: step %s", ErrApprovalSetup, s.ID)
	}
	if h, ok := r.cfg.Operator.(*Headless); ok && !h.Yes {
		// The confirmation that follows the approvals would fail: do not
		// make anyone approve for nothing.
		return fmt.Errorf("%w: step %s is marked danger: confirm it in the TUI or pass --yes (it also needs %d approval(s), asked after that)", ErrNeedsDecision, s.ID, s.ApprovalsNeeded())
	}
	req := state.ApprovalRequested{Title: s.Title, Approvals: s.ApprovalsNeeded(), Approvers: s.Approvers, TimeoutMS: ac.Timeout.Milliseconds()}
	for _, t := range targets {
		x, err := r.execFor(s, t, 0)
		if err != nil {
			return err
		}
		var params bytes.Buffer
		enc := json.NewEncoder(&params)
		enc.SetEscapeHTML(false) // commands keep 2>&1, not 2\u003e\u00261
		if err := enc.Encode(r.maskParams(x.Params)); err != nil {
			return fmt.Errorf("step %s: approval request: %w", s.ID, err)
		}
		req.Commands = append(req.Commands, state.ApprovalCommand{Target: t, Command: r.mask.mask(kind.Summary(x)), Params: strings.TrimSuffix(params.String(), "\n")})
	}
	req.CommandsSHA256 = state.CommandsDigest(req.Commands)
	rec, err := r.cfg.Store.GetRun(ctx, r.id)
	if err != nil {
		return fmt.Errorf("step %s: approval request: %w", s.ID, err)
	}
	req.HeadSeq, req.HeadHash = rec.HeadSeq, rec.HeadHash
	op := r.actor
	op.Key = opsig.Fingerprint(ac.OperatorKey)
	req.Operator = state.Person{Actor: op}
	req.OperatorPrincipals = ac.Allowed.Principals(ac.OperatorKey, opsig.ApproveNamespace, time.Now())
	if len(req.OperatorPrincipals) > 0 {
		req.Operator.Principal = req.OperatorPrincipals[0]
	}
	reqEv, err := r.recordEv(ctx, state.EvApprovalRequested, s.ID, "", 0, req)
	if err != nil {
		return err
	}
	w := ApprovalWait{RunID: r.id, StepID: s.ID, Title: s.Title, RequestSeq: reqEv.Seq, Request: req, Command: ApproveCommand(r.id, s.ID)}
	prompt := fmt.Sprintf("APPROVAL: %s needs %d approval(s) by another person: %s", s.ID, req.Approvals, w.Command)
	r.emit(runlog.Question{Kind: state.WaitApproval, StepID: s.ID, Prompt: prompt, Time: time.Now()})
	t0 := time.Now()

	// The person watching (TUI) may give up; the wait ends when the
	// approvals came.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	type gaveUp struct {
		abort bool
		by    string
		err   error
	}
	giveUp := make(chan gaveUp, 1)
	if aw, ok := r.cfg.Operator.(ApprovalWaiter); ok {
		go func() {
			abort, by, err := aw.WaitApproval(wctx, w)
			giveUp <- gaveUp{abort, by, err}
		}()
	}
	poll := ac.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	var deadline <-chan time.Time
	if ac.Timeout > 0 {
		tm := time.NewTimer(ac.Timeout)
		defer tm.Stop()
		deadline = tm.C
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	granted := map[string]bool{} // fingerprints
	var grantedBy []state.Person
	var usedPrincipals []string
	end := func(resp, by string) {
		waited := time.Since(t0)
		r.humanMu.Lock()
		r.human += waited
		r.humanMu.Unlock()
		stopWatch()
		if by != "" {
			_ = r.record(ctx, state.EvOperatorWait, s.ID, "", 0, state.OperatorWait{
				Kind: state.WaitApproval, Prompt: prompt, Response: resp, By: by, DurationMS: waited.Milliseconds(),
			})
		}
	}
	for {
		subs, err := store.ApprovalSubmissions(context.WithoutCancel(ctx), r.id, s.ID, true)
		if err != nil {
			end("error", "")
			return fmt.Errorf("step %s: read approvals: %w", s.ID, err)
		}
		for _, sub := range subs {
			if len(grantedBy) >= req.Approvals {
				break // enough: the rest stay unread (a later request refuses them)
			}
			g, ref := r.checkApproval(sub, reqEv.Seq, req, granted, usedPrincipals)
			var ev state.Event
			if ref != nil {
				ev, err = r.recordEv(ctx, state.EvApprovalRefused, s.ID, "", 0, *ref)
			} else {
				granted[g.Approver.Key] = true
				usedPrincipals = append(usedPrincipals, g.Approver.Principal)
				grantedBy = append(grantedBy, g.Approver)
				g.Count, g.Needed = len(grantedBy), req.Approvals
				ev, err = r.recordEv(ctx, state.EvApprovalGranted, s.ID, "", 0, *g)
			}
			if err != nil {
				end("error", "")
				return err
			}
			if err := store.MarkApprovalDone(context.WithoutCancel(ctx), sub.ID, ev.Seq); err != nil {
				end("error", "")
				return fmt.Errorf("step %s: %w", s.ID, err)
			}
		}
		if len(grantedBy) >= req.Approvals {
			names := make([]string, len(grantedBy))
			for i, g := range grantedBy {
				names[i] = g.Principal
			}
			end("approved", strings.Join(names, ", "))
			return nil
		}
		select {
		case <-ctx.Done():
			end("interrupted", "")
			return fmt.Errorf("%w while step %s waited for approval", ErrInterrupted, s.ID)
		case g := <-giveUp:
			if g.err != nil && ctx.Err() != nil {
				end("interrupted", "")
				return fmt.Errorf("%w while step %s waited for approval", ErrInterrupted, s.ID)
			}
			if g.abort {
				end("aborted", g.by)
				return fmt.Errorf("%w: %s stopped waiting for the approval of %s", ErrAborted, g.by, s.ID)
			}
			end("interrupted", g.by)
			return fmt.Errorf("%w: %s stopped waiting for the approval of %s (drbook resume %s asks again)", ErrInterrupted, g.by, s.ID, r.id)
		case <-deadline:
			end("timed out", "engine")
			return fmt.Errorf("%w: step %s got %d of %d approval(s) in %s; approvers run: %s; then drbook resume %s (it asks again)",
				ErrNeedsDecision, s.ID, len(grantedBy), req.Approvals, ac.Timeout, w.Command, r.id)
		case <-tick.C:
		}
	}
}

// maskParams returns v with every string in it masked (secrets never reach
// the record, whatever JSON would make of their characters).
func (r *run) maskParams(v any) any {
	switch x := v.(type) {
	case string:
		return r.mask.mask(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[r.mask.mask(k)] = r.maskParams(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.maskParams(e)
		}
		return out
	case []string:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = r.mask.mask(e)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, e := range x {
			out[r.mask.mask(k)] = r.mask.mask(e)
		}
		return out
	}
	return v
}

// checkApproval verifies one submission against the request: the signature
// (over the message the engine itself derives from its request), the
// signer's key in the allowed-signers file, self-approval, the named
// approvers, and a second approval by the same person.
func (r *run) checkApproval(sub state.ApprovalSubmission, reqSeq int64, req state.ApprovalRequested,
	granted map[string]bool, usedPrincipals []string) (*state.ApprovalGranted, *state.ApprovalRefused) {
	ac := r.cfg.Approval
	id := state.Person{Actor: state.Actor{User: sub.User, UID: sub.UID, Host: sub.Host}}
	ref := &state.ApprovalRefused{RequestSeq: reqSeq, Approver: id, Message: string(sub.Message), Signature: string(sub.Signature), SubmittedAt: sub.SubmittedAt}
	refuse := func(code, format string, a ...any) (*state.ApprovalGranted, *state.ApprovalRefused) {
		ref.Code, ref.Reason = code, fmt.Sprintf(format, a...)
		return nil, ref
	}
	// Who signed, whatever they signed.
	pub, err := opsig.VerifyKey(sub.Signature, opsig.ApproveNamespace, sub.Message)
	if err != nil {
		return refuse(state.RefusedSignature, "the signature does not verify: %v", err)
	}
	ref.Approver.Key = opsig.Fingerprint(pub)
	principals := ac.Allowed.Principals(pub, opsig.ApproveNamespace, time.Now())
	if len(principals) > 0 {
		ref.Approver.Principal = principals[0]
	}
	if bytes.Equal(pub.Marshal(), ac.OperatorKey.Marshal()) {
		return refuse(state.RefusedSelf, "self-approval: key %s is the operator's own signing key; another person must approve", ref.Approver.Key)
	}
	// What they signed.
	want := state.ApprovalMessage(r.id, sub.StepID, reqSeq, req)
	if !bytes.Equal(sub.Message, want) {
		signed, perr := state.ParseApprovalMessage(sub.Message)
		switch {
		case perr != nil:
			return refuse(state.RefusedSignature, "not a drbook approval: %v", perr)
		case signed.RunID != r.id || signed.StepID != sub.StepID:
			return refuse(state.RefusedOther, "the approval is for run %s step %s, not run %s step %s", signed.RunID, signed.StepID, r.id, sub.StepID)
		case signed.CommandsSHA256 != req.CommandsSHA256:
			ref.SignedRequestSeq = signed.RequestSeq
			return refuse(state.RefusedChanged, "the approval is for other commands (SHA-256 %.12s…, the step now runs %.12s…): the runbook or inputs changed; approve again", signed.CommandsSHA256, req.CommandsSHA256)
		default:
			ref.SignedRequestSeq = signed.RequestSeq
			return refuse(state.RefusedOther, "the approval is for request #%d (chain head %d), not the current request #%d (chain head %d); approve again", signed.RequestSeq, signed.HeadSeq, reqSeq, req.HeadSeq)
		}
	}
	if len(principals) == 0 {
		return refuse(state.RefusedNotAllowed, "key %s is not in %s for namespace %s", ref.Approver.Key, ac.File, opsig.ApproveNamespace)
	}
	mine := ac.Allowed.Principals(ac.OperatorKey, opsig.ApproveNamespace, time.Now())
	var usable []string
	for _, p := range principals {
		if slices.Contains(mine, p) {
			return refuse(state.RefusedSelf, "self-approval: principal %s is also the operator's (key %s); another person must approve", p, opsig.Fingerprint(ac.OperatorKey))
		}
		if len(req.Approvers) == 0 || slices.Contains(req.Approvers, p) {
			usable = append(usable, p)
		}
	}
	if len(usable) == 0 {
		return refuse(state.RefusedNotNamed, "%s is not among the step's approvers (%s)", strings.Join(principals, ", "), strings.Join(req.Approvers, ", "))
	}
	if granted[ref.Approver.Key] {
		return refuse(state.RefusedDuplicate, "key %s already approved this request; another person must approve", ref.Approver.Key)
	}
	for _, p := range principals {
		if slices.Contains(usedPrincipals, p) {
			return refuse(state.RefusedDuplicate, "%s already approved this request; another person must approve", p)
		}
	}
	ref.Approver.Principal = usable[0]
	return &state.ApprovalGranted{
		RequestSeq: reqSeq, Approver: ref.Approver, PublicKey: opsig.MarshalPublicKey(pub),
		Message: string(sub.Message), Signature: string(sub.Signature), Namespace: opsig.ApproveNamespace, SubmittedAt: sub.SubmittedAt,
	}, nil
}
