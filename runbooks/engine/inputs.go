package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// Errors of a resume that changes inputs.
var (
	// ErrInputUsed is wrapped when a resume's answers change an input that
	// a completed step already used: the run cannot take another value.
	ErrInputUsed = errors.New("input already used by a completed step")
	// ErrReasonNeeded is wrapped when a resume changes inputs without saying
	// why (--reason).
	ErrReasonNeeded = errors.New("changing inputs needs a reason")
)

// inputChange is one input a resume changes.
type inputChange struct {
	name     string
	old, new runbooks.Value
	had      bool
}

// inputChanges compares the resume's answers with the recorded inputs. An
// input whose answer differs may change only if no completed step used it;
// every refused input is named with the steps that used it. Secrets are
// compared by hash and never shown.
func (r *run) inputChanges(recorded map[string]runbooks.Value, opts ResumeOptions) ([]inputChange, error) {
	if opts.Answers == nil || len(opts.Answers.Inputs) == 0 {
		return nil, nil
	}
	// The answers are checked together with the recorded values of the
	// inputs they leave out, so every rule between inputs holds for the set
	// the run goes on with.
	merged := &runbooks.Answers{File: opts.Answers.File, Inputs: map[string]runbooks.Answer{}, Steps: opts.Answers.Steps}
	for name, a := range opts.Answers.Inputs {
		merged.Inputs[name] = a
	}
	for name, v := range recorded {
		if _, ok := merged.Inputs[name]; !ok && r.cfg.Runbook.Input(name) != nil {
			merged.Inputs[name] = runbooks.Answer{Value: v.V}
		}
	}
	given, _, err := runbooks.ResolveInputs(r.cfg.Runbook, r.cfg.Inventory, merged, false)
	if err != nil {
		return nil, err
	}
	var changes []inputChange
	for _, in := range r.cfg.Runbook.Inputs {
		if _, asked := opts.Answers.Inputs[in.Name]; !asked {
			continue
		}
		nv, ok := given[in.Name]
		if !ok {
			continue
		}
		ov, had := recorded[in.Name]
		if had && sameValue(ov, nv) {
			continue
		}
		nv.Secret = nv.Secret || ov.Secret
		changes = append(changes, inputChange{name: in.Name, old: ov, new: nv, had: had})
	}
	if len(changes) == 0 {
		return nil, nil
	}
	users := r.inputUsers()
	var refused []string
	for _, c := range changes {
		if u := users[c.name]; len(u) > 0 {
			refused = append(refused, fmt.Sprintf("input %q was used by %s", c.name, strings.Join(u, ", ")))
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: %s; it keeps its recorded value in this run (start a new run to use another value)",
			ErrInputUsed, strings.Join(refused, "; "))
	}
	if strings.TrimSpace(opts.InputReason) == "" {
		names := make([]string, len(changes))
		for i, c := range changes {
			names[i] = c.name
		}
		return nil, fmt.Errorf("%w: the answers change %s, which no completed step used; say why with --reason \"...\" (recorded)",
			ErrReasonNeeded, strings.Join(names, ", "))
	}
	return changes, nil
}

// applyInputChanges records each change (who, why; a secret resealed) and
// puts the new value in the run's scope.
func (r *run) applyInputChanges(ctx context.Context, changes []inputChange, reason string) error {
	who := r.actor.String()
	for _, c := range changes {
		if err := r.recordAnswerAs(ctx, c.name, c.new, state.Answer{Changed: true, By: who, Reason: reason, Actor: r.person()}); err != nil {
			return err
		}
		var text string
		switch {
		case c.new.Secret:
			text = fmt.Sprintf("input %s changed by %s (secret, compared by hash): %s", c.name, who, reason)
		case c.had:
			text = fmt.Sprintf("input %s changed by %s from %s to %s: %s", c.name, who, showValue(c.old), showValue(c.new), reason)
		default:
			text = fmt.Sprintf("input %s set by %s to %s: %s", c.name, who, showValue(c.new), reason)
		}
		r.emit(runlog.Notice{Text: r.mask.mask(text), Time: time.Now()})
	}
	return nil
}

func showValue(v runbooks.Value) string {
	b, err := json.Marshal(v.V)
	if err != nil {
		return fmt.Sprint(v.V)
	}
	return string(b)
}

