package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/steps"
)

// ResumeOptions are the operator's standing decisions for a resume.
type ResumeOptions struct {
	// AcceptChanged resumes even though the runbook or inventory changed.
	AcceptChanged bool
	// Redo re-runs these interrupted steps.
	Redo []string
	// Skip skips these interrupted steps, with SkipReason recorded.
	Skip       []string
	SkipReason string
	// Answers, when set, may change inputs: an input whose answer differs
	// from the recorded value changes if no completed step used it (recorded
	// with who and InputReason, which is then required), and the resume is
	// refused with ErrInputUsed naming the steps that used it otherwise.
	Answers     *runbooks.Answers
	InputReason string
}

// Resume continues a recorded run. cfg.Runbook and cfg.Inventory are the
// current files; a change since the run started is refused unless
// opts.AcceptChanged (recorded).
func Resume(ctx context.Context, cfg Config, runID string, opts ResumeOptions) (Outcome, error) {
	r, err := newRun(cfg)
	if err != nil {
		return Outcome{}, err
	}
	defer r.pool.Close()
	rec, err := cfg.Store.GetRun(ctx, runID)
	if err != nil {
		return Outcome{}, err
	}
	r.id = rec.ID
	if rec.Status.EndsRun() {
		// Its secrets were shredded when it ended: nothing could resume it.
		return Outcome{RunID: r.id, Status: rec.Status}, fmt.Errorf("%w: %s %s at %s", ErrRunFinished, rec.ID, rec.Status, rec.FinishedAt.Format(time.RFC3339))
	}
	changed := rec.RunbookSHA256 != cfg.Runbook.SHA256
	if cfg.Inventory != nil && rec.InventorySHA256 != "" && rec.InventorySHA256 != cfg.Inventory.SHA256 {
		changed = true
	}
	if changed && !opts.AcceptChanged {
		return Outcome{RunID: r.id, Status: rec.Status}, fmt.Errorf("%w\n%s\nresume with --accept-changed to go on with the new files (recorded)", ErrRunbookChanged, ChangeSummary(rec, cfg))
	}
	release, err := cfg.Store.Lock(ctx, r.id)
	if err != nil {
		return Outcome{RunID: r.id}, err
	}
	defer release()
	events, err := cfg.Store.Events(ctx, r.id)
	if err != nil {
		return Outcome{RunID: r.id}, err
	}
	r.opts = opts
	inputs, err := r.replayRecord(ctx, events)
	if err != nil {
		return Outcome{RunID: r.id}, err
	}
	// Inputs the answers change are checked before anything is recorded:
	// a refused change leaves the run as it was.
	changes, err := r.inputChanges(inputs, opts)
	if err != nil {
		return Outcome{RunID: r.id, Status: rec.Status}, err
	}
	r.scope = r.newScope(inputs)
	host, _ := os.Hostname()
	if err := r.record(ctx, state.EvRunResumed, "", "", 0, state.RunResumed{
		Host: host, PID: os.Getpid(), User: Operator(), AcceptChanged: changed && opts.AcceptChanged, RunbookSHA256: cfg.Runbook.SHA256,
	}); err != nil {
		return Outcome{RunID: r.id}, err
	}
	if err := r.applyInputChanges(ctx, changes, opts.InputReason); err != nil {
		return Outcome{RunID: r.id}, err
	}
	return r.walk(ctx, true)
}

// ChangeSummary describes how the current runbook differs from the recorded one.
func ChangeSummary(rec state.Run, cfg Config) string {
	var b strings.Builder
	if rec.RunbookSHA256 != cfg.Runbook.SHA256 {
		fmt.Fprintf(&b, "runbook %s: sha256 %.12s… recorded, %.12s… now\n", cfg.Runbook.File, rec.RunbookSHA256, cfg.Runbook.SHA256)
		old, err := runbooks.ParseRunbook(rec.RunbookPath, rec.RunbookSource)
		if err == nil {
			b.WriteString(StepDiff(old, cfg.Runbook))
		}
	}
	if cfg.Inventory != nil && rec.InventorySHA256 != cfg.Inventory.SHA256 {
		fmt.Fprintf(&b, "inventory %s: sha256 %.12s… recorded, %.12s… now\n", cfg.Inventory.File, rec.InventorySHA256, cfg.Inventory.SHA256)
	}
	return strings.TrimRight(b.String(), "\n")
}

// StepDiff lists steps added, removed and changed between two runbooks.
func StepDiff(old, cur *runbooks.Runbook) string {
	var b strings.Builder
	oldIDs := map[string]*runbooks.Step{}
	for i := range old.Steps {
		oldIDs[old.Steps[i].ID] = &old.Steps[i]
	}
	for i := range cur.Steps {
		s := &cur.Steps[i]
		o, ok := oldIDs[s.ID]
		switch {
		case !ok:
			fmt.Fprintf(&b, "  + step %s (%s)\n", s.ID, s.Run)
		case stepFingerprint(old, o) != stepFingerprint(cur, s):
			fmt.Fprintf(&b, "  ~ step %s changed\n", s.ID)
		}
		delete(oldIDs, s.ID)
	}
	for i := range old.Steps {
		if _, gone := oldIDs[old.Steps[i].ID]; gone {
			fmt.Fprintf(&b, "  - step %s (%s)\n", old.Steps[i].ID, old.Steps[i].Run)
		}
	}
	if b.Len() == 0 {
		b.WriteString("  (no step changed; other fields did)\n")
	}
	return b.String()
}

