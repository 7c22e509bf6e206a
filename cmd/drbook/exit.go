package main

import (
	"errors"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
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
  2    usage error (bad flags or arguments)
  3    invalid runbook, inventory or answers (lint errors)
  4    the run needs an operator decision (headless), or was aborted
  5    the record failed verification (replay --verify)
  6    the run is locked by another runner
  7    a node's SSH host key is unknown or changed: nothing was run
  130  interrupted (Ctrl-C / SIGTERM): resume it with drbook resume RUN_ID`

// errLintProblems: lint found problems (exit 1, as linters do).
var errLintProblems = errors.New("lint problems")

// errSilent wraps errors already reported to the user.
var errSilent = errors.New("reported")

type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// exitCode maps an error to the process exit code, in one place.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errLintProblems):
		return exitFailed
	case errors.Is(err, runbooks.ErrInvalid), errors.Is(err, runbooks.ErrTemplate):
		return exitInvalid
	case errors.Is(err, engine.ErrHostKeyRefused):
		return exitHostKey
	case errors.Is(err, state.ErrRunLocked):
		return exitLocked
	case errors.Is(err, state.ErrChainBroken):
		return exitUnverified
	case errors.Is(err, engine.ErrNeedsDecision), errors.Is(err, engine.ErrAborted), errors.Is(err, engine.ErrRunbookChanged):
		return exitNeedsPerson
	case errors.Is(err, engine.ErrInterrupted):
		return exitInterrupted
	}
	return exitFailed
}