// sameValue compares two input values by their JSON form; secrets by the
// hash of it, so the comparison never holds a plain secret longer than the
// values themselves.
func sameValue(a, b runbooks.Value) bool {
	ja, errA := json.Marshal(a.V)
	jb, errB := json.Marshal(b.V)
	if errA != nil || errB != nil {
		return false
	}
	if a.Secret || b.Secret {
		return sha256.Sum256(ja) == sha256.Sum256(jb)
	}
	return string(ja) == string(jb)
}

// inputUsers maps each input to the steps whose recorded executions used it:
// an execution that succeeded or was skipped as done, one interrupted (it
// may have taken effect) unless the resume re-runs it (--redo), and a step
// skipped by its guard (its when: read the input). Failed executions did not
// take effect and run again with the new value.
func (r *run) inputUsers() map[string][]string {
	users := map[string][]string{}
	for i := range r.cfg.Runbook.Steps {
		s := &r.cfg.Runbook.Steps[i]
		p := r.prior[s.ID]
		if p == nil {
			continue
		}
		var refs map[string]bool
		var how string
		switch {
		case p.skipped && p.guard:
			refs, how = guardInputRefs(s.When), "its guard when:"
		case p.skipped:
			refs, how = stepInputRefs(s), "skipped"
		default:
			var states []string
			for _, ex := range p.byTarget {
				switch ex.Status {
				case state.StatusSucceeded:
					states = append(states, "succeeded")
				case state.StatusSkipped:
					states = append(states, "skipped as done")
				case state.StatusRunning, state.StatusInterrupted:
					if !slices.Contains(r.opts.Redo, s.ID) {
						states = append(states, "interrupted, may have taken effect; --redo "+s.ID+" runs it again")
					}
				}
			}
			if len(states) == 0 {
				continue
			}
			sort.Strings(states)
			refs, how = stepInputRefs(s), strings.Join(slices.Compact(states), ", ")
		}
		for name := range refs {
			users[name] = append(users[name], fmt.Sprintf("step %s (%s)", s.ID, how))
		}
	}
	return users
}

// displayOnly names the Step fields that never change what a step does.
var displayOnly = map[string]bool{"ID": true, "Run": true, "Title": true, "Description": true}

// stepInputRefs returns the inputs a step's templates read: every string
// field of the step (on:, when:, with:, check:, and any field added later)
// except its id, kind, title and description.
func stepInputRefs(s *runbooks.Step) map[string]bool {
	refs := map[string]bool{}
	var walk func(v reflect.Value, skip bool)
	walk = func(v reflect.Value, skip bool) {
		switch v.Kind() {
		case reflect.String:
			if !skip {
				addInputRefs(refs, v.String())
			}
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem(), false)
			}
		case reflect.Struct:
			t := v.Type()
			for i := 0; i < t.NumField(); i++ {
				if !t.Field(i).IsExported() {
					continue
				}
				name := t.Field(i).Name
				walk(v.Field(i), t == reflect.TypeOf(runbooks.Step{}) && displayOnly[name])
			}
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i), false)
			}
		case reflect.Map:
			iter := v.MapRange()
			for iter.Next() {
				walk(iter.Value(), false)
			}
		}
	}
	walk(reflect.ValueOf(*s), false)
	for name := range guardInputRefs(s.When) {
		refs[name] = true
	}
	return refs
}

// guardInputRefs reads a when: guard, written as a template or as a bare
// expression.
func guardInputRefs(when string) map[string]bool {
	refs := map[string]bool{}
	if strings.TrimSpace(when) == "" {
		return refs
	}
	addInputRefs(refs, when)
	if !strings.Contains(when, "{{") {
		addInputRefs(refs, "{{ "+when+" }}")
	}
	return refs
}

func addInputRefs(refs map[string]bool, text string) {
	if !strings.Contains(text, "{{") {
		return
	}
	t, err := runbooks.ParseTemplate(text)
	if err != nil {
		return
	}
	for _, ref := range t.Refs() {
		if len(ref.Path) >= 2 && ref.Path[0] == "inputs" {
			refs[ref.Path[1]] = true
		}
	}
}

// decodeRecorded decodes an answer kept in the record. Integers come back
// exactly as int64 (never through float64, which loses digits past 2^53);
// a number that is not an int64 keeps its text.
func decodeRecorded(raw string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return i, nil
		}
		return n.String(), nil
	}
	return v, nil
}
