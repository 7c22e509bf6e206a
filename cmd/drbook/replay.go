package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/approvals"
	"github.com/drbook/drbook/state/evidence"
	"github.com/drbook/drbook/state/export"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/state/termsafe"
)

func newReplayCmd(a *app) *cobra.Command {
	var verify bool
	var format, allowedPath string
	cmd := &cobra.Command{
		Use:   "replay RUN_ID",
		Short: "Show a recorded run from the checkpoint database (never contacts a node)",
		Long: `Replay a run from its record: every step execution with its target, timings,
exit status, the command that ran, outputs (secrets masked) and output log
(text and markdown show up to 60 lines per execution and say what was cut;
--format json holds every log whole). Everything shown is read from the
run's hash-chained events alone, never from the tables that cache them.

--verify recomputes the run's hash chain from its first event and fails with
exit code 5, naming the first broken sequence number, if any event was altered,
removed or reordered. It then checks the run's SSH signatures: each must
verify against the event it signs, and the last must sign the end of the
run (a cut tail, a removed signature or a rewritten event fails, exit 5).
--allowed-signers FILE (implies --verify; $` + envAllowedSigners + ` with --verify) also requires
every signer to be in FILE, and fails an unsigned run. Without it an
unsigned run verifies only as "unsigned". See docs/signing.md.

--verify also checks the record's approvals (two-person rule,
docs/approvals.md): each one signed, by another key than the operator's,
for the request it names, and no such step started without them; with
--allowed-signers every approver must be in FILE (exit 5, naming the
events).`,
		Example: "  drbook replay r20261121-153012-ab12 --verify --allowed-signers allowed_signers\n  drbook replay r2026 --format markdown > audit.md",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wantsTUI(cmd) {
				// The TUI replay always verifies; with --allowed-signers
				// (or $DRBOOK_ALLOWED_SIGNERS) it checks the signers too.
				as, _, err := a.loadAllowedSigners(allowedPath)
				if err != nil {
					return err
				}
				return runInteractive(cmd, a, interactiveRequest{ReplayID: args[0], Allowed: as})
			}
			if a.output == "json" {
				format = "json"
			}
			switch format {
			case "text", "json", "markdown":
			default:
				return usageError{fmt.Errorf("--format must be text, json or markdown, not %q", format)}
			}
			// --allowed-signers implies --verify; $DRBOOK_ALLOWED_SIGNERS
			// applies only to a replay that verifies.
			var allowed *opsig.AllowedSigners
			if allowedPath != "" || verify {
				as, _, err := a.loadAllowedSigners(allowedPath)
				if err != nil {
					return err
				}
				allowed, verify = as, verify || as != nil
			}
			ctx := cmd.Context()
			db, err := a.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			run, err := db.GetRun(ctx, args[0])
			if err != nil {
				return err
			}
			// Verify first: a record too damaged to read must still be
			// reported as a broken chain (exit 5), not as a read error.
			var rep *state.VerifyReport
			var verr error
			if verify {
				r, err := db.Verify(ctx, run.ID)
				rep, verr = &r, err
			}
			events, err := db.Events(ctx, run.ID)
			if err != nil {
				return errors.Join(verr, err)
			}
			// Everything shown comes from the chain: the runs and execs
			// tables are caches the chain does not cover.
			view := runlog.Fold(events)
			var aerr error
			if verify {
				reportCaches(ctx, cmd.ErrOrStderr(), db, run, view)
				// The two-person rule: every approval signed, by another
				// key than the operator's, for the request it names, and
				// no step started without them (docs/approvals.md).
				if probs := approvals.Check(events, approvals.Options{Allowed: allowed, Required: approvalSteps}); len(probs) > 0 {
					msgs := make([]string, len(probs))
					for i, p := range probs {
						msgs[i] = termsafe.Line(p.String())
					}
					aerr = fmt.Errorf("%w:\n  %s", approvals.ErrInvalid, strings.Join(msgs, "\n  "))
				}
			}
			// Signatures are checked on a chain that verified: on a broken
			// one, the chain's error says more.
			var sigRep *evidence.Report
			var serr error
			if verify && verr == nil {
				r, err := evidence.Check(run.ID, events, allowed)
				sigRep, serr = &r, err
			}
			id := run.ID
			run, execs := view.Run(), view.StateExecs()
			run.ID = id
			w := cmd.OutOrStdout()
			switch format {
			case "json":
				err = writeJSON(w, jsonapi.Replay{Header: jsonapi.NewHeader(), Document: export.NewDocument(run, events, execs, rep), Signatures: sigRep})
			case "markdown":
				err = export.Markdown(w, run, events, execs, rep)
				if err == nil && sigRep != nil {
					fmt.Fprintf(w, "\n## Signatures\n\n")
					for _, l := range signatureLines(*sigRep) {
						fmt.Fprintf(w, "    %s\n", l)
					}
				}
			default:
				err = export.Text(w, run, events, execs, rep)
				if err == nil && sigRep != nil {
					for _, l := range signatureLines(*sigRep) {
						fmt.Fprintln(w, l)
					}
				}
			}
			if err != nil {
				return err
			}
			if verr != nil {
				return verr
			}
			return errors.Join(serr, aerr)
		},
	}
	cmd.Flags().BoolVar(&verify, "verify", false, "verify the hash chain; exit 5 if broken")
	cmd.Flags().StringVar(&format, "format", "text", "text, json or markdown")
	cmd.Flags().StringVar(&allowedPath, "allowed-signers", "", "allowed-signers file (ssh-keygen format): every signer must be in it and the run signed; implies --verify")
	tuiFlag(cmd, "browse the recorded run in the terminal UI (read-only)")
	return cmd
}

// approvalSteps lists the steps of a recorded runbook that need approval.
func approvalSteps(src []byte) (map[string]int, error) {
	rb, err := runbooks.ParseRunbook("recorded runbook", src)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for i := range rb.Steps {
		if s := &rb.Steps[i]; s.Danger && s.NeedsApproval() {
			out[s.ID] = s.ApprovalsNeeded()
		}
	}
	return out, nil
}

// reportCaches says on w where the database's caches of a run (runs, execs
// and answers rows) differ from its chain. Replay never shows them: the
// report only tells an auditor that the database was altered outside the
// chain (or that the caches could not be read).
func reportCaches(ctx context.Context, w io.Writer, db *state.DB, row state.Run, view runlog.View) {
	execs, err := db.Execs(ctx, row.ID)
	if err != nil {
		fmt.Fprintf(w, "warning: cannot read the execs cache: %v\n", err)
		return
	}
	answers, err := db.Answers(ctx, row.ID)
	if err != nil {
		fmt.Fprintf(w, "warning: cannot read the answers cache: %v\n", err)
		return
	}
	diffs := runlog.CacheDiff(view, row, execs, answers)
	if len(diffs) == 0 {
		return
	}
	fmt.Fprintf(w, "warning: %d cached row(s) differ from the hash chain (altered outside it; replay shows the chain):\n", len(diffs))
	for _, d := range diffs {
		fmt.Fprintf(w, "  %s\n", termsafe.Cell(d))
	}
}
