package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/termsafe"
)

// errApprovalRefused: drbook approve was refused (self-approval, another
// request, a key the run does not allow): exit 4.
var errApprovalRefused = errors.New("approval refused")

func newApproveCmd(a *app) *cobra.Command {
	var signKey, allowed string
	var yes bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "approve RUN_ID STEP",
		Short: "Approve another person's danger step (two-person rule)",
		Long: `Approve a danger step of a run that waits for approval (a step with
approvals: or approvers:, docs/approvals.md).

drbook approve shows the step's exact commands and targets as the run
recorded them, asks you to type the step id (or --yes), and signs with your
own SSH key (the ssh-agent's first key, or --sign-key) a message that binds
the run, the step, the request and its place in the run's hash chain, and
the SHA-256 of those commands and targets. The running drbook verifies the
signature against its allowed-signers file and records the approval (or
its refusal, with the reason) in the run's record; this command waits for
that verdict (--wait).

You cannot approve your own step: an approval with the operator's signing
key, or a key the allowed-signers file gives one of the operator's
principals, is refused. An approval counts only for the request it names:
if the runbook or inputs changed, or the run asks again after a resume,
approve again.

Exit codes: 0 the approval was recorded and counts; 4 it was refused (the
reason is printed and, when the run saw it, recorded); 1 any other error,
or the run did not pick the approval up within --wait.`,
		Example: `  drbook approve r20261129-031502-7c1a wipe-node
  drbook approve r20261129-031502-7c1a wipe-node --sign-key ~/.ssh/id_ed25519.pub --yes`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return approve(cmd.Context(), a, cmd.InOrStdin(), cmd.OutOrStdout(), args[0], args[1], signKey, allowed, yes, wait)
		},
	}
	cmd.Flags().StringVar(&signKey, "sign-key", "", "your SSH key: a .pub whose key is in the ssh-agent, or a private key file (env DRBOOK_SIGN_KEY, config sign_key:; default: the agent's first key)")
	cmd.Flags().StringVar(&allowed, "allowed-signers", "", "allowed-signers file, to check before signing that the run will accept your key (env "+envAllowedSigners+", config allowed_signers:)")
	cmd.Flags().BoolVar(&yes, "yes", false, "approve without typing the step id")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the running drbook to record the approval")
	return cmd
}

// openRequest finds the approval request of step that the run still waits
// on: the last approval.requested of the step with no end after it.
func openRequest(events []state.Event, stepID string) (state.Event, state.ApprovalRequested, []state.ApprovalGranted, error) {
	var req state.ApprovalRequested
	idx := -1
	for i, ev := range events {
		if ev.Type == state.EvApprovalRequested && ev.StepID == stepID {
			idx = i
		}
	}
	if idx < 0 {
		return state.Event{}, req, nil, fmt.Errorf("%w: step %s has never waited for approval in this run", errApprovalRefused, stepID)
	}
	ev := events[idx]
	if err := ev.Decode(&req); err != nil {
		return ev, req, nil, fmt.Errorf("approval request #%d: %w", ev.Seq, err)
	}
	var granted []state.ApprovalGranted
	for _, later := range events[idx+1:] {
		switch {
		case later.Type == state.EvRunFinished:
			return ev, req, nil, fmt.Errorf("%w: the run stopped (event #%d) after asking for approval of %s; a resume asks again, then approve", errApprovalRefused, later.Seq, stepID)
		case later.Type == state.EvStepStarted && later.StepID == stepID:
			return ev, req, nil, fmt.Errorf("%w: step %s is no longer waiting: it started (event #%d)", errApprovalRefused, stepID, later.Seq)
		case later.Type == state.EvApprovalGranted && later.StepID == stepID:
			var g state.ApprovalGranted
			if later.Decode(&g) == nil && g.RequestSeq == ev.Seq {
				granted = append(granted, g)
			}
		}
	}
	return ev, req, granted, nil
}

