package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
)

// maxLogBytes bounds the output recorded per step execution, and so the
// bytes kept of any one line.
const maxLogBytes = 4 << 20

// doStep settles one step: restore it from the record, skip it by its guard,
// or run its pending targets, then apply the failure policy.
func (r *run) doStep(ctx context.Context, s *runbooks.Step) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w before step %s", ErrInterrupted, s.ID)
	}
	kind, ok := r.cfg.Registry.Get(s.Run)
	if !ok {
		return fmt.Errorf("step %s: unknown kind %q", s.ID, s.Run)
	}
	info := kind.Info()
	prior := r.prior[s.ID]
	if prior != nil && prior.skipped {
		r.scope.Steps[s.ID] = &runbooks.StepValues{Status: string(state.StatusSkipped)}
		return nil
	}
	if s.When != "" && prior == nil {
		ok, err := runbooks.EvalGuard(s.When, r.scope)
		if err != nil {
			return fmt.Errorf("step %s: when: %w", s.ID, err)
		}
		if !ok {
			reason := "guard when: is false"
			if err := r.record(ctx, state.EvStepDecision, s.ID, "", 0, state.StepDecision{Decision: state.DecisionSkip, Reason: reason, By: "engine"}); err != nil {
				return err
			}
			r.scope.Steps[s.ID] = &runbooks.StepValues{Status: string(state.StatusSkipped)}
			return nil
		}
	}
	targets := []string{""}
	if s.ForEach != "" {
		var err error
		if targets, err = r.forEachUnits(s, info); err != nil {
			return fmt.Errorf("step %s: %w", s.ID, err)
		}
		if len(targets) == 0 {
			// Nothing to run: the step is skipped, and the record says why.
			reason := "for_each: no items"
			if err := r.record(ctx, state.EvStepDecision, s.ID, "", 0, state.StepDecision{Decision: state.DecisionSkip, Reason: reason, By: "engine"}); err != nil {
				return err
			}
			r.scope.Steps[s.ID] = &runbooks.StepValues{Status: string(state.StatusSkipped)}
			return nil
		}
	} else if info.Targets != runbooks.TargetsNone && len(s.On) > 0 {
		var err error
		if targets, err = runbooks.ResolveTargets(s.On, r.scope); err != nil {
			return fmt.Errorf("step %s: %w", s.ID, err)
		}
		if len(targets) == 0 {
			return fmt.Errorf("step %s: on: resolved to no node", s.ID)
		}
	}
	vals := &runbooks.StepValues{Targets: map[string]map[string]runbooks.Value{}}
	var pending []string
	for _, t := range targets {
		if prior != nil {
			if ex := prior.byTarget[t]; ex != nil && (ex.Status == state.StatusSucceeded || ex.Status == state.StatusSkipped) {
				outs, err := r.restoreOutputs(ctx, ex)
				if err != nil {
					return err
				}
				if ex.Status == state.StatusSucceeded && !r.untilHolds(s, t, outs) {
					pending = append(pending, t) // recorded before until: held or was added
					continue
				}
				vals.Targets[t] = outs
				continue
			}
		}
		pending = append(pending, t)
	}
	if len(pending) == 0 {
		r.settle(s, vals, targets)
		return nil
	}
	pend := runlog.StepPending{StepID: s.ID, Title: s.Title, Kind: s.Run, Targets: nonEmpty(targets), Danger: s.Danger, Time: time.Now()}
	if limit := StepTimeout(s, info); !limit.None() {
		pend.Timeout = limit.D()
	}
	if s.ForEach != "" {
		pend.Items, pend.Nodes = true, r.itemNodes(s.ID, targets)
	}
	r.emit(pend)
	// Interrupted executions found on resume.
	if prior != nil {
		var err error
		if pending, err = r.decideInterrupted(ctx, s, kind, prior, pending, vals); err != nil {
			return err
		}
		if pending == nil {
			r.settle(s, vals, targets)
			return nil
		}
	}
	if s.Danger && s.NeedsApproval() {
		if err := r.awaitApproval(ctx, s, kind, pending); err != nil {
			return err
		}
	}
	if s.Danger {
		if err := r.confirmDanger(ctx, s, kind, pending); err != nil {
			return err
		}
	}
	for {
		failed, err := r.runTargets(ctx, s, kind, pending, vals)
		if err != nil {
			return err
		}
		if len(failed) == 0 {
			break
		}
		next, skipReason, stop := r.onFailure(ctx, s, failed)
		if stop != nil {
			r.scope.Steps[s.ID] = &runbooks.StepValues{Status: string(state.StatusFailed), Targets: vals.Targets}
			return stop
		}
		if next == nil { // continue or skip
			r.settle(s, vals, targets)
			r.scope.Steps[s.ID].Status = string(state.StatusFailed)
			if skipReason != "" {
				// The operator skipped it: recorded as a skip, shown as one
				// (the templates still see it failed).
				return nil
			}
			return nil
		}
		pending = next
	}
	r.settle(s, vals, targets)
	return nil
}

