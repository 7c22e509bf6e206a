package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
)

func newRunCmd(a *app) *cobra.Command {
	var invPath, answersPath string
	var headless, yes bool
	var sign signing
	cmd := &cobra.Command{
		Use:   "run RUNBOOK -i INVENTORY",
		Short: "Run a runbook (headless with --headless)",
		Long: `Run a runbook against the nodes of an inventory.

Every step execution is checkpointed before and after it runs. Ctrl-C or
SIGTERM (or SIGHUP) marks running steps interrupted and exits with code 130; so does a
headless run whose standard output is closed (drbook run ... | head); continue
with 'drbook resume RUN_ID'.

Headless runs take inputs from --answers (values may be {env: NAME} or
{file: PATH} so secrets stay out of the file), confirm danger steps only with
--yes, and stop with exit code 4 where a person must decide.

The record is signed with your SSH key (ssh-agent, or the inventory's
identity_file, or --sign-key) at every confirmed danger step and when the
run ends; without a key the run is recorded unsigned (said on stderr), or
refused with --require-signing (exit 2). See docs/signing.md.

A danger step with approvals: or approvers: waits until another person
approves its exact commands with their own SSH key (drbook approve RUN STEP;
docs/approvals.md): give the allowed-signers file (--allowed-signers or
DRBOOK_ALLOWED_SIGNERS); your own key (ssh-agent or --sign-key) can never
approve. Headless, the wait lasts --approval-timeout, then exit 4.`,
		Example: "  drbook run recover.yaml -i prod.yaml --answers answers.yaml --headless --yes\n  drbook run recover.yaml -i prod.yaml --answers answers.yaml --headless --yes --allowed-signers team.allowed_signers",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !headless {
				return runInteractive(cmd, a, interactiveRequest{Runbook: args[0], Inventory: invPath, Answers: answersPath, Sign: &sign})
			}
			return runHeadless(cmd, a, args[0], invPath, answersPath, yes, &sign)
		},
	}
	cmd.Flags().StringVarP(&invPath, "inventory", "i", "", "inventory of nodes (required)")
	cmd.Flags().StringVar(&answersPath, "answers", "", "answers file for inputs and input steps")
	cmd.Flags().BoolVar(&headless, "headless", false, "run without the TUI")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm danger and confirm steps (headless)")
	signFlags(cmd, &sign)
	approvalFlags(cmd, &a.approval, true)
	_ = cmd.MarkFlagRequired("inventory")
	return cmd
}

// runHeadless runs a runbook without the TUI, printing events as they come.
func runHeadless(cmd *cobra.Command, a *app, runbook, invPath, answersPath string, yes bool, sign *signing) error {
	ctx := cmd.Context()
	reg, inv, rb, answers, err := a.loadRun(runbook, invPath, answersPath)
	if err != nil {
		return err
	}
	if err := a.prepareSigning(ctx, sign, inv, cmd.ErrOrStderr()); err != nil {
		return err
	}
	defer a.closeSigner()
	inputs, _, err := runbooks.ResolveInputs(rb, inv, answers, false)
	if err != nil {
		return err
	}
	db, err := a.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	defer a.flushNotify() // before the database closes
	ctx, stdout, release := guardStdout(ctx, cmd.OutOrStdout())
	defer release()
	p := newPrinter(stdout, a.output, len(rb.Steps))
	cfg := a.engineConfig(rb, inv, reg, db, &engine.Headless{Yes: yes, Answers: answers}, p.observe, state.ModeHeadless)
	cfg.Answers = answers
	out, err := engine.Start(ctx, cfg, inputs)
	return runResult(out, stdoutClosedErr(ctx, err))
}

// runResult turns an engine outcome into the command's error, with a hint
// on how to go on.
func runResult(out engine.Outcome, err error) error {
	if err == nil {
		return nil
	}
	hint := ""
	if out.RunID != "" && out.Status != state.StatusSucceeded {
		hint = fmt.Sprintf("\nrun %s is %s; continue with: drbook resume %s", out.RunID, out.Status, out.RunID)
	}
	return fmt.Errorf("%w%s", err, hint)
}

