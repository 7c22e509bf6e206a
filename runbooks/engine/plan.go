package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drbook/drbook/runbooks"
)

// PlannedStep is one step as far as it can be resolved before running.
// drbook plan --output json shows it as jsonapi.PlanStep (the JSON contract).
type PlannedStep struct {
	ID     string
	Title  string
	Kind   string
	Danger bool
	// Targets are node names, or the template of `on:` rendered as far as
	// it can be (see Note).
	Targets []string
	// Params are the `with:` values rendered as far as the answers and the
	// inventory allow: a value that is one resolvable {{ expr }} keeps its
	// type (a nodes input is a list); in text, the parts that depend on
	// earlier steps' outputs (or on the target, for several targets) stay
	// as written, e.g. {{ steps.member.outputs.id }}. Secrets are masked.
	Params map[string]any
	// PerTarget holds the parameters that read `target`, rendered for each
	// target, when the step runs on several known nodes.
	PerTarget map[string]map[string]any
	// Check is the step's check: command, rendered like Params.
	Check string
	// When is the guard as written; Runs is its value when the answers fix
	// it (true: the step runs; false: skipped, the guard is false), absent
	// when it is known only at run time.
	When string
	Runs *bool
	// Pending lists the {{ … }} left for run time, in order, once each.
	Pending []string
	Serial  int
	// Confirm is the word the operator of a danger step types (its
	// confirm.word rendered from the inputs, else the target's name, or the
	// step id for several targets); ConfirmReason says why.
	Confirm       string
	ConfirmReason string
	// Approvals and Approvers: the step waits for this many approvals by
	// other persons (these principals, when named) before it runs.
	Approvals int
	Approvers []string
	// Timeout limits each attempt on each target: the step's timeout:, else
	// its kind's default ("none" for no limit).
	Timeout string
	Note    string
}

// planRoots are what a plan knows: the answers and the inventory. The run
// (run.id, run.mode) does not exist yet: {{ run.id }} stays as written.
var planRoots = []string{"inputs", "nodes"}

// MakePlan resolves what it can of every step from inputs and inventory;
// cat (may be nil) gives each kind's default time limit.
func MakePlan(rb *runbooks.Runbook, inv *runbooks.Inventory, inputs map[string]runbooks.Value, cat runbooks.KindCatalog) []PlannedStep {
	sc := &runbooks.RunScope{Runbook: rb.Name, Inputs: inputs, Steps: map[string]*runbooks.StepValues{}, Inventory: inv}
	var out []PlannedStep
	for i := range rb.Steps {
		s := &rb.Steps[i]
		p := PlannedStep{ID: s.ID, Title: s.Title, Kind: s.Run, Danger: s.Danger, When: s.When, Serial: s.Serial}
		pr := &planRender{sc: sc}
		if s.When != "" {
			p.Runs = planGuard(s.When, sc)
		}
		var info runbooks.KindInfo
		known := false
		if cat != nil {
			info, known = cat.Kind(s.Run)
		}
		if s.ForEach != "" {
			// One execution per item: the items stand where targets do.
			if items, err := runbooks.ForEachItems(s.ForEach, sc); err == nil {
				p.Targets = items
				p.Note = "for_each: one execution per item"
			} else {
				p.Targets = []string{pr.text(s.ForEach)}
				p.Note = "for_each: items known at run time"
			}
		} else if len(s.On) > 0 {
			if onKnown(s.On) {
				if ts, err := runbooks.ResolveTargets(s.On, sc); err == nil {
					p.Targets = ts
				} else {
					p.Note = "targets: " + err.Error()
				}
			}
			if p.Targets == nil {
				for _, o := range s.On {
					p.Targets = append(p.Targets, pr.text(o))
				}
				if p.Note == "" {
					p.Note = "targets resolved at run time"
				}
			}
		}
		p.Timeout = StepTimeout(s, info).String()
		if s.Danger {
			p.Confirm, p.ConfirmReason = planConfirm(s, p.Targets, pr)
			p.Approvals, p.Approvers = s.ApprovalsNeeded(), s.Approvers
		}
		// One known target: render as the step will run there. Several:
		// what reads target is shown per target.
		var nodes []*runbooks.Node
		if inv != nil && p.Note == "" && (!known || info.Targets != runbooks.TargetsNone) {
			for _, t := range p.Targets {
				if n := inv.Node(t); n != nil {
					nodes = append(nodes, n)
				}
			}
		}
		roots := planRoots
		if len(nodes) == 1 {
			pr.sc = sc.WithTarget(nodes[0])
			roots = append(slices.Clone(planRoots), "target")
		}
		pr.roots = roots
		if len(nodes) > 1 {
			p.PerTarget = perTarget(s, sc, nodes, pr)
		}
		p.Params = map[string]any{}
		shared := &planRender{sc: pr.sc, roots: roots} // target parts: shown per target
		var perKeys map[string]any
		if len(nodes) > 1 {
			perKeys = p.PerTarget[nodes[0].Name]
		}
		for k, v := range s.With.Values {
			if _, per := perKeys[k]; per {
				p.Params[k] = shared.value(v)
				continue
			}
			p.Params[k] = pr.value(v)
		}
		if s.Check != "" {
			p.Check = pr.text(s.Check)
		}
		p.Pending = pr.pending
		out = append(out, p)
	}
	return out
}