func nonEmpty(ts []string) []string {
	if len(ts) == 1 && ts[0] == "" {
		return nil
	}
	return ts
}

// settle publishes a step's outputs to later steps.
func (r *run) settle(s *runbooks.Step, vals *runbooks.StepValues, targets []string) {
	vals.Status = string(state.StatusSucceeded)
	if len(targets) == 1 {
		vals.Outputs = vals.Targets[targets[0]]
	}
	r.scope.Steps[s.ID] = vals
}

// confirmDanger asks the operator to type the step's word (confirmWord)
// before a destructive step; a wrong word asks again, a refusal stops the run.
func (r *run) confirmDanger(ctx context.Context, s *runbooks.Step, kind steps.Kind, targets []string) error {
	word, reason, err := r.confirmWord(s, targets)
	if err != nil {
		return fmt.Errorf("step %s: %w", s.ID, err)
	}
	req := steps.ConfirmRequest{StepID: s.ID, Title: s.Title, Message: s.Description, Danger: true, Targets: nonEmpty(targets), Expect: word, Reason: reason}
	for _, t := range targets {
		x, err := r.execFor(s, t, 0)
		if err != nil {
			return err
		}
		req.Summaries = append(req.Summaries, r.mask.mask(kind.Summary(x)))
	}
	prompt := fmt.Sprintf("DANGER: %s on %s (confirmation word %q)", s.ID, orLocal(joinTargets(targets)), req.Expect)
	if reason != "" {
		prompt += ": " + reason
	}
	var resp steps.ConfirmResponse
	err = r.waitOperator(ctx, state.WaitConfirm, s.ID, prompt, func() (string, string, error) {
		var err error
		resp, err = r.cfg.Operator.Confirm(ctx, req)
		return resp.Typed, resp.By, err
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w at the confirmation of %s", ErrInterrupted, s.ID)
		}
		if errors.Is(err, steps.ErrNoOperator) {
			return fmt.Errorf("%w: step %s is marked danger: confirm it in the TUI or pass --yes: %w", ErrNeedsDecision, s.ID, err)
		}
		return err
	}
	if !resp.OK || resp.Typed != req.Expect {
		return fmt.Errorf("%w: danger step %s was not confirmed", ErrAborted, s.ID)
	}
	// The confirmation (operator.wait, with who typed the word) is the
	// head: the operator's key signs it before anything destructive runs.
	r.signHead(ctx, state.SignDanger, s.ID)
	return nil
}

// execFor prepares one execution: the target, its template scope, and the
// step's parameters rendered for that target. key is the execution's key:
// the target node, or for a for_each step the item (see forEachUnits).
func (r *run) execFor(s *runbooks.Step, key string, attempt int) (*steps.Exec, error) {
	x := &steps.Exec{RunID: r.id, Step: s, Key: key, Attempt: attempt, Operator: timedOperator{r}, Registry: r.cfg.Registry, Logger: r.log, Scope: r.scope, Dial: r.dialNode}
	target := key
	r.unitsMu.Lock()
	node, isItem := r.units[s.ID][key]
	r.unitsMu.Unlock()
	if isItem {
		target = node
	}
	if target != "" && r.cfg.Inventory != nil {
		x.Target = r.cfg.Inventory.Node(target)
		x.Scope = r.scope.WithTarget(x.Target)
	}
	if isItem {
		x.Scope = x.Scope.WithItem(runbooks.Value{V: key})
		target = fmt.Sprintf("item %s", key)
		if node != "" {
			target += " on " + node
		}
	}
	params, secrets, err := runbooks.RenderParams(s.With, x.Scope)
	if err != nil {
		return x, fmt.Errorf("step %s on %s: %w", s.ID, orLocal(target), err)
	}
	r.mask.add(secrets...)
	// Lint refuses a declared secret in a command line; a value that
	// became secret only at run time (a plugin's secret output) is refused
	// here: a command line is visible in the node's process list, and one
	// without environment travels as the SSH exec request itself.
	if len(secrets) > 0 {
		if info, ok := r.cfg.Registry.Kind(s.Run); ok {
			for _, name := range info.CommandParams {
				if secretParam(s.With.Values, name, x.Scope) {
					return x, fmt.Errorf("step %s on %s: %s: %w", s.ID, orLocal(target), name, ErrSecretInCommand)
				}
			}
		}
	}
	x.Params = params
	return x, nil
}