func approve(ctx context.Context, a *app, in io.Reader, out io.Writer, runID, stepID, signKey, allowedFile string, yes bool, wait time.Duration) error {
	db, err := a.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	run, err := db.GetRun(ctx, runID)
	if err != nil {
		return err
	}
	// What is shown and signed comes from a record that verifies.
	if _, err := db.Verify(ctx, run.ID); err != nil {
		return fmt.Errorf("approval of %s refused: %w", run.ID, err)
	}
	events, err := db.Events(ctx, run.ID)
	if err != nil {
		return err
	}
	reqEv, req, granted, err := openRequest(events, stepID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Run %s (%s), step %s", termsafe.Line(run.ID), termsafe.Line(run.RunbookName), termsafe.Line(stepID))
	if req.Title != "" {
		fmt.Fprintf(out, " — %s", termsafe.Line(req.Title))
	}
	fmt.Fprintf(out, "\nrun by %s; approval request #%d at chain head %d %s\n", termsafe.Line(req.Operator.String()), reqEv.Seq, req.HeadSeq, short(req.HeadHash))
	fmt.Fprintf(out, "needs approval by %s; %d of %d so far\n\nThis will run:\n", termsafe.Line(req.Who()), len(granted), req.Approvals)
	for _, c := range req.Commands {
		target := c.Target
		if target == "" {
			target = "the operator's machine"
		}
		fmt.Fprintf(out, "  on %s:\n", termsafe.Line(target))
		for _, l := range strings.Split(strings.TrimRight(c.Command, "\n"), "\n") {
			fmt.Fprintf(out, "    │ %s\n", termsafe.Line(l))
		}
		if extra := otherParams(c.Params); extra != "" {
			fmt.Fprintf(out, "    with %s\n", termsafe.Line(extra))
		}
	}
	fmt.Fprintf(out, "commands and targets SHA-256 %s\n\n", req.CommandsSHA256)
	if got := state.CommandsDigest(req.Commands); got != req.CommandsSHA256 {
		return fmt.Errorf("%w: the request's commands do not match its digest (%s)", errApprovalRefused, got)
	}

	if signKey == "" && a.settings != nil {
		signKey = expandPath(a.settings.SignKey.Value, "") // $DRBOOK_SIGN_KEY or the config's sign_key
	}
	signer, err := opsig.LoadSigner(ctx, signKey)
	if err != nil {
		return err
	}
	defer signer.Close()
	fp := signer.Fingerprint()
	if fp == req.Operator.Key {
		// The run refuses it for sure (same key): the attempt is left for
		// the record, and refused.
		self := fmt.Errorf("%w: self-approval: your key %s is the operator's own signing key for this run; another person must approve", errApprovalRefused, fp)
		fmt.Fprintf(out, "Your key %s is the operator's: you cannot approve this step. The attempt goes in the record.\n", fp)
		if err := submitApproval(ctx, db, out, run.ID, stepID, reqEv.Seq, req, signer, wait); errors.Is(err, errApprovalRefused) {
			return err
		}
		return self
	}
	if allowedFile == "" {
		allowedFile = a.allowedSignersSetting()
	}
	if allowedFile != "" {
		f, err := os.Open(allowedFile) // #nosec G304 -- the approver names the allowed-signers file
		if err != nil {
			return fmt.Errorf("allowed-signers: %w", err)
		}
		as, err := opsig.ParseAllowedSigners(f, allowedFile)
		_ = f.Close()
		if err != nil {
			return err
		}
		mine := as.Principals(signer.PublicKey(), opsig.ApproveNamespace, time.Now())
		if len(mine) == 0 {
			return fmt.Errorf("%w: your key %s is not in %s for namespace %s", errApprovalRefused, fp, allowedFile, opsig.ApproveNamespace)
		}
		for _, p := range mine {
			if slices.Contains(req.OperatorPrincipals, p) {
				return fmt.Errorf("%w: self-approval: you are %s, who runs this step; another person must approve", errApprovalRefused, p)
			}
		}
		if len(req.Approvers) > 0 && !slices.ContainsFunc(mine, func(p string) bool { return slices.Contains(req.Approvers, p) }) {
			return fmt.Errorf("%w: you are %s, not among the step's approvers (%s)", errApprovalRefused, strings.Join(mine, ", "), strings.Join(req.Approvers, ", "))
		}
		fmt.Fprintf(out, "You are %s (key %s).\n", strings.Join(mine, ", "), fp)
	} else {
		fmt.Fprintf(out, "Your key: %s.\n", fp)
	}
	if !yes {
		fmt.Fprintf(out, "Type %s to approve (anything else refuses): ", stepID)
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read confirmation: %w", err)
		}
		if strings.TrimSpace(line) != stepID {
			return fmt.Errorf("%w: not approved (you typed %q, not %q); nothing was signed", errApprovalRefused, strings.TrimSpace(line), stepID)
		}
	}
	return submitApproval(ctx, db, out, run.ID, stepID, reqEv.Seq, req, signer, wait)
}

