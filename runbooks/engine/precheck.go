package engine

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/drbook/drbook/runbooks"
)

// ErrPrecheck is wrapped when a guard or template that depends only on the
// inputs fails before the first step runs: nothing was run.
var ErrPrecheck = errors.New("checked before the first step")

// precheck evaluates, before the first step runs, every guard and template
// that reads only the inputs, the inventory and the run (not what a step
// produces): the guards, the targets, the parameters (per target when the
// targets are known) and the confirmation word. A bad value then stops the
// run before anything ran anywhere, never after a danger step. Steps the
// record already holds (on resume) are left alone, and so is a step whose
// guard is false or reads what a step produces (whether it runs is known
// only then).
func (r *run) precheck() error {
	var errs []error
	for i := range r.cfg.Runbook.Steps {
		s := &r.cfg.Runbook.Steps[i]
		if r.prior[s.ID] != nil {
			continue
		}
		if err := r.precheckStep(s); err != nil {
			errs = append(errs, fmt.Errorf("step %s: %w", s.ID, err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w, nothing was run: %w", ErrPrecheck, errors.Join(errs...))
}

func (r *run) precheckStep(s *runbooks.Step) error {
	roots := runbooks.StaticRoots
	if s.When != "" {
		t, err := runbooks.ParseGuard(s.When)
		if err != nil {
			return fmt.Errorf("when: %w", err)
		}
		if !t.ReadsOnly(roots...) {
			return nil // whether the step runs is known only then
		}
		ok, err := runbooks.EvalGuard(s.When, r.scope)
		if err != nil {
			return fmt.Errorf("when: %w", err)
		}
		if !ok {
			return nil // skipped: its other templates need not hold
		}
	}
	var targets []string
	kind, known := r.cfg.Registry.Get(s.Run)
	if s.ForEach != "" {
		// The items, and where each runs, when the inputs fix them; the
		// parameters are checked when each item runs.
		if known && runbooks.TemplateReadsOnly(s.ForEach, roots...) && onReadsOnly(s.On, append([]string{"item"}, roots...)) {
			if _, err := r.forEachUnits(s, kind.Info()); err != nil {
				return err
			}
		}
	} else if known && kind.Info().Targets != runbooks.TargetsNone && len(s.On) > 0 && onReadsOnly(s.On, roots) {
		var err error
		if targets, err = runbooks.ResolveTargets(s.On, r.scope); err != nil {
			return err
		}
		if len(targets) == 0 {
			return errors.New("on: resolved to no node")
		}
	}
	if s.Danger && s.Confirm != nil && runbooks.TemplateReadsOnly(s.Confirm.Word, roots...) && runbooks.TemplateReadsOnly(s.Confirm.Reason, roots...) {
		if _, _, err := r.confirmWord(s, nil); err != nil {
			return err
		}
	}
	if err := runbooks.PrecheckParams(s.With, r.scope, roots...); err != nil {
		return err
	}
	withTarget := append([]string{"target"}, roots...)
	for _, t := range targets {
		n := r.cfg.Inventory.Node(t)
		if n == nil {
			continue
		}
		if err := runbooks.PrecheckParams(s.With, r.scope.WithTarget(n), withTarget...); err != nil {
			return fmt.Errorf("on %s: %w", t, err)
		}
	}
	return nil
}

func onReadsOnly(on runbooks.StringList, roots []string) bool {
	for _, o := range on {
		if !runbooks.TemplateReadsOnly(o, roots...) {
			return false
		}
	}
	return true
}

// defaultConfirmWord is the word of a danger step without confirm.word:
// its one target's name, else (several targets, or targets not known yet)
// the step's id.
func defaultConfirmWord(s *runbooks.Step, targets []string) string {
	if len(targets) == 1 && !strings.Contains(targets[0], "{{") {
		return targets[0]
	}
	return s.ID
}

// confirmWord returns what the operator of a danger step types, and why. A
// step's confirm.word is rendered once for the step (the same word for every
// target); without confirm: the word is the target's name for one target,
// and the step's id for several (one word, whatever their number).
func (r *run) confirmWord(s *runbooks.Step, targets []string) (word, reason string, err error) {
	if s.Confirm == nil {
		ts := nonEmpty(targets)
		word := defaultConfirmWord(s, ts)
		if len(ts) == 1 {
			return word, "", nil
		}
		return word, fmt.Sprintf("one word for all %d targets (%s): the step's id", len(ts), strings.Join(ts, ", ")), nil
	}
	word, secret, err := runbooks.RenderString(s.Confirm.Word, r.scope)
	if err != nil {
		return "", "", fmt.Errorf("confirm.word: %w", err)
	}
	if secret {
		return "", "", errors.New("confirm.word derives from a secret; it would be shown and typed")
	}
	word = strings.TrimSpace(word)
	if word == "" || strings.ContainsFunc(word, unicode.IsSpace) {
		return "", "", fmt.Errorf("confirm.word is %q: not one word to type", word)
	}
	if s.Confirm.Reason != "" {
		if reason, _, err = runbooks.RenderString(s.Confirm.Reason, r.scope); err != nil {
			return "", "", fmt.Errorf("confirm.reason: %w", err)
		}
	}
	return word, r.mask.mask(reason), nil
}