// ErrSecretInCommand: a secret value would appear on a node's command line
// (pass it with env: and use $NAME).
var ErrSecretInCommand = errors.New("a secret value would appear on the node's command line (visible in ps): pass it in with.env and use $NAME")

// paramAt is the string parameter at a dotted path ("detach.log").
func paramAt(params map[string]any, path string) (string, bool) {
	head, rest, nested := strings.Cut(path, ".")
	v, ok := params[head]
	if !ok {
		return "", false
	}
	if nested {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		return paramAt(m, rest)
	}
	str, ok := v.(string)
	return str, ok
}

// secretParam reports whether the template of parameter path (dotted) in
// values renders to a value derived from a secret (the template's taint,
// not a comparison of values: a literal that happens to equal a secret is
// not one).
func secretParam(values map[string]any, path string, sc runbooks.Scope) bool {
	raw, ok := paramAt(values, path)
	if !ok || !strings.Contains(raw, "{{") {
		return false
	}
	t, err := runbooks.ParseTemplate(raw)
	if err != nil {
		return false
	}
	v, err := t.Eval(sc)
	return err == nil && v.Secret
}

// runTargets runs one step on its pending targets, at most serial at once,
// each with its retries. It returns the targets that failed. An error means
// the run must stop (interrupt, checkpoint failure).
func (r *run) runTargets(ctx context.Context, s *runbooks.Step, kind steps.Kind, targets []string, vals *runbooks.StepValues) ([]string, error) {
	limit := s.Serial
	if limit <= 0 || limit > len(targets) {
		limit = len(targets)
	}
	if m := kind.Info().MaxParallel; m > 0 && limit > m {
		limit = m
	}
	sem := make(chan struct{}, limit)
	var (
		mu       sync.Mutex
		failed   []string
		fatal    error
		wg       sync.WaitGroup
		attempts = map[string]int{}
	)
	if pr := r.prior[s.ID]; pr != nil {
		for t, ex := range pr.byTarget {
			attempts[t] = ex.Attempt
		}
	}
	for _, t := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		mu.Lock()
		stop := fatal != nil
		mu.Unlock()
		if stop {
			<-sem
			break
		}
		wg.Add(1)
		go func(t string, first int) {
			defer wg.Done()
			defer func() { <-sem }()
			outs, ok, err := r.runWithRetries(ctx, s, kind, t, first)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				if fatal == nil {
					fatal = err
				}
			case !ok:
				failed = append(failed, t)
			default:
				vals.Targets[t] = outs
			}
		}(t, attempts[t]+1)
	}
	wg.Wait()
	if fatal != nil {
		return nil, fatal
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w during step %s", ErrInterrupted, s.ID)
	}
	return failed, nil
}