// submitApproval signs the approval of request reqSeq, leaves it for the
// run's process and waits up to wait for the verdict it records.
func submitApproval(ctx context.Context, db *state.DB, out io.Writer, runID, stepID string, reqSeq int64, req state.ApprovalRequested, signer *opsig.Signer, wait time.Duration) error {
	msg := state.ApprovalMessage(runID, stepID, reqSeq, req)
	sig, err := opsig.Sign(signer, opsig.ApproveNamespace, msg)
	if err != nil {
		return err
	}
	me := state.CurrentActor(signer.Fingerprint())
	id, err := db.SubmitApproval(ctx, state.ApprovalSubmission{RunID: runID, StepID: stepID, Message: msg, Signature: sig, User: me.User, UID: me.UID, Host: me.Host})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Signed and submitted (submission %d); waiting for the run to record it...\n", id)
	deadline := time.Now().Add(wait)
	for {
		sub, err := db.ApprovalSubmission(ctx, id)
		if err != nil {
			return err
		}
		if sub.DoneSeq > 0 {
			return approvalVerdict(ctx, db, out, runID, sub.DoneSeq)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the run did not record the approval within %s: is it still running (drbook runs)? It reads it when it waits on %s again; a resumed run asks again", wait, stepID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// approvalVerdict prints what the run recorded for a submission.
func approvalVerdict(ctx context.Context, db *state.DB, out io.Writer, runID string, seq int64) error {
	events, err := db.Events(ctx, runID)
	if err != nil {
		return err
	}
	for _, ev := range events {
		if ev.Seq != seq {
			continue
		}
		switch ev.Type {
		case state.EvApprovalGranted:
			var g state.ApprovalGranted
			if err := ev.Decode(&g); err != nil {
				return err
			}
			fmt.Fprintf(out, "Approved: recorded as event #%d, by %s (%d of %d).\n", seq, termsafe.Line(g.Approver.String()), g.Count, g.Needed)
			return nil
		case state.EvApprovalRefused:
			var r state.ApprovalRefused
			if err := ev.Decode(&r); err != nil {
				return err
			}
			return fmt.Errorf("%w (recorded as event #%d): %s", errApprovalRefused, seq, r.Reason)
		}
	}
	return fmt.Errorf("event #%d of run %s is not an approval", seq, runID)
}

// otherParams is a step's parameters JSON without the command (shown
// apart), "" when nothing else is set.
func otherParams(params string) string {
	var m map[string]any
	if params == "" || json.Unmarshal([]byte(params), &m) != nil {
		return params
	}
	delete(m, "command")
	if len(m) == 0 {
		return ""
	}
	b, err := json.Marshal(m)
	if err != nil {
		return params
	}
	return string(b)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
