package engine

import (
	"fmt"
	"strings"

	"github.com/drbook/drbook/runbooks"
)

// PlannedStep is one step as far as it can be resolved before running.
type PlannedStep struct {
	ID, Title, Kind string
	Danger          bool
	// Targets are node names, or the unresolved template of `on:`.
	Targets []string
	// Params rendered where possible; a value depending on outputs of
	// earlier steps stays a template.
	Params map[string]any
	When   string
	Serial int
	// Confirm is the word the operator of a danger step types (its
	// confirm.word rendered from the inputs, else the target's name, or the
	// step id for several targets); ConfirmReason says why.
	Confirm       string `json:",omitempty"`
	ConfirmReason string `json:",omitempty"`
	// Timeout limits each attempt on each target: the step's timeout:, else
	// its kind's default ("none" for no limit).
	Timeout string
	Note    string
}

// MakePlan resolves what it can of every step from inputs and inventory;
// cat (may be nil) gives each kind's default time limit.
func MakePlan(rb *runbooks.Runbook, inv *runbooks.Inventory, inputs map[string]runbooks.Value, cat runbooks.KindCatalog) []PlannedStep {
	sc := &runbooks.RunScope{RunID: "(plan)", Runbook: rb.Name, Mode: "plan", Inputs: inputs, Steps: map[string]*runbooks.StepValues{}, Inventory: inv}
	var out []PlannedStep
	for i := range rb.Steps {
		s := &rb.Steps[i]
		p := PlannedStep{ID: s.ID, Title: s.Title, Kind: s.Run, Danger: s.Danger, When: s.When, Serial: s.Serial}
		if s.ForEach != "" {
			// One execution per item: the items stand where targets do.
			if items, err := runbooks.ForEachItems(s.ForEach, sc); err == nil {
				p.Targets = items
				p.Note = "for_each: one execution per item"
			} else {
				p.Targets = []string{s.ForEach}
				p.Note = "for_each: items known at run time"
			}
		} else if len(s.On) > 0 {
			if ts, err := runbooks.ResolveTargets(s.On, sc); err == nil {
				p.Targets = ts
			} else {
				p.Targets = []string(s.On)
				p.Note = "targets resolved at run time"
			}
		}
		var info runbooks.KindInfo
		if cat != nil {
			info, _ = cat.Kind(s.Run)
		}
		p.Timeout = StepTimeout(s, info).String()
		if s.Danger {
			p.Confirm, p.ConfirmReason = planConfirm(s, p.Targets, sc)
		}
		p.Params = map[string]any{}
		for k, v := range s.With.Values {
			p.Params[k] = planValue(v, sc)
		}
		out = append(out, p)
	}
	return out
}

func planValue(v any, sc runbooks.Scope) any {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "{{") {
			return x
		}
		t, err := runbooks.ParseTemplate(x)
		if err != nil {
			return x
		}
		val, err := t.Eval(sc)
		if err != nil {
			return x
		}
		if val.Secret {
			return Mask
		}
		return val.V
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = planValue(e, sc)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = planValue(e, sc)
		}
		return l
	}
	return v
}

// planConfirm renders a danger step's confirmation word and reason as far
// as the inputs allow; what depends on earlier steps stays a template.
func planConfirm(s *runbooks.Step, targets []string, sc runbooks.Scope) (word, reason string) {
	if s.Confirm == nil {
		if len(targets) == 1 && !strings.Contains(targets[0], "{{") {
			return targets[0], ""
		}
		return s.ID, ""
	}
	str := func(v any) string {
		if x, ok := v.(string); ok {
			return x
		}
		return fmt.Sprint(v)
	}
	return str(planValue(s.Confirm.Word, sc)), str(planValue(s.Confirm.Reason, sc))
}