// runWithRetries runs attempts until one succeeds or retries are spent.
func (r *run) runWithRetries(ctx context.Context, s *runbooks.Step, kind steps.Kind, target string, first int) (map[string]runbooks.Value, bool, error) {
	delay := s.RetryDelay.D()
	if delay <= 0 {
		delay = time.Second
	}
	// until: without retries: keeps trying while the step's time limit,
	// counted from the first attempt, has not run out.
	untilLoop := s.Until != "" && s.Retries == 0
	limit := StepTimeout(s, kind.Info())
	start := time.Now()
	for attempt := first; ; attempt++ {
		outs, ok, err := r.execute(ctx, s, kind, target, attempt)
		if err != nil || ok {
			return outs, ok, err
		}
		more := attempt < first+s.Retries
		if untilLoop {
			more = !limit.None() && time.Since(start)+delay < limit.D()
		}
		if !more {
			if s.Until != "" {
				r.emit(runlog.Notice{StepID: s.ID, Target: target, Text: fmt.Sprintf("until: %s did not hold after %d attempt(s); giving up", strings.TrimSpace(s.Until), attempt-first+1), Time: time.Now()})
			}
			return nil, false, nil
		}
		r.emit(runlog.Notice{StepID: s.ID, Target: target, Text: fmt.Sprintf("attempt %d failed; retrying in %s", attempt, delay), Time: time.Now()})
		select {
		case <-ctx.Done():
			return nil, false, fmt.Errorf("%w while waiting to retry %s", ErrInterrupted, s.ID)
		case <-time.After(delay):
		}
		delay *= 2
		if s.Until != "" && delay > maxUntilDelay {
			delay = maxUntilDelay
		}
	}
}

