package tui

import "github.com/drbook/drbook/runbooks/engine"

// ErrInterrupted is returned by Run when the operator pressed ctrl+c before
// any run started (in the picker, the list of unfinished runs or a form):
// nothing ran. It matches engine.ErrInterrupted, so the command exits 130.
var ErrInterrupted error = interruptedError{}

type interruptedError struct{}

func (interruptedError) Error() string {
	return "interrupted (ctrl+c) before a run started: nothing ran"
}

// Is makes errors.Is(ErrInterrupted, engine.ErrInterrupted) hold.
func (interruptedError) Is(target error) bool { return target == engine.ErrInterrupted }
