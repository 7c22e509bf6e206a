package runlog

import (
	"fmt"
	"maps"
	"slices"

	"github.com/drbook/drbook/state"
)

// CacheDiff compares the cached projections of a run (its runs row, execs
// and answers rows) with the view folded from its chain and describes each
// difference, sorted; none when they agree. The chain is what counts: a
// difference means the cache was altered (or written by a drbook with other
// rules) and is to be reported, never believed. Sealed values are not
// compared: the cache blanks them when the run's secrets are shredded.
func CacheDiff(v View, run state.Run, execs []state.Exec, answers map[string]state.Answer) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	cr := v.Run()
	field := func(name string, cache, chain any) {
		if fmt.Sprint(cache) != fmt.Sprint(chain) {
			add("runs.%s is %q, the chain says %q", name, fmt.Sprint(cache), fmt.Sprint(chain))
		}
	}
	field("status", run.Status, cr.Status)
	field("runbook_name", run.RunbookName, cr.RunbookName)
	field("mode", run.Mode, cr.Mode)
	field("host", run.Host, cr.Host)
	field("pid", run.PID, cr.PID)
	field("user", run.User, cr.User)
	if !run.FinishedAt.Equal(cr.FinishedAt) {
		add("runs.finished_at is %s, the chain says %s", run.FinishedAt, cr.FinishedAt)
	}
	if cr.RunbookTitle != "" {
		field("runbook_title", run.RunbookTitle, cr.RunbookTitle)
	}
	if cr.Labels != nil && !maps.Equal(run.Labels, cr.Labels) {
		add("runs.labels are %v, the chain says %v", run.Labels, cr.Labels)
	}
	key := func(x state.Exec) string { return fmt.Sprintf("%s@%s#%d", x.StepID, x.Target, x.Attempt) }
	cached := map[string]state.Exec{}
	for _, x := range execs {
		cached[key(x)] = x
	}
	for _, fx := range v.Execs {
		k := key(fx.Exec)
		x, ok := cached[k]
		if !ok {
			add("execs: %s is missing", k)
			continue
		}
		delete(cached, k)
		if x.Status != fx.Status || x.ExitCode != fx.ExitCode || x.Error != fx.Error || x.StartSeq != fx.StartSeq || x.EndSeq != fx.EndSeq {
			add("execs: %s is %s (exit %d), the chain says %s (exit %d)", k, x.Status, x.ExitCode, fx.Status, fx.ExitCode)
		}
		if x.Log != fx.Log {
			add("execs: %s has another output log than the chain", k)
		}
		for name, val := range fx.Outputs {
			if !state.IsSealed(val) && x.Outputs[name] != val {
				add("execs: %s output %s differs from the chain", k, name)
			}
		}
	}
	for k := range cached {
		add("execs: %s is not in the chain", k)
	}
	for name, a := range v.Answers {
		c, ok := answers[name]
		switch {
		case !ok:
			add("answers: %s is missing", name)
		case c.Secret != a.Secret || (!state.IsSealed(a.Value) && c.Value != a.Value):
			add("answers: %s differs from the chain", name)
		}
	}
	for name := range answers {
		if _, ok := v.Answers[name]; !ok {
			add("answers: %s is not in the chain", name)
		}
	}
	slices.Sort(out)
	return out
}