// itemNodes lists, in order and once each, the nodes a for_each step's
// items run on.
func (r *run) itemNodes(stepID string, items []string) []string {
	r.unitsMu.Lock()
	defer r.unitsMu.Unlock()
	var out []string
	for _, it := range items {
		if n := r.units[stepID][it]; n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// maxUntilDelay caps the backoff between attempts of a step with until:.
const maxUntilDelay = 30 * time.Second

// until evaluates a step's until: over the outputs of one execution. It
// returns whether it holds and, when not, why (outputs shown masked).
func (r *run) until(s *runbooks.Step, sc *runbooks.RunScope, outs map[string]runbooks.Value, shown map[string]string) (bool, string) {
	ok, err := runbooks.EvalGuard(s.Until, sc.WithOwn(outs))
	if err != nil {
		return false, r.mask.mask(fmt.Sprintf("until: %v (outputs: %s)", err, showOutputs(shown)))
	}
	if !ok {
		return false, r.mask.mask(fmt.Sprintf("until: %s does not hold yet (outputs: %s)", strings.TrimSpace(s.Until), showOutputs(shown)))
	}
	return true, ""
}

// untilHolds tells whether restored outputs of a recorded success satisfy
// the step's until: (always true without one).
func (r *run) untilHolds(s *runbooks.Step, key string, outs map[string]runbooks.Value) bool {
	if s.Until == "" {
		return true
	}
	x, err := r.execFor(s, key, 0)
	if err != nil {
		return false
	}
	ok, _ := r.until(s, x.Scope, outs, nil)
	return ok
}

func showOutputs(shown map[string]string) string {
	if len(shown) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(shown))
	for k := range shown {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(shown[k])
	}
	return strings.Join(parts, " ")
}

// forEachUnits renders a for_each step's items and the node each runs on:
// on: rendered with the item must give one node; without on:, an item that
// names a node runs on it. Items are the executions' keys in the record.
func (r *run) forEachUnits(s *runbooks.Step, info runbooks.KindInfo) ([]string, error) {
	items, err := runbooks.ForEachItems(s.ForEach, r.scope)
	if err != nil {
		return nil, err
	}
	units := make(map[string]string, len(items))
	for _, it := range items {
		node := ""
		switch {
		case info.Targets == runbooks.TargetsNone:
		case len(s.On) > 0:
			ts, err := runbooks.ResolveTargets(s.On, r.scope.WithItem(runbooks.Value{V: it}))
			if err != nil {
				return nil, fmt.Errorf("item %s: %w", it, err)
			}
			if len(ts) != 1 {
				return nil, fmt.Errorf("item %s: on: gives %d nodes (%s); a for_each step runs each item on one node: name one, or on: \"{{ item }}\"", it, len(ts), strings.Join(ts, ", "))
			}
			node = ts[0]
		case r.cfg.Inventory != nil && r.cfg.Inventory.Node(it) != nil:
			node = it
		case info.Targets == runbooks.TargetsRequired:
			return nil, fmt.Errorf("item %q is not a node and the step has no on:; %s runs on a node, so add on: naming one", it, s.Run)
		}
		units[it] = node
	}
	r.unitsMu.Lock()
	if r.units == nil {
		r.units = map[string]map[string]string{}
	}
	r.units[s.ID] = units
	r.unitsMu.Unlock()
	return items, nil
}

// execute is one checkpointed step execution: started is durable before the
// kind runs, finished is durable before the next step can start.
func (r *run) execute(ctx context.Context, s *runbooks.Step, kind steps.Kind, target string, attempt int) (map[string]runbooks.Value, bool, error) {
	x, perr := r.execFor(s, target, attempt)
	if perr != nil {
		// A parameter that cannot be rendered fails this execution, recorded.
		return r.checkpointed(ctx, s, kind, x, s.Run, s.Run, func(context.Context) (steps.Result, error) { return steps.Result{ExitCode: -1}, perr })
	}
	return r.checkpointed(ctx, s, kind, x, s.Run, kind.Summary(x), func(ctx context.Context) (steps.Result, error) { return kind.Run(ctx, x) })
}

// checkpointed records started, runs fn with live masked output, and records
// finished (outputs sealed where secret). It is used for step executions and
// for resume-time check: commands alike.
func (r *run) checkpointed(ctx context.Context, s *runbooks.Step, kind steps.Kind, x *steps.Exec, kindName, summary string, fn func(context.Context) (steps.Result, error)) (map[string]runbooks.Value, bool, error) {
	target, attempt := x.Key, x.Attempt
	node := ""
	if x.Target != nil {
		node = x.Target.Name
		if target == "" {
			target = node
		}
	}
	summary = r.mask.mask(summary)
	if err := r.record(ctx, state.EvStepStarted, s.ID, target, attempt, state.StepStarted{Title: s.Title, Kind: kindName, Summary: summary, Danger: s.Danger}); err != nil {
		return nil, false, err
	}
	t0 := time.Now()
	var secretNames []string
	for _, o := range s.Outputs {
		if o.Secret {
			secretNames = append(secretNames, o.Name)
		}
	}
	for _, o := range kind.Info().Outputs {
		if o.Secret {
			secretNames = append(secretNames, o.Name)
		}
	}
	lw := newLogWriter(r, s.ID, target, secretLineMasker(secretNames))
	x.Stdout, x.Stderr = lw.stream(false), lw.stream(true)
	stopProgress := r.checkpointOutput(ctx, s.ID, target, attempt, lw)

	runCtx := ctx
	limit := StepTimeout(s, kind.Info())
	if !limit.None() {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, limit.D())
		defer cancel()
	}
	var res steps.Result
	var err error
	if info := kind.Info(); info.Targets != runbooks.TargetsNone && node != "" {
		x.Transport, err = r.pool.Get(runCtx, node)
		if err != nil {
			err = fmt.Errorf("connect to %s: %w", node, err)
			res.ExitCode = -1
		}
	}
	if err == nil {
		res, err = fn(runCtx)
	}
	stopProgress()
	lw.flush()
	dur := time.Since(t0)
	status := state.StatusSucceeded
	errText := ""
	switch {
	case err == nil:
	case ctx.Err() != nil:
		status = state.StatusInterrupted
		errText = "interrupted: " + err.Error()
	case errors.Is(err, steps.ErrNoOperator):
		status = state.StatusInterrupted
		errText = err.Error()
	case errors.Is(err, transport.ErrConnLost) && !errors.Is(err, transport.ErrNotStarted):
		// The command reached the node but its exit status never came back:
		// it may have run wholly, in part or not at all. Never a success and
		// not a plain failure either: resume decides it by check: or by the
		// kind's idempotency, like a runner crash.
		status = state.StatusInterrupted
		errText = "connection lost, outcome unknown: " + err.Error()
	default:
		status = state.StatusFailed
		errText = err.Error()
		if errors.Is(runCtx.Err(), context.DeadlineExceeded) {
			errText = timeoutText(limit, err)
		}
	}
	// Secret outputs: mask from now on, seal in the record.
	secretSet := map[string]bool{}
	for _, n := range append(secretNames, res.SecretOutputs...) {
		secretSet[n] = true
	}
	outs := map[string]runbooks.Value{}
	recOuts := map[string]string{}
	shownOuts := map[string]string{}
	for k, v := range res.Outputs {
		sec := secretSet[k]
		outs[k] = runbooks.Value{V: v, Secret: sec}
		if sec {
			r.mask.add(v)
			// Not cancelled with the run: the end checkpoint must land (see record).
			sealed, serr := r.cfg.Store.Seal(context.WithoutCancel(ctx), r.id, v)
			if serr != nil {
				return nil, false, fmt.Errorf("seal output %s: %w", k, serr)
			}
			recOuts[k] = sealed
			shownOuts[k] = Mask
		} else {
			recOuts[k] = r.mask.mask(v)
			shownOuts[k] = recOuts[k]
		}
	}
	if status == state.StatusSucceeded && s.Until != "" {
		// until: an attempt whose outputs do not satisfy it failed; its
		// outputs are shown and recorded, and retries decide what follows.
		if ok, why := r.until(s, x.Scope, outs, shownOuts); !ok {
			status, errText = state.StatusFailed, why
			res.ExitCode = max(res.ExitCode, 1)
		}
	}
	var secretList []string
	for k := range secretSet {
		if _, ok := res.Outputs[k]; ok {
			secretList = append(secretList, k)
		}
	}
	errText = r.mask.mask(errText)
	fin := state.StepFinished{
		Status: status, ExitCode: res.ExitCode, Error: errText, Outputs: recOuts, SecretOutputs: secretList,
		DurationMS: dur.Milliseconds(),
	}
	logBytes, cut := lw.bytes()
	fin.SetLog(logBytes)
	fin.LogCutBytes = cut
	if rerr := r.record(ctx, state.EvStepFinished, s.ID, target, attempt, fin); rerr != nil {
		return nil, false, rerr
	}
	if errors.Is(err, transport.ErrHostKeyMismatch) || errors.Is(err, transport.ErrUnknownHost) {
		// A host key that changed since the run started (possible
		// man-in-the-middle) stops the run: no retry, no on_failure.
		return nil, false, fmt.Errorf("%w: step %s on %s: nothing was run there: %w", ErrHostKeyRefused, s.ID, orLocal(target), err)
	}
	if status == state.StatusInterrupted {
		if errors.Is(err, transport.ErrConnLost) {
			return nil, false, fmt.Errorf("%w: step %s on %s: the connection was lost while it ran (outcome unknown; resume decides it by check: or idempotency): %w", ErrInterrupted, s.ID, orLocal(target), err)
		}
		if errors.Is(err, steps.ErrNoOperator) {
			return nil, false, fmt.Errorf("%w: step %s: %w", ErrNeedsDecision, s.ID, err)
		}
		return nil, false, fmt.Errorf("%w during step %s on %s", ErrInterrupted, s.ID, orLocal(target))
	}
	return outs, status == state.StatusSucceeded, nil
}

