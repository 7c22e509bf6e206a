package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
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
	// SetOutputs gives the outputs of skipped steps: step → output → value
	// (--set-output STEP.KEY=VALUE). A step skipped with outputs that later
	// steps use needs them all; they are recorded with the skip decision
	// (who and SkipReason), a secret output's value sealed.
	SetOutputs map[string]map[string]string
	// Answers, when set, may change inputs: an input whose answer differs
	// from the recorded value changes if no completed step used it (recorded
	// with who and InputReason, which is then required), and the resume is
	// refused with ErrInputUsed naming the steps that used it otherwise.
	Answers     *runbooks.Answers
	InputReason string
}

// Resume continues a recorded run. cfg.Runbook and cfg.Inventory are the
// files to go on with (normally loaded from the record, see state.Files); a
// difference from the ones the record holds is refused unless
// opts.AcceptChanged, and then recorded, new files included.
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
	r.createdAt = rec.CreatedAt
	if rec.Status.EndsRun() {
		// Its secrets were shredded when it ended: nothing could resume it.
		return Outcome{RunID: r.id, Status: rec.Status}, fmt.Errorf("%w: %s %s at %s", ErrRunFinished, rec.ID, rec.Status, rec.FinishedAt.Format(time.RFC3339))
	}
	before, err := cfg.Store.Events(ctx, r.id)
	if err != nil {
		return Outcome{RunID: r.id}, err
	}
	files, err := recordedFiles(rec, before)
	if err != nil {
		return Outcome{RunID: r.id}, err
	}
	rbChanged, invChanged := files.RunbookSHA256 != cfg.Runbook.SHA256, false
	if cfg.Inventory != nil && files.InventorySHA256 != "" && files.InventorySHA256 != cfg.Inventory.SHA256 {
		invChanged = true
	}
	changed := rbChanged || invChanged
	if changed && !opts.AcceptChanged {
		return Outcome{RunID: r.id, Status: rec.Status}, fmt.Errorf("%w\n%s\nresume with --accept-changed to go on with the new files (recorded)", ErrRunbookChanged, changeSummary(files, cfg))
	}
	release, err := cfg.Store.Lock(ctx, r.id)
	if err != nil {
		return Outcome{RunID: r.id}, err
	}
	defer release()
	// Resume acts on the record: a record whose chain does not verify is
	// not acted on (checked under the lock, right before it is read).
	if _, err := cfg.Store.Verify(ctx, r.id); err != nil {
		return Outcome{RunID: r.id, Status: rec.Status}, fmt.Errorf("resume of %s refused: %w", r.id, err)
	}
	events, err := cfg.Store.Events(ctx, r.id)
	if err != nil {
		return Outcome{RunID: r.id}, err
	}
	r.opts = opts
	r.rto.recorded = rtoCrossedIn(events)
	inputs, err := r.replayRecord(ctx, events)
	if err != nil {
		return Outcome{RunID: r.id}, err
	}
	// Observers fold the whole record, what came before the resume too.
	for _, ev := range events {
		r.emit(runlog.Recorded{Event: ev, Prior: true})
	}
	if err := r.checkResumeOptions(); err != nil {
		return Outcome{RunID: r.id, Status: rec.Status}, err
	}
	// A step that needs approval must be able to get it: checked before
	// anything is recorded.
	if err := r.approvalPrecheck(); err != nil {
		return Outcome{RunID: r.id, Status: rec.Status}, err
	}
	// Inputs the answers change are checked before anything is recorded:
	// a refused change leaves the run as it was.
	changes, err := r.inputChanges(inputs, opts)
	if err != nil {
		return Outcome{RunID: r.id, Status: rec.Status}, err
	}
	r.scope = r.newScope(inputs)
	host, _ := os.Hostname()
	resumed := state.RunResumed{
		Host: host, PID: os.Getpid(), User: r.actor.User, Actor: r.person(), AcceptChanged: changed && opts.AcceptChanged, RunbookSHA256: cfg.Runbook.SHA256,
	}
	if cfg.Inventory != nil {
		resumed.InventorySHA256 = cfg.Inventory.SHA256
	}
	if changed {
		// The record holds what runs from now on.
		resumed.WorkDir, _ = os.Getwd()
		if rbChanged {
			resumed.Runbook = state.NewRecordedFile(cfg.Runbook.File, cfg.Runbook.Source)
		}
		if invChanged {
			resumed.Inventory = state.NewRecordedFile(cfg.Inventory.File, cfg.Inventory.Source)
		}
		r.emit(runlog.Notice{Text: "going on with changed files (--accept-changed, recorded):\n" + changeSummary(files, cfg), Time: time.Now()})
	}
	r.headSeq, r.headHash = events[len(events)-1].Seq, events[len(events)-1].Hash
	// The budget recorded at creation (a drill's override included) is the
	// one a resume counts against.
	if b := recordedRTO(events); b != nil {
		r.cfg.RTO, r.cfg.RTOSince = time.Duration(b.BudgetMS)*time.Millisecond, b.Since
	}
	r.bindNotify()
	defer r.flushNotify(ctx)
	if err := r.record(ctx, state.EvRunResumed, "", "", 0, resumed); err != nil {
		return Outcome{RunID: r.id}, err
	}
	if err := r.recordHandover(ctx, events); err != nil {
		return Outcome{RunID: r.id}, err
	}
	if err := r.applyInputChanges(ctx, changes, opts.InputReason); err != nil {
		return Outcome{RunID: r.id}, err
	}
	if err := r.fillSkippedOutputs(ctx); err != nil {
		return Outcome{RunID: r.id}, err
	}
	return r.walk(ctx)
}

