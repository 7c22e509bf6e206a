package engine

import (
	"context"
	"fmt"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
)

// Headless answers operator requests without a person: confirmations only
// with Yes (the --yes flag), input steps only from the answers file, and no
// decisions at all — a headless run stops and says what to decide.
type Headless struct {
	Yes     bool
	Answers *runbooks.Answers
}

var _ steps.Operator = (*Headless)(nil)

// Confirm implements steps.Operator.
func (h *Headless) Confirm(_ context.Context, req steps.ConfirmRequest) (steps.ConfirmResponse, error) {
	if !h.Yes {
		return steps.ConfirmResponse{}, fmt.Errorf("%w: step %s needs a confirmation (pass --yes to confirm headless)", steps.ErrNoOperator, req.StepID)
	}
	return steps.ConfirmResponse{OK: true, Typed: req.Expect, By: Operator() + " (--yes)"}, nil
}

// Ask implements steps.Operator.
func (h *Headless) Ask(_ context.Context, req steps.AskRequest) (string, error) {
	if h.Answers != nil {
		if a, ok := h.Answers.Steps[req.StepID]; ok {
			v, err := a.Resolve() // {env: NAME} and {file: PATH} are read now
			if err != nil {
				return "", fmt.Errorf("input step %s: answer in %s: %w", req.StepID, h.Answers.File, err)
			}
			return fmt.Sprint(v), nil
		}
	}
	return "", fmt.Errorf("%w: input step %s has no answer (add it under steps.%s in the answers file)", steps.ErrNoOperator, req.StepID, req.StepID)
}

// Decide implements steps.Operator.
func (h *Headless) Decide(_ context.Context, req steps.DecideRequest) (steps.Decision, error) {
	return steps.Decision{}, fmt.Errorf("%w: step %s", steps.ErrNoOperator, req.StepID)
}