// DefaultStepTimeout limits one attempt of a step whose kind declares no
// default and that sets no timeout: (agent.* and plugin kinds).
const DefaultStepTimeout = runbooks.Duration(10 * time.Minute)

// StepTimeout is the time limit of one attempt of s: its timeout:, else its
// kind's default, else DefaultStepTimeout. runbooks.NoLimit means none
// (written `timeout: none`, or the default of the operator kinds).
func StepTimeout(s *runbooks.Step, info runbooks.KindInfo) runbooks.Duration {
	switch {
	case s.Timeout.None() || s.Timeout > 0:
		return s.Timeout
	case info.DefaultTimeout.None() || info.DefaultTimeout > 0:
		return info.DefaultTimeout
	}
	return DefaultStepTimeout
}

// timeoutText says that an attempt ran out of time; a polling kind's
// PollTimeoutError adds what it last saw.
func timeoutText(limit runbooks.Duration, err error) string {
	var pe *steps.PollTimeoutError
	if errors.As(err, &pe) {
		return fmt.Sprintf("timed out after %s: %s", limit, pe.Detail)
	}
	return fmt.Sprintf("timed out after %s: %v", limit, err)
}

func orLocal(t string) string {
	if t == "" {
		return "the operator"
	}
	return t
}

// onFailure applies on_failure to the failed targets of a step. It returns
// the targets to retry, or none to go on to the next step (with the reason
// when the operator skipped it), or an error that stops the run.
func (r *run) onFailure(ctx context.Context, s *runbooks.Step, failed []string) (next []string, skipReason string, err error) {
	policy := s.OnFailure
	if policy == "" {
		policy = runbooks.OnFailureStop
	}
	failedText := joinTargets(failed)
	switch policy {
	case runbooks.OnFailureContinue:
		if err := r.record(ctx, state.EvStepDecision, s.ID, failedText, 0, state.StepDecision{Decision: "continue", Reason: "on_failure: continue", By: "runbook"}); err != nil {
			return nil, "", err
		}
		return nil, "", nil
	case runbooks.OnFailureAsk:
		var d steps.Decision
		prompt := fmt.Sprintf("step %s failed on %s: retry, skip or abort?", s.ID, orLocal(failedText))
		err := r.waitOperator(ctx, state.WaitFailure, s.ID, prompt, func() (string, string, error) {
			var err error
			d, err = r.cfg.Operator.Decide(ctx, steps.DecideRequest{StepID: s.ID, Target: failedText, Options: []steps.DecisionKind{steps.DecisionRetry, steps.DecisionSkip, steps.DecisionAbort}})
			return string(d.Kind), d.By, err
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", fmt.Errorf("%w at the failure prompt of %s", ErrInterrupted, s.ID)
			}
			return nil, "", fmt.Errorf("%w: step %s failed on %s and nobody can decide: %w", ErrStepFailed, s.ID, orLocal(failedText), err)
		}
		rec := state.StepDecision{Decision: string(d.Kind), Reason: d.Reason, By: d.By, Actor: r.person()}
		if err := r.record(ctx, state.EvStepDecision, s.ID, failedText, 0, rec); err != nil {
			return nil, "", err
		}
		switch d.Kind {
		case steps.DecisionRetry:
			return failed, "", nil
		case steps.DecisionSkip:
			if strings.TrimSpace(d.Reason) == "" {
				return nil, "", fmt.Errorf("%w: skipping %s needs a reason", ErrAborted, s.ID)
			}
			return nil, d.Reason, nil
		default:
			return nil, "", fmt.Errorf("%w at step %s", ErrAborted, s.ID)
		}
	}
	return nil, "", fmt.Errorf("%w: %s on %s", ErrStepFailed, s.ID, orLocal(failedText))
}