// RecordedFiles returns what the record says the run runs (see
// state.Files); for records made before the files were kept in the chain,
// the run row's runbook source when it matches the recorded digest.
func RecordedFiles(rec state.Run, events []state.Event) (state.RunFiles, error) {
	return recordedFiles(rec, events)
}

func recordedFiles(rec state.Run, events []state.Event) (state.RunFiles, error) {
	files, err := state.Files(events)
	if err != nil {
		return files, err
	}
	if files.RunbookSHA256 == "" {
		files.RunbookSHA256, files.InventorySHA256 = rec.RunbookSHA256, rec.InventorySHA256
	}
	if files.Runbook == nil && rec.RunbookSource != nil && files.RunbookSHA256 == rec.RunbookSHA256 {
		files.Runbook = state.NewRecordedFile(rec.RunbookPath, rec.RunbookSource)
	}
	if files.Inventory == nil && rec.InventorySource != nil && files.InventorySHA256 == rec.InventorySHA256 {
		files.Inventory = state.NewRecordedFile(rec.InventoryPath, rec.InventorySource)
	}
	return files, nil
}

// ChangeSummary describes how the current runbook and inventory differ from
// those the run was created with.
func ChangeSummary(rec state.Run, cfg Config) string {
	return changeSummary(state.RunFiles{
		Runbook:       state.NewRecordedFile(rec.RunbookPath, rec.RunbookSource),
		RunbookSHA256: rec.RunbookSHA256, InventorySHA256: rec.InventorySHA256,
	}, cfg)
}