func stepFingerprint(rb *runbooks.Runbook, s *runbooks.Step) string {
	b, _ := json.Marshal(struct {
		Run, When, Check string
		On               []string
		With             map[string]any
		Danger           bool
		Outputs          []runbooks.Output
	}{s.Run, s.When, s.Check, s.On, s.With.Values, s.Danger, s.Outputs})
	return string(b)
}

// replayRecord rebuilds inputs and per-step history from recorded events.
func (r *run) replayRecord(ctx context.Context, events []state.Event) (map[string]runbooks.Value, error) {
	inputs := map[string]runbooks.Value{}
	execs := map[string]map[string]*state.Exec{} // step → target → last exec
	for _, ev := range events {
		switch ev.Type {
		case state.EvAnswer:
			var a state.Answer
			if err := ev.Decode(&a); err != nil {
				return nil, fmt.Errorf("event %d: %w", ev.Seq, err)
			}
			raw := a.Value
			if a.Secret {
				plain, err := r.cfg.Store.Unseal(ctx, r.id, raw)
				if err != nil {
					return nil, fmt.Errorf("unseal input %s: %w", a.Name, err)
				}
				raw = plain
			}
			v, err := decodeRecorded(raw)
			if err != nil {
				return nil, fmt.Errorf("input %s: %w", a.Name, err)
			}
			if list, ok := v.([]any); ok {
				ss := make([]string, len(list))
				for i, x := range list {
					ss[i] = fmt.Sprint(x)
				}
				v = ss
			}

			if a.Secret {
				if s, ok := v.(string); ok {
					r.mask.add(s)
				}
			}
			inputs[a.Name] = runbooks.Value{V: v, Secret: a.Secret}
		case state.EvStepStarted:
			if execs[ev.StepID] == nil {
				execs[ev.StepID] = map[string]*state.Exec{}
			}
			execs[ev.StepID][ev.Target] = &state.Exec{StepID: ev.StepID, Target: ev.Target, Attempt: ev.Attempt, Status: state.StatusRunning, StartedAt: ev.Time, StartSeq: ev.Seq}
		case state.EvStepFinished:
			var f state.StepFinished
			if err := ev.Decode(&f); err != nil {
				return nil, fmt.Errorf("event %d: %w", ev.Seq, err)
			}
			ex := execs[ev.StepID][ev.Target]
			if ex == nil || ex.Attempt != ev.Attempt {
				return nil, fmt.Errorf("event %d: step.finished without its step.started", ev.Seq)
			}
			ex.Status, ex.ExitCode, ex.Error, ex.Outputs, ex.SecretOutputs, ex.EndSeq = f.Status, f.ExitCode, f.Error, f.Outputs, f.SecretOutputs, ev.Seq
		case state.EvStepDecision:
			var d state.StepDecision
			if err := ev.Decode(&d); err != nil {
				return nil, fmt.Errorf("event %d: %w", ev.Seq, err)
			}
			p := r.priorFor(ev.StepID)
			switch d.Decision {
			case state.DecisionSkip:
				if ev.Attempt == 0 {
					p.skipped, p.reason = true, d.Reason
					p.guard = d.By == "engine" && ev.Target == "" && strings.HasPrefix(d.Reason, "guard ")
				} else if ex := execs[ev.StepID][ev.Target]; ex != nil {
					ex.Status = state.StatusSkipped
				}
			case "continue":
				p.skipped, p.reason = true, "continued after failure"
			}
		}
	}
	for stepID, byTarget := range execs {
		p := r.priorFor(stepID)
		p.byTarget = byTarget
	}
	return inputs, nil
}

func (r *run) priorFor(stepID string) *priorStep {
	p := r.prior[stepID]
	if p == nil {
		p = &priorStep{byTarget: map[string]*state.Exec{}}
		r.prior[stepID] = p
	}
	return p
}

func (r *run) restoreOutputs(ctx context.Context, ex *state.Exec) (map[string]runbooks.Value, error) {
	outs := map[string]runbooks.Value{}
	for k, v := range ex.Outputs {
		if slices.Contains(ex.SecretOutputs, k) {
			plain, err := r.cfg.Store.Unseal(ctx, r.id, v)
			if err != nil {
				return nil, fmt.Errorf("unseal output %s.%s: %w", ex.StepID, k, err)
			}
			r.mask.add(plain)
			outs[k] = runbooks.Value{V: plain, Secret: true}
			continue
		}
		outs[k] = runbooks.Value{V: v}
	}
	return outs, nil
}

