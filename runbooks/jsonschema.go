package runbooks

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// checkSchema validates a YAML node against a JSON Schema subset and records
// every mismatch with its position. Strings holding {{ templates }} are
// accepted for any type: they are checked again after rendering.
func checkSchema(d *diags, n *ynode, schema map[string]any, what string) {
	if n == nil || schema == nil {
		return
	}
	if n.kind == kindScalar && n.stype == scalarString && strings.Contains(n.value, "{{") {
		return
	}
	if t, ok := schema["type"]; ok && !typeMatches(n, t) {
		d.add(n.pos, "%s must be %s, not %s", what, typeName(t), quoteScalar(n))
		return
	}
	if enum, ok := schema["enum"].([]any); ok && n.kind == kindScalar {
		found := false
		var names []string
		for _, e := range enum {
			s := fmt.Sprint(e)
			names = append(names, s)
			if s == n.value {
				found = true
			}
		}
		if !found {
			d.add(n.pos, "%s: %q is not one of %s", what, n.value, strings.Join(names, ", "))
		}
	}
	if p, ok := schema["pattern"].(string); ok && n.kind == kindScalar {
		if re, err := regexp.Compile(p); err == nil && !re.MatchString(n.value) {
			d.add(n.pos, "%s: %q does not match %s", what, n.value, p)
		}
	}
	if n.kind == kindScalar && (n.stype == scalarInt || n.stype == scalarFloat) {
		f, _ := strconv.ParseFloat(n.value, 64)
		if m, ok := num(schema["minimum"]); ok && f < m {
			d.add(n.pos, "%s: %s is below the minimum %v", what, n.value, m)
		}
		if m, ok := num(schema["maximum"]); ok && f > m {
			d.add(n.pos, "%s: %s is above the maximum %v", what, n.value, m)
		}
	}
	switch n.kind {
	case kindMap:
		props, _ := schema["properties"].(map[string]any)
		for i, k := range n.keys {
			sub, ok := props[k.value].(map[string]any)
			if !ok {
				switch ap := schema["additionalProperties"].(type) {
				case bool:
					if !ap {
						d.add(k.pos, "unknown parameter %q in %s%s", k.value, what, suggestKeys(k.value, props))
						continue
					}
				case map[string]any:
					sub = ap
				}
			}
			checkSchema(d, n.vals[i], sub, what+"."+k.value)
		}
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				name := fmt.Sprint(r)
				if n.get(name) == nil {
					d.add(n.pos, "%s: missing required parameter %q", what, name)
				}
			}
		}
	case kindSeq:
		if m, ok := num(schema["minItems"]); ok && float64(len(n.items)) < m {
			d.add(n.pos, "%s needs at least %v entries", what, m)
		}
		if items, ok := schema["items"].(map[string]any); ok {
			for i, it := range n.items {
				checkSchema(d, it, items, fmt.Sprintf("%s[%d]", what, i))
			}
		}
	}
}

func suggestKeys(name string, props map[string]any) string {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if editDistance(name, k) <= 2 {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
	}
	if len(keys) > 0 {
		return fmt.Sprintf(" (known: %s)", strings.Join(keys, ", "))
	}
	return ""
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func typeName(t any) string {
	if list, ok := t.([]any); ok {
		var names []string
		for _, x := range list {
			names = append(names, "a "+fmt.Sprint(x))
		}
		return strings.Join(names, " or ")
	}
	return "a " + fmt.Sprint(t)
}

func typeMatches(n *ynode, t any) bool {
	if list, ok := t.([]any); ok {
		for _, x := range list {
			if typeMatches(n, x) {
				return true
			}
		}
		return false
	}
	switch fmt.Sprint(t) {
	case "string":
		return n.kind == kindScalar && n.stype == scalarString
	case "integer":
		return n.kind == kindScalar && n.stype == scalarInt
	case "number":
		return n.kind == kindScalar && (n.stype == scalarInt || n.stype == scalarFloat)
	case "boolean":
		return n.kind == kindScalar && n.stype == scalarBool
	case "object":
		return n.kind == kindMap
	case "array":
		return n.kind == kindSeq
	case "null":
		return n.kind == kindNull
	}
	return true
}