// logWriter splits a step execution's output into masked lines, emits them
// live and keeps them, byte for byte, for the record (see
// state.StepFinished.LogBytes for the log's format). Memory is bounded: a
// line being received keeps at most maxLogBytes bytes per stream, and the
// log at most maxLogBytes; what does not fit is counted, not kept.
type logWriter struct {
	r              *run
	stepID, target string
	lineMask       func(string) string
	mu             sync.Mutex
	partial        [2]lineBuf
	log            bytes.Buffer
	cut            int64 // bytes of output that did not fit in the log
}

// lineBuf is a line being received: its first maxLogBytes bytes and the
// number of bytes beyond them.
type lineBuf struct {
	buf  []byte
	over int64
}

func newLogWriter(r *run, stepID, target string, lineMask func(string) string) *logWriter {
	return &logWriter{r: r, stepID: stepID, target: target, lineMask: lineMask}
}

type streamWriter struct {
	lw     *logWriter
	stderr bool
}

func (lw *logWriter) stream(stderr bool) *streamWriter { return &streamWriter{lw: lw, stderr: stderr} }

func (w *streamWriter) Write(p []byte) (int, error) {
	lw := w.lw
	lw.mu.Lock()
	defer lw.mu.Unlock()
	i := 0
	if w.stderr {
		i = 1
	}
	lb := &lw.partial[i]
	n := len(p)
	for len(p) > 0 {
		j := bytes.IndexByte(p, '\n')
		chunk := p
		if j >= 0 {
			chunk = p[:j]
		}
		if room := maxLogBytes - len(lb.buf); room > 0 {
			k := min(room, len(chunk))
			lb.buf = append(lb.buf, chunk[:k]...)
			lb.over += int64(len(chunk) - k)
		} else {
			lb.over += int64(len(chunk))
		}
		if j < 0 {
			break // incomplete line: kept for the next write
		}
		lw.line(lb, w.stderr, true)
		p = p[j+1:]
	}
	return n, nil
}

