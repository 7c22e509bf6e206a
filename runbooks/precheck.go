package runbooks

import (
	"fmt"
	"slices"
	"strings"
)

// StaticRoots are the template roots whose values are known before the first
// step runs: a template that reads only these can be checked up front.
var StaticRoots = []string{"inputs", "nodes", "groups", "run"}

// ReadsOnly reports whether every path the template reads starts with one of
// roots (index expressions included).
func (t *Template) ReadsOnly(roots ...string) bool {
	for _, r := range t.Refs() {
		if len(r.Path) == 0 || !slices.Contains(roots, r.Path[0]) {
			return false
		}
	}
	return true
}

// TemplateReadsOnly is ReadsOnly for a template string; a string that does
// not parse reads nothing known (false), and plain text reads nothing (true).
func TemplateReadsOnly(s string, roots ...string) bool {
	if !strings.Contains(s, "{{") {
		return true
	}
	t, err := ParseTemplate(s)
	return err == nil && t.ReadsOnly(roots...)
}

// PrecheckParams renders, in sc, every string of a step's parameters whose
// template reads only roots, and returns the first error (naming the
// parameter). Other strings are left for when the step runs.
func PrecheckParams(p Params, sc Scope, roots ...string) error {
	var walk func(v any, what string) error
	walk = func(v any, what string) error {
		switch x := v.(type) {
		case string:
			if !strings.Contains(x, "{{") {
				return nil
			}
			t, err := ParseTemplate(x)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if !t.ReadsOnly(roots...) {
				return nil
			}
			if _, err := t.Eval(sc); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if err := walk(x[k], what+"."+k); err != nil {
					return err
				}
			}
		case []any:
			for i, e := range x {
				if err := walk(e, fmt.Sprintf("%s[%d]", what, i)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(p.Values, "with")
}

// Partial renders as much of the template as sc resolves now, for a plan:
// each {{ expr }} that reads only roots and evaluates is filled in (a secret
// value as mask); the others stay as written, e.g. {{ steps.m.outputs.id }},
// and are returned in pending. A template that is exactly one resolvable
// expression keeps its value's type (a nodes input stays a list).
func (t *Template) Partial(sc Scope, mask string, roots ...string) (v any, pending []string) {
	var b strings.Builder
	var single any
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.text)
			continue
		}
		if val, ok := partialExpr(p.expr, sc, roots); ok {
			if val.Secret {
				val.V = mask
			}
			s, err := formatText(val.V)
			if err == nil {
				single = val.V
				b.WriteString(s)
				continue
			}
		}
		ph := "{{ " + strings.TrimSpace(p.src[2:len(p.src)-2]) + " }}"
		pending = append(pending, ph)
		b.WriteString(ph)
	}
	if len(t.parts) == 1 && t.parts[0].expr != nil && len(pending) == 0 {
		return single, nil
	}
	return b.String(), pending
}

func partialExpr(e expr, sc Scope, roots []string) (Value, bool) {
	var refs []Ref
	e.refs(&refs)
	for _, r := range refs {
		if len(r.Path) == 0 || !slices.Contains(roots, r.Path[0]) {
			return Value{}, false
		}
	}
	v, err := e.eval(sc)
	return v, err == nil
}