func changeSummary(files state.RunFiles, cfg Config) string {
	var b strings.Builder
	if files.RunbookSHA256 != cfg.Runbook.SHA256 {
		fmt.Fprintf(&b, "runbook %s: sha256 %.12s… recorded, %.12s… now\n", cfg.Runbook.File, files.RunbookSHA256, cfg.Runbook.SHA256)
		if files.Runbook != nil {
			if old, err := runbooks.ParseRunbook(files.Runbook.Path, files.Runbook.Bytes()); err == nil {
				b.WriteString(StepDiff(old, cfg.Runbook))
			}
		}
	}
	if cfg.Inventory != nil && files.InventorySHA256 != "" && files.InventorySHA256 != cfg.Inventory.SHA256 {
		fmt.Fprintf(&b, "inventory %s: sha256 %.12s… recorded, %.12s… now\n", cfg.Inventory.File, files.InventorySHA256, cfg.Inventory.SHA256)
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

// replayRecord rebuilds inputs and per-step history from recorded events,
// folded by the one reducer of a record (runlog.Fold).
func (r *run) replayRecord(ctx context.Context, events []state.Event) (map[string]runbooks.Value, error) {
	v := runlog.Fold(events)
	if len(v.Problems) > 0 {
		p := v.Problems[0]
		return nil, fmt.Errorf("event %d: %s", p.Seq, p.Reason)
	}
	inputs := map[string]runbooks.Value{}
	// Every answer in order (the last for a name wins); each secret one,
	// superseded or not, is masked in output from now on.
	for _, ch := range v.History {
		a := ch.Answer
		raw := a.Value
		if a.Secret {
			plain, err := r.cfg.Store.Unseal(ctx, r.id, raw)
			if err != nil {
				return nil, fmt.Errorf("unseal input %s: %w", a.Name, err)
			}
			raw = plain
		}
		val, err := decodeRecorded(raw)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", a.Name, err)
		}
		if list, ok := val.([]any); ok {
			ss := make([]string, len(list))
			for i, x := range list {
				ss[i] = fmt.Sprint(x)
			}
			val = ss
		}
		if a.Secret {
			if s, ok := val.(string); ok {
				r.mask.add(s)
			}
		}
		inputs[a.Name] = runbooks.Value{V: val, Secret: a.Secret}
	}
	for _, d := range v.Decisions {
		p := r.priorFor(d.StepID)
		switch d.Decision {
		case state.DecisionSkip:
			if d.Attempt == 0 {
				p.skipped, p.reason = true, d.Reason
				p.guard = d.By == "engine" && d.Target == "" && strings.HasPrefix(d.Reason, "guard ")
			}
		case "continue":
			p.skipped, p.reason = true, "continued after failure"
		}
	}
	// The last execution of each step on each target (Execs are in start
	// order); a skip decision alone does not make one.
	for i := range v.Execs {
		x := v.Execs[i].Exec
		if !v.Execs[i].Ran {
			continue
		}
		p := r.priorFor(x.StepID)
		p.byTarget[x.Target] = &x
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
		failedSkip := ex != nil && ex.Status == state.StatusFailed && (slices.Contains(r.opts.Skip, s.ID) || slices.Contains(r.opts.Redo, s.ID))
		if ex == nil || (ex.Status != state.StatusRunning && ex.Status != state.StatusInterrupted && !failedSkip) {
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
		case slices.Contains(r.opts.Redo, s.ID):
			if err := r.record(ctx, state.EvStepDecision, s.ID, t, ex.Attempt, state.StepDecision{Decision: state.DecisionRedo, Reason: "--redo " + s.ID, By: r.actor.String(), Actor: r.person()}); err != nil {
				return nil, err
			}
			still = append(still, t)
		case slices.Contains(r.opts.Skip, s.ID):
			outs, _, err := r.recordSkip(ctx, s, kind, t, ex.Attempt)
			if err != nil {
				return nil, err
			}
			vals.Targets[t] = outs
		case ex.Status == state.StatusFailed:
			still = append(still, t) // a failed execution runs again
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
			reason := fmt.Sprintf("%s was interrupted on %s; %s is idempotent, running it again", s.ID, where, s.Run)
			if err := r.record(ctx, state.EvStepDecision, s.ID, t, ex.Attempt, state.StepDecision{Decision: state.DecisionRedo, Reason: reason, By: "engine"}); err != nil {
				return nil, err
			}
			still = append(still, t)
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
				skip := fmt.Sprintf("--skip %s --reason \"...\"", s.ID)
				if needed := r.neededOutputs(s, nil); len(needed) > 0 {
					skip += " " + setOutputHint(s.ID, needed) + " (it took effect; later steps use " + strings.Join(needed, ", ") + ")"
				} else {
					skip += " (it took effect)"
				}
				return nil, fmt.Errorf("%w: step %s was interrupted on %s and has no check: to tell whether it took effect; "+
					"look at the node (the record holds its output so far: drbook replay %s), then resume with --redo %s (run it again) or %s",
					ErrNeedsDecision, s.ID, where, r.id, s.ID, skip)
			}
			if needed := r.neededOutputs(s, nil); d.Kind == steps.DecisionSkip && len(needed) > 0 {
				// Nothing recorded: a skip without the outputs later steps
				// use would stop the run again at the first of them.
				return nil, fmt.Errorf("%w: step %s cannot be skipped without its outputs %s, which later steps use: resume with --skip %s --reason \"...\" %s",
					ErrNeedsDecision, s.ID, strings.Join(needed, ", "), s.ID, setOutputHint(s.ID, needed))
			}
			rec := state.StepDecision{Decision: string(d.Kind), Reason: d.Reason, By: d.By, Actor: r.person()}
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
	if err := r.record(ctx, state.EvStepDecision, s.ID, target, attempt+1, state.StepDecision{Decision: decision, Reason: reason, By: "check"}); err != nil {
		return false, nil, err
	}
	return done, outs, nil
}

// ErrBadResumeOption is wrapped when --redo, --skip or --set-output names a
// step or output they cannot apply to, or a skip lacks outputs later steps
// use. Nothing is recorded.
var ErrBadResumeOption = errors.New("bad resume option")

// checkResumeOptions checks the operator's --redo, --skip and --set-output
// against the runbook and the record before anything is recorded.
func (r *run) checkResumeOptions() error {
	var errs []string
	seen := map[string]string{}
	for _, o := range []struct {
		flag string
		ids  []string
	}{{"--redo", r.opts.Redo}, {"--skip", r.opts.Skip}} {
		for _, id := range o.ids {
			if prev, ok := seen[id]; ok && prev != o.flag {
				errs = append(errs, fmt.Sprintf("step %s is given to both --redo and --skip", id))
				continue
			}
			seen[id] = o.flag
			s := r.cfg.Runbook.Step(id)
			if s == nil {
				errs = append(errs, fmt.Sprintf("%s %s: the runbook has no step %q%s", o.flag, id, id, suggestStep(r.cfg.Runbook, id)))
				continue
			}
			if st := r.resumableStatus(id); st == "" && (o.flag != "--skip" || len(r.skippedWithoutOutputs(s)) == 0) {
				errs = append(errs, fmt.Sprintf("%s %s: step %s is %s, not interrupted or failed: only an interrupted or failed step can be redone or skipped", o.flag, id, id, r.priorStatus(id)))
			}
		}
	}
	for id, outs := range r.opts.SetOutputs {
		s := r.cfg.Runbook.Step(id)
		if s == nil {
			errs = append(errs, fmt.Sprintf("--set-output %s.…: the runbook has no step %q%s", id, id, suggestStep(r.cfg.Runbook, id)))
			continue
		}
		if !slices.Contains(r.opts.Skip, id) {
			errs = append(errs, fmt.Sprintf("--set-output %s.…: outputs can only be given for a step skipped in the same resume (--skip %s)", id, id))
			continue
		}
		declared := declaredOutputs(s, r.cfg.Registry)
		for k := range outs {
			if !slices.Contains(declared, k) {
				errs = append(errs, fmt.Sprintf("--set-output %s.%s: step %s declares no output %q (it has: %s)", id, k, id, k, orNone(declared)))
			}
		}
	}
	for _, id := range r.opts.Skip {
		s := r.cfg.Runbook.Step(id)
		if s == nil {
			continue
		}
		if missing := r.neededOutputs(s, r.opts.SetOutputs[id]); len(missing) > 0 {
			errs = append(errs, fmt.Sprintf("--skip %s: later steps use its outputs %s: give them with %s", id, strings.Join(missing, ", "), setOutputHint(id, missing)))
		}
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return fmt.Errorf("%w:\n  %s", ErrBadResumeOption, strings.Join(errs, "\n  "))
	}
	return nil
}

// resumableStatus returns the status of step id's last execution on a
// target that is interrupted (or was found running) or failed; "" if none.
func (r *run) resumableStatus(id string) state.Status {
	p := r.prior[id]
	if p == nil || p.skipped {
		return ""
	}
	for _, ex := range p.byTarget {
		switch ex.Status {
		case state.StatusRunning, state.StatusInterrupted, state.StatusFailed:
			return ex.Status
		}
	}
	return ""
}

// priorStatus says what the record holds of step id, for messages.
func (r *run) priorStatus(id string) string {
	p := r.prior[id]
	switch {
	case p == nil:
		return "not started"
	case p.skipped:
		return "skipped"
	}
	for _, ex := range p.byTarget {
		return string(ex.Status)
	}
	return "not started"
}

func suggestStep(rb *runbooks.Runbook, id string) string {
	var ids []string
	for i := range rb.Steps {
		ids = append(ids, rb.Steps[i].ID)
	}
	return " (steps: " + strings.Join(ids, ", ") + ")"
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}

// declaredOutputs lists the outputs step s declares, its kind's included.
func declaredOutputs(s *runbooks.Step, reg *steps.Registry) []string {
	var out []string
	for _, o := range s.Outputs {
		out = append(out, o.Name)
	}
	if kind, ok := reg.Get(s.Run); ok {
		for _, o := range kind.Info().Outputs {
			if !slices.Contains(out, o.Name) {
				out = append(out, o.Name)
			}
		}
	}
	return out
}

// neededOutputs lists the declared outputs of s that a later step refers to
// (steps.ID.outputs.KEY, or steps.ID.targets) and that given lacks.
func (r *run) neededOutputs(s *runbooks.Step, given map[string]string) []string {
	var later strings.Builder
	after := false
	for i := range r.cfg.Runbook.Steps {
		o := &r.cfg.Runbook.Steps[i]
		if after {
			// The whole step, so that any field's templates count.
			b, err := json.Marshal(o)
			if err != nil {
				b = []byte(stepFingerprint(r.cfg.Runbook, o))
			}
			later.Write(b)
		}
		if o.ID == s.ID {
			after = true
		}
	}
	text := later.String()
	all := strings.Contains(text, "steps."+s.ID+".targets")
	var missing []string
	for _, name := range declaredOutputs(s, r.cfg.Registry) {
		if _, ok := given[name]; ok {
			continue
		}
		if all || strings.Contains(text, "steps."+s.ID+".outputs."+name) {
			missing = append(missing, name)
		}
	}
	return missing
}

func setOutputHint(id string, names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("--set-output %s.%s=VALUE", id, n)
	}
	return strings.Join(parts, " ")
}

// recordSkip records the operator's --skip of step s on target (attempt is
// the interrupted or failed one), with the outputs given by --set-output,
// and returns those outputs for later steps.
func (r *run) recordSkip(ctx context.Context, s *runbooks.Step, kind steps.Kind, target string, attempt int) (map[string]runbooks.Value, state.StepDecision, error) {
	secret := map[string]bool{}
	for _, o := range s.Outputs {
		secret[o.Name] = secret[o.Name] || o.Secret
	}
	for _, o := range kind.Info().Outputs {
		secret[o.Name] = secret[o.Name] || o.Secret
	}
	outs := map[string]runbooks.Value{}
	d := state.StepDecision{Decision: state.DecisionSkip, Reason: r.opts.SkipReason, By: r.actor.String(), Actor: r.person()}
	given := r.opts.SetOutputs[s.ID]
	names := make([]string, 0, len(given))
	for k := range given {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		v := given[k]
		if d.Outputs == nil {
			d.Outputs = map[string]string{}
		}
		outs[k] = runbooks.Value{V: v, Secret: secret[k]}
		if secret[k] {
			r.mask.add(v)
			sealed, err := r.cfg.Store.Seal(ctx, r.id, v)
			if err != nil {
				return nil, state.StepDecision{}, fmt.Errorf("seal output %s.%s: %w", s.ID, k, err)
			}
			d.Outputs[k] = sealed
			d.SecretOutputs = append(d.SecretOutputs, k)
			continue
		}
		d.Outputs[k] = v
	}
	if len(names) > 0 {
		r.emit(runlog.Notice{StepID: s.ID, Target: target, Text: fmt.Sprintf("%s skipped on %s with outputs set by %s: %s", s.ID, orLocal(target), d.By, strings.Join(names, ", ")), Time: time.Now()})
	}
	if err := r.record(ctx, state.EvStepDecision, s.ID, target, attempt, d); err != nil {
		return nil, d, err
	}
	return outs, d, nil
}

// skippedWithoutOutputs lists the targets where step s was skipped by an
// operator without outputs that later steps use (a record made before
// --set-output existed: the run stops at the first step that uses them).
func (r *run) skippedWithoutOutputs(s *runbooks.Step) []string {
	p := r.prior[s.ID]
	if p == nil || p.skipped {
		return nil
	}
	needed := r.neededOutputs(s, nil)
	var out []string
	for t, ex := range p.byTarget {
		if ex.Status != state.StatusSkipped {
			continue
		}
		for _, n := range needed {
			if _, ok := ex.Outputs[n]; !ok {
				out = append(out, t)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// fillSkippedOutputs records the outputs given with --skip for a step that
// an earlier resume skipped without them, so that the steps using them can
// run.
func (r *run) fillSkippedOutputs(ctx context.Context) error {
	for _, id := range r.opts.Skip {
		s := r.cfg.Runbook.Step(id)
		if s == nil || len(r.opts.SetOutputs[id]) == 0 {
			continue
		}
		kind, ok := r.cfg.Registry.Get(s.Run)
		if !ok {
			continue
		}
		for _, t := range r.skippedWithoutOutputs(s) {
			ex := r.prior[id].byTarget[t]
			_, d, err := r.recordSkip(ctx, s, kind, t, ex.Attempt)
			if err != nil {
				return err
			}
			ex.Outputs, ex.SecretOutputs = d.Outputs, d.SecretOutputs
		}
	}
	return nil
}

// Holder returns who held the run last according to its events: the actor
// of run.created, of the last run.resumed, or the receiver of the last
// run.handover, whichever came last, and the seq of that event. Records
// made before actors were recorded give the user and host they name (UID
// -1: unknown).
func Holder(events []state.Event) (state.Actor, int64, bool) {
	var who state.Actor
	var seq int64
	found := false
	for _, ev := range events {
		switch ev.Type {
		case state.EvRunCreated:
			var p state.RunCreated
			if ev.Decode(&p) == nil {
				who, seq, found = legacyActor(p.Actor, p.User, p.Host), ev.Seq, true
			}
		case state.EvRunResumed:
			var p state.RunResumed
			if ev.Decode(&p) == nil {
				who, seq, found = legacyActor(p.Actor, p.User, p.Host), ev.Seq, true
			}
		case state.EvRunHandover:
			var p state.RunHandover
			if ev.Decode(&p) == nil {
				who, seq, found = p.To, ev.Seq, true
			}
		}
	}
	return who, seq, found
}

func legacyActor(a *state.Actor, user, host string) state.Actor {
	if a != nil {
		return *a
	}
	return state.Actor{User: user, UID: -1, Host: host}
}

// recordHandover records a run.handover when this resume is by another
// person than the one who held the run (the lock passed to us), and signs
// it: the segment of the previous holder ends here.
func (r *run) recordHandover(ctx context.Context, before []state.Event) error {
	from, seq, ok := Holder(before)
	if !ok {
		return nil
	}
	same := from.SamePerson(r.actor)
	if from.UID == -1 { // an older record: no uid to compare
		same = from.User == r.actor.User && from.Host == r.actor.Host
	}
	if same {
		return nil
	}
	if err := r.record(ctx, state.EvRunHandover, "", "", 0, state.RunHandover{From: from, To: r.actor, FromSeq: seq}); err != nil {
		return err
	}
	r.signHead(ctx, state.SignHandover, "")
	return nil
}
