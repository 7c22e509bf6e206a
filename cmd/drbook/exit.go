package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/approvals"
	"github.com/drbook/drbook/state/evidence"
)

// Exit codes, documented in the package comment and in --help.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInvalid     = 3
	exitNeedsPerson = 4
	exitUnverified  = 5
	exitLocked      = 6
	exitHostKey     = 7
	exitInterrupted = 130
)

const exitCodesHelp = `Exit codes:
  0    success
  1    the run failed (a step failed), lint found problems, or an unexpected error
  2    usage error (bad flags or arguments), the TUI without a terminal,
       --require-signing without a key to sign with, or a step needs
       approval and the run cannot enforce it (no allowed-signers file, no
       key of yours)
  3    invalid runbook, inventory or answers (lint errors)
  4    the run needs an operator decision (headless), or was aborted, or
       a headless run got no approval in --approval-timeout (resume asks
       again); drbook approve: the approval was refused
  5    the record failed verification (replay --verify: chain, signatures
       or approvals; verify: an evidence bundle)
  6    the run is locked by another runner
  7    a node's SSH host key is unknown or changed: nothing was run
  130  interrupted (Ctrl-C / SIGTERM, or standard output closed while a
       headless run prints): resume it with drbook resume RUN_ID`

// errLintProblems: lint found problems (exit 1, as linters do).
var errLintProblems = errors.New("lint problems")

// errSilent wraps errors already reported to the user.
var errSilent = errors.New("reported")

// errInterruptedNoRun: Ctrl-C (or a signal) closed the TUI before any run
// started; nothing was recorded. It exits 130 like any interruption.
var errInterruptedNoRun = errors.New("interrupted before any run started: nothing was recorded")

// errNoTerminal: the TUI needs a terminal (exit 2).
var errNoTerminal = errors.New("the terminal UI needs a terminal on standard input and output; run headless instead: drbook run RUNBOOK -i INVENTORY --answers FILE --headless [--yes]")

// errStdoutClosed is the cause of a headless run's interruption when its
// standard output was closed (drbook run ... | head).
var errStdoutClosed = errors.New("standard output closed")

type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// markUsageErrors makes the argument checks of every command (wrong number
// of arguments, unknown subcommand) usage errors, exit 2.
func markUsageErrors(c *cobra.Command) {
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
}

// exitCode maps an error to the process exit code, in one place.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, errNoTerminal):
		return exitUsage
	case errors.Is(err, errLintProblems):
		return exitFailed
	case errors.Is(err, runbooks.ErrInvalid), errors.Is(err, runbooks.ErrTemplate):
		return exitInvalid
	case errors.Is(err, engine.ErrApprovalSetup):
		return exitUsage
	case errors.Is(err, errApprovalRefused):
		return exitNeedsPerson
	case errors.Is(err, engine.ErrHostKeyRefused):
		return exitHostKey
	case errors.Is(err, state.ErrRunLocked):
		return exitLocked
	case errors.Is(err, state.ErrChainBroken), errors.Is(err, evidence.ErrSignatures), errors.Is(err, evidence.ErrBundle),
		errors.Is(err, approvals.ErrInvalid):
		return exitUnverified
	case errors.Is(err, engine.ErrNeedsDecision), errors.Is(err, engine.ErrAborted), errors.Is(err, engine.ErrRunbookChanged):
		return exitNeedsPerson
	case errors.Is(err, engine.ErrInterrupted), errors.Is(err, errInterruptedNoRun), errors.Is(err, errStdoutClosed),
		errors.Is(err, errDrillInterrupted):
		return exitInterrupted
	}
	return exitFailed
}
