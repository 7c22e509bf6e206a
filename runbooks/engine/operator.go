package engine

import (
	"context"
	"fmt"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/steps"
)

// timedOperator is the operator step kinds see: every question goes through
// waitOperator, so the time a person takes is measured and recorded apart
// from machine time, and answers land in the record (secrets masked).
type timedOperator struct {
	r *run
}

var _ steps.Operator = timedOperator{}

// Confirm implements steps.Operator.
func (o timedOperator) Confirm(ctx context.Context, req steps.ConfirmRequest) (steps.ConfirmResponse, error) {
	var resp steps.ConfirmResponse
	prompt := req.Message
	if prompt == "" {
		prompt = req.Title
	}
	err := o.r.waitOperator(ctx, state.WaitConfirm, req.StepID, prompt, func() (string, string, error) {
		var err error
		resp, err = o.r.cfg.Operator.Confirm(ctx, req)
		answer := "refused"
		if resp.OK {
			answer = "confirmed"
		}
		if resp.Typed != "" {
			answer += fmt.Sprintf(" (typed %q)", resp.Typed)
		}
		return answer, resp.By, err
	})
	return resp, err
}

// Ask implements steps.Operator.
func (o timedOperator) Ask(ctx context.Context, req steps.AskRequest) (string, error) {
	var v string
	prompt := req.Input.Prompt
	err := o.r.waitOperator(ctx, state.WaitInput, req.StepID, prompt, func() (string, string, error) {
		var err error
		v, err = o.r.cfg.Operator.Ask(ctx, req)
		if req.Input.Type == runbooks.InputSecret {
			o.r.mask.add(v)
			return Mask, o.r.actor.String(), err
		}
		return v, o.r.actor.String(), err
	})
	return v, err
}

// Decide implements steps.Operator.
func (o timedOperator) Decide(ctx context.Context, req steps.DecideRequest) (steps.Decision, error) {
	var d steps.Decision
	err := o.r.waitOperator(ctx, state.WaitDecision, req.StepID, fmt.Sprintf("decide on %s", req.StepID), func() (string, string, error) {
		var err error
		d, err = o.r.cfg.Operator.Decide(ctx, req)
		return string(d.Kind), d.By, err
	})
	return d, err
}