func newResumeCmd(a *app) *cobra.Command {
	var invPath, runbookPath, answersPath, reason string
	var redo, skip, setOutputs []string
	var accept, yes bool
	var sign signing
	cmd := &cobra.Command{
		Use:   "resume RUN_ID",
		Short: "Continue an interrupted or failed run where it stopped",
		Long: `Continue a run from its record. Completed step executions are never run
again; a fanned-out step re-runs only its failed targets. A step found
interrupted is decided by its check: command, by its kind's idempotency, or
by you: --redo STEP runs it again, --skip STEP --reason "..." records that it
took effect. Both are recorded.

The runbook and inventory are those the record holds (content and SHA-256),
so resume works from any directory without the files; plugin executables
still come from the plugin directories. --runbook / -i override them; if
they differ, resume is refused with a summary of the change unless
--accept-changed (the change is shown and the new files recorded). Records
made before drbook kept the files are read from their recorded paths.

--redo and --skip name steps that are interrupted or failed (anything else
is a usage error, exit 2). Skipping a step whose outputs later steps use
needs them: --set-output STEP.KEY=VALUE (recorded with your name and
--reason; a secret output is sealed). The output a step printed before it
was cut short is in the record: drbook replay RUN shows it.

A wrong input found mid-run can be corrected: give the right value in the
--answers file (inputs:) with --reason. An input that no completed step has
used changes (recorded with your name and the reason; a secret is compared
by hash and sealed again) and the run goes on with it. An input a completed
step already used cannot change in this run: resume is refused (exit 2),
naming the steps that used it, and nothing is recorded.

A resume by another person than the one who held the run (another user or
host) records a handover naming both, signed with the new holder's key.
Signing works as for run (--sign-key, --require-signing; docs/signing.md).`,
		Example: `  drbook resume r20261129-031502-7c1a --yes
  drbook resume r20261129-031502-7c1a --redo restore --yes
  drbook resume r20261129-031502-7c1a --skip add-member --reason "member added, id in the log" --set-output add-member.new_id=8e9e05c52164694d --yes
  drbook resume r20261129-031502-7c1a --answers fixed.yaml --reason "backup path was mistyped" --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(skip) > 0 && strings.TrimSpace(reason) == "" {
				return usageError{fmt.Errorf("--skip needs --reason")}
			}
			outs, err := parseSetOutputs(setOutputs)
			if err != nil {
				return usageError{err}
			}
			opts := engine.ResumeOptions{AcceptChanged: accept, Redo: redo, Skip: skip, SkipReason: reason, SetOutputs: outs}
			if wantsTUI(cmd) {
				answers, err := loadAnswers(answersPath)
				if err != nil {
					return err
				}
				opts.Answers, opts.InputReason = answers, reason
				return resumeError(runInteractive(cmd, a, interactiveRequest{ResumeID: args[0], ResumeOpts: opts, Sign: &sign}))
			}
			ctx := cmd.Context()
			db, err := a.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			defer a.flushNotify() // before the database closes
			rec, err := db.GetRun(ctx, args[0])
			if err != nil {
				return err
			}
			// Nothing is read from a record whose chain does not verify
			// (exit 5, naming the first bad event); the engine checks
			// again under the run's lock.
			if _, err := db.Verify(ctx, rec.ID); err != nil {
				return fmt.Errorf("resume of %s refused: %w", rec.ID, err)
			}
			lf, err := a.loadRecorded(ctx, db, rec, runbookPath, invPath)
			if err != nil {
				return err
			}
			reg, inv, rb := lf.reg, lf.inv, lf.rb
			if err := a.prepareSigning(ctx, &sign, inv, cmd.ErrOrStderr()); err != nil {
				return err
			}
			defer a.closeSigner()
			answers, err := loadAnswers(answersPath)
			if err != nil {
				return err
			}
			opts.Answers, opts.InputReason = answers, reason
			answers = withRecordedAnswers(answers, lf.files)
			ctx, stdout, release := guardStdout(ctx, cmd.OutOrStdout())
			defer release()
			p := newPrinter(stdout, a.output, len(rb.Steps))
			cfg := a.engineConfig(rb, inv, reg, db, &engine.Headless{Yes: yes, Answers: answers}, p.observe, rec.Mode)
			out, err := engine.Resume(ctx, cfg, rec.ID, opts)
			return resumeError(runResult(out, stdoutClosedErr(ctx, err)))
		},
	}
	cmd.Flags().StringVarP(&invPath, "inventory", "i", "", "inventory (default: the one recorded with the run)")
	cmd.Flags().StringVar(&runbookPath, "runbook", "", "runbook file (default: the one recorded with the run)")
	cmd.Flags().StringVar(&answersPath, "answers", "", "answers file: input steps not yet run, and corrected inputs that no completed step used (needs --reason)")
	cmd.Flags().StringSliceVar(&redo, "redo", nil, "run these interrupted steps again")
	cmd.Flags().StringSliceVar(&skip, "skip", nil, "skip these interrupted steps (they took effect); needs --reason")
	cmd.Flags().StringArrayVar(&setOutputs, "set-output", nil, "STEP.KEY=VALUE: an output of a step skipped with --skip, for the steps that use it (recorded with who and --reason; a secret output is sealed); repeatable")
	cmd.Flags().StringVar(&reason, "reason", "", "why the --skip steps are skipped, or why --answers changes inputs (recorded)")
	cmd.Flags().BoolVar(&accept, "accept-changed", false, "resume even though the runbook or inventory changed (recorded)")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm danger and confirm steps")
	approvalFlags(cmd, &a.approval, true)
	cmd.Flags().Bool("headless", true, "resume without the TUI (the only mode so far)")
	signFlags(cmd, &sign)
	tuiFlag(cmd, "resume in the terminal UI (decisions are asked there)")
	return cmd
}

// parseSetOutputs parses --set-output STEP.KEY=VALUE flags.
func parseSetOutputs(flags []string) (map[string]map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := map[string]map[string]string{}
	for _, f := range flags {
		ref, val, ok := strings.Cut(f, "=")
		step, key, dot := strings.Cut(ref, ".")
		if !ok || !dot || step == "" || key == "" {
			return nil, fmt.Errorf("--set-output %q: want STEP.KEY=VALUE", f)
		}
		if out[step] == nil {
			out[step] = map[string]string{}
		}
		if _, dup := out[step][key]; dup {
			return nil, fmt.Errorf("--set-output %s.%s given twice", step, key)
		}
		out[step][key] = val
	}
	return out, nil
}

// resumeError makes a refused input change a usage error (exit 2): the
// answers given cannot apply to this run, and nothing was recorded.
func resumeError(err error) error {
	if errors.Is(err, engine.ErrInputUsed) || errors.Is(err, engine.ErrReasonNeeded) || errors.Is(err, engine.ErrBadResumeOption) {
		return usageError{err}
	}
	return err
}

func newPlanCmd(a *app) *cobra.Command {
	var invPath, answersPath string
	cmd := &cobra.Command{
		Use:   "plan RUNBOOK -i INVENTORY",
		Short: "Show the resolved steps and targets without running anything",
		Long: `Show each step with its kind, targets and what it would run, with inputs taken
from --answers. Commands are rendered as text as far as the answers and the
inventory allow; the parts that depend on outputs of earlier steps stay as
written ({{ steps.member.outputs.id }}) and are listed as "filled in at run
time". A guard the answers fix shows "runs" or "skipped: when is false". A
step on several nodes shows what reads target once per node. Secrets are
masked. Nothing is executed and nothing is recorded (docs/runbooks.md).`,
		Example: "  drbook plan replace.yaml -i prod.yaml --answers answers.yaml\n  drbook plan replace.yaml -i prod.yaml --answers answers.yaml --output json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, inv, rb, answers, err := a.loadRun(args[0], invPath, answersPath)
			if err != nil {
				return err
			}
			inputs, _, err := runbooks.ResolveInputs(rb, inv, answers, false)
			if err != nil {
				return err
			}
			plan := engine.MakePlan(rb, inv, inputs, reg)
			return printPlan(cmd.OutOrStdout(), a.output, rb, plan)
		},
	}
	cmd.Flags().StringVarP(&invPath, "inventory", "i", "", "inventory of nodes")
	cmd.Flags().StringVar(&answersPath, "answers", "", "answers file for inputs")
	return cmd
}
