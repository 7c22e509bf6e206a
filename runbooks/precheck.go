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