// onKnown reports whether on: reads only what the plan knows.
func onKnown(on runbooks.StringList) bool {
	for _, o := range on {
		if !runbooks.TemplateReadsOnly(o, planRoots...) {
			return false
		}
	}
	return true
}

// planGuard evaluates a guard the answers fix; nil when it reads what a
// step produces, or cannot be evaluated now.
func planGuard(when string, sc runbooks.Scope) *bool {
	t, err := runbooks.ParseGuard(when)
	if err != nil || !t.ReadsOnly(planRoots...) {
		return nil
	}
	ok, err := runbooks.EvalGuard(when, sc)
	if err != nil {
		return nil
	}
	return &ok
}

// perTarget renders, for each target, the parameters that read target;
// what is still left for run time is added to into's pending.
func perTarget(s *runbooks.Step, sc *runbooks.RunScope, nodes []*runbooks.Node, into *planRender) map[string]map[string]any {
	var keys []string
	for k, v := range s.With.Values {
		if readsTarget(v) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	out := map[string]map[string]any{}
	roots := append(slices.Clone(planRoots), "target")
	for _, n := range nodes {
		pr := &planRender{sc: sc.WithTarget(n), roots: roots}
		m := map[string]any{}
		for _, k := range keys {
			m[k] = pr.value(s.With.Values[k])
		}
		out[n.Name] = m
		for _, p := range pr.pending {
			if !slices.Contains(into.pending, p) {
				into.pending = append(into.pending, p)
			}
		}
	}
	return out
}

func readsTarget(v any) bool {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "{{") {
			return false
		}
		t, err := runbooks.ParseTemplate(x)
		if err != nil {
			return false
		}
		for _, r := range t.Refs() {
			if len(r.Path) > 0 && r.Path[0] == "target" {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if readsTarget(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if readsTarget(e) {
				return true
			}
		}
	}
	return false
}

// planRender renders templates as far as its scope allows and collects
// what is left for run time.
type planRender struct {
	sc      runbooks.Scope
	roots   []string
	pending []string
}

func (pr *planRender) value(v any) any {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "{{") {
			return x
		}
		t, err := runbooks.ParseTemplate(x)
		if err != nil {
			return x
		}
		roots := pr.roots
		if roots == nil {
			roots = planRoots
		}
		val, pending := t.Partial(pr.sc, Mask, roots...)
		for _, p := range pending {
			if !slices.Contains(pr.pending, p) {
				pr.pending = append(pr.pending, p)
			}
		}
		return val
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = pr.value(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = pr.value(e)
		}
		return l
	}
	return v
}

// text renders a template as text.
func (pr *planRender) text(s string) string {
	switch x := pr.value(s).(type) {
	case string:
		return x
	case []string:
		return strings.Join(x, ", ")
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// planConfirm renders a danger step's confirmation word and reason as far
// as the inputs allow; what depends on earlier steps stays a template.
func planConfirm(s *runbooks.Step, targets []string, pr *planRender) (word, reason string) {
	if s.Confirm == nil {
		return defaultConfirmWord(s, targets), ""
	}
	return pr.text(s.Confirm.Word), pr.text(s.Confirm.Reason)
}