// line records and emits the complete (or, at the end, unterminated) line
// in lb, then empties lb.
func (lw *logWriter) line(lb *lineBuf, stderr, terminated bool) {
	raw := string(lb.buf)
	over := lb.over
	lb.buf, lb.over = lb.buf[:0], 0
	if cap(lb.buf) > 64<<10 {
		lb.buf = nil // do not keep a huge buffer for the next lines
	}
	s := lw.r.mask.mask(lw.lineMask(raw))
	if over > 0 {
		// The line was cut: a secret may start in the kept part.
		s = lw.r.mask.maskTail(s)
	}
	// A last line left unterminated on one stream is followed by a newline
	// when the other stream's last line comes after it.
	if n := lw.log.Len(); n > 0 && lw.log.Bytes()[n-1] != '\n' && lw.cut == 0 {
		lw.log.WriteByte('\n')
	}
	entry := s
	if stderr {
		entry = "! " + s
	}
	if terminated {
		entry += "\n"
	}
	room := max(0, maxLogBytes-lw.log.Len())
	switch {
	case lw.cut > 0:
		lw.cut += int64(len(entry)) + over
	case len(entry) <= room && over == 0:
		lw.log.WriteString(entry)
	default:
		// Keep the first bytes of the line that fit (all of them when only
		// the line's own cap was reached); count the rest.
		k := min(room, len(entry))
		if over > 0 && terminated && k == len(entry) {
			k-- // the kept part of a cut line ends without its newline
		}
		lw.log.WriteString(entry[:k])
		lw.cut += int64(len(entry)-k) + over
	}
	line := strings.TrimRight(s, "\r")
	if over > 0 {
		line += fmt.Sprintf(" [line cut: %d bytes not shown]", over)
	}
	ol := runlog.OutputLine{StepID: lw.stepID, Target: lw.target, Stderr: stderr, Line: line, Time: time.Now()}
	if !utf8.ValidString(line) {
		ol.Raw = []byte(line)
	}
	lw.r.emit(ol)
}

func (lw *logWriter) flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for i := range lw.partial {
		if lb := &lw.partial[i]; len(lb.buf) > 0 || lb.over > 0 {
			lw.line(lb, i == 1, false)
		}
	}
}

// outputCheckpointEvery is how often a running step execution's new output
// is checkpointed (step.output), so that a runner killed mid-step leaves
// what the step printed so far in the record.
var outputCheckpointEvery = 2 * time.Second

// checkpointOutput records, every outputCheckpointEvery while an execution
// runs, the complete lines of output it printed since the last time. The
// returned function stops it and returns once no record is being written.
// It is a timer, not a goroutine: most executions end before it first
// fires, and then it cost nothing but arming and stopping it.
func (r *run) checkpointOutput(ctx context.Context, stepID, target string, attempt int, lw *logWriter) func() {
	var (
		mu      sync.Mutex // held while a chunk is recorded
		stopped bool
		sent    int64
		t       *time.Timer
	)
	mu.Lock() // t is read by the timer's function
	defer mu.Unlock()
	t = time.AfterFunc(outputCheckpointEvery, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped || ctx.Err() != nil {
			return
		}
		if chunk := lw.since(sent); len(chunk) > 0 {
			if err := r.record(ctx, state.EvStepOutput, stepID, target, attempt, state.NewStepOutput(sent, chunk)); err != nil {
				r.log.Warn("checkpoint output", "step", stepID, "target", target, "err", err)
				return
			}
			sent += int64(len(chunk))
		}
		t.Reset(outputCheckpointEvery)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// since returns the log bytes kept beyond the first off (complete lines
// only, no truncation marker).
func (lw *logWriter) since(off int64) []byte {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if int64(lw.log.Len()) <= off {
		return nil
	}
	return bytes.Clone(lw.log.Bytes()[off:])
}

// bytes returns the log as recorded, with its truncation marker, and the
// number of bytes cut.
func (lw *logWriter) bytes() ([]byte, int64) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	out := bytes.Clone(lw.log.Bytes())
	if lw.cut > 0 {
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = fmt.Appendf(out, "[output truncated: %d bytes not recorded]\n", lw.cut)
	}
	return out, lw.cut
}

// dialNode gives kinds access to other inventory nodes over the run's pool.
func (r *run) dialNode(ctx context.Context, name string) (*runbooks.Node, transport.Transport, error) {
	if r.cfg.Inventory == nil {
		return nil, nil, fmt.Errorf("no inventory: cannot reach %q", name)
	}
	n := r.cfg.Inventory.Node(name)
	if n == nil {
		return nil, nil, fmt.Errorf("unknown node %q", name)
	}
	t, err := r.pool.Get(ctx, name)
	return n, t, err
}