// decideInterrupted settles the targets whose last execution was cut short.
// It returns the targets still to run (nil when none).
func (r *run) decideInterrupted(ctx context.Context, s *runbooks.Step, kind steps.Kind, prior *priorStep, pending []string, vals *runbooks.StepValues) ([]string, error) {
	var still []string
	for _, t := range pending {
		ex := prior.byTarget[t]
		if ex == nil || (ex.Status != state.StatusRunning && ex.Status != state.StatusInterrupted) {
			still = append(still, t)
			continue
		}
		where := orLocal(t)
		if ex.Status == state.StatusRunning {
			if err := r.record(ctx, state.EvStepDecision, s.ID, t, ex.Attempt, state.StepDecision{
				Decision: state.DecisionInterrupted, Reason: "found started but never finished (the runner stopped)", By: "engine",
			}); err != nil {
				return nil, err
			}
		}
		switch {
		case s.Check != "" && t != "":
			done, outs, err := r.runCheck(ctx, s, kind, t, ex.Attempt)
			if err != nil {
				return nil, err
			}
			if done {
				vals.Targets[t] = outs
				continue
			}
			still = append(still, t)
		case kind.Info().Idempotent:
			r.emit(Notice{StepID: s.ID, Target: t, Text: fmt.Sprintf("%s was interrupted on %s; %s is idempotent, running it again", s.ID, where, s.Run), Time: time.Now()})
			if err := r.record(ctx, state.EvStepDecision, s.ID, t, ex.Attempt, state.StepDecision{Decision: state.DecisionRedo, Reason: "idempotent kind " + s.Run, By: "engine"}); err != nil {
				return nil, err
			}
			still = append(still, t)
		case slices.Contains(r.opts.Redo, s.ID):
			if err := r.record(ctx, state.EvStepDecision, s.ID, t, ex.Attempt, state.StepDecision{Decision: state.DecisionRedo, Reason: "--redo " + s.ID, By: Operator()}); err != nil {
				return nil, err
			}
			still = append(still, t)
		case slices.Contains(r.opts.Skip, s.ID):
			if err := r.record(ctx, state.EvStepDecision, s.ID, t, ex.Attempt, state.StepDecision{Decision: state.DecisionSkip, Reason: r.opts.SkipReason, By: Operator()}); err != nil {
				return nil, err
			}
			vals.Targets[t] = map[string]runbooks.Value{}
		default:
			var d steps.Decision
			prompt := fmt.Sprintf("step %s was interrupted on %s and has no check: — did it take effect? redo, skip or abort", s.ID, where)
			err := r.waitOperator(ctx, state.WaitDecision, s.ID, prompt, func() (string, string, error) {
				var err error
				d, err = r.cfg.Operator.Decide(ctx, steps.DecideRequest{StepID: s.ID, Target: t, Attempt: ex.Attempt, Interrupted: true,
					Options: []steps.DecisionKind{steps.DecisionRedo, steps.DecisionSkip, steps.DecisionAbort}})
				return string(d.Kind), d.By, err
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("%w at the decision for %s", ErrInterrupted, s.ID)
				}
				return nil, fmt.Errorf("%w: step %s was interrupted on %s and has no check: to tell whether it took effect; "+
					"look at the node, then resume with --redo %s (run it again) or --skip %s --reason \"...\" (it took effect)",
					ErrNeedsDecision, s.ID, where, s.ID, s.ID)
			}
			rec := state.StepDecision{Decision: string(d.Kind), Reason: d.Reason, By: d.By}
			if err := r.record(ctx, state.EvStepDecision, s.ID, t, ex.Attempt, rec); err != nil {
				return nil, err
			}
			switch d.Kind {
			case steps.DecisionRedo, steps.DecisionRetry:
				still = append(still, t)
			case steps.DecisionSkip:
				vals.Targets[t] = map[string]runbooks.Value{}
			default:
				return nil, fmt.Errorf("%w at step %s", ErrAborted, s.ID)
			}
		}
	}
	return still, nil
}

// runCheck runs a step's check: on a target as a recorded execution of its
// own (kind "check"); exit 0 with every declared output printed means the
// interrupted execution took effect, and the check's outputs stand for it.
func (r *run) runCheck(ctx context.Context, s *runbooks.Step, kind steps.Kind, target string, attempt int) (bool, map[string]runbooks.Value, error) {
	x, err := r.execFor(s, target, attempt+1)
	if err != nil {
		return false, nil, err
	}
	line, _, err := runbooks.RenderString(s.Check, x.Scope)
	if err != nil {
		return false, nil, fmt.Errorf("step %s: check: %w", s.ID, err)
	}
	outs, done, err := r.checkpointed(ctx, s, kind, x, "check", "check: "+line, func(ctx context.Context) (steps.Result, error) {
		return steps.RunCommand(ctx, x, line, nil)
	})
	if err != nil {
		return false, nil, err
	}
	decision, reason := state.DecisionCheckNotDone, "check did not pass: the step will run again"
	if done {
		decision, reason = state.DecisionCheckDone, "check exited 0: the step already took effect"
	}
	r.emit(Notice{StepID: s.ID, Target: target, Text: reason, Time: time.Now()})
	if err := r.record(ctx, state.EvStepDecision, s.ID, target, attempt+1, state.StepDecision{Decision: decision, Reason: reason, By: "check"}); err != nil {
		return false, nil, err
	}
	return done, outs, nil
}
