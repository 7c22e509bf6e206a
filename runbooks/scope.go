package runbooks

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// StepValues are what later steps can read of a finished step.
type StepValues struct {
	Status string
	// Outputs of the step when it ran on exactly one target (or none).
	Outputs map[string]Value
	// Targets holds outputs per target node.
	Targets map[string]map[string]Value
}

// RunScope is the template scope of a run: inputs, earlier steps' outputs,
// the inventory, the current target and run metadata.
type RunScope struct {
	RunID     string
	Runbook   string
	Mode      string
	Inputs    map[string]Value
	Steps     map[string]*StepValues
	Inventory *Inventory
	// Target is the node the step is running on, if any.
	Target *Node
	// Item is the for_each item of the execution, if any (see WithItem).
	Item *Value
	// Own are the step's own outputs, read by its until: as outputs.<name>.
	Own map[string]Value
}

// WithItem returns a copy of the scope whose `item` is v.
func (s *RunScope) WithItem(v Value) *RunScope {
	c := *s
	c.Item = &v
	return &c
}

// WithOwn returns a copy of the scope whose `outputs` are outs (until:).
func (s *RunScope) WithOwn(outs map[string]Value) *RunScope {
	c := *s
	c.Own = outs
	return &c
}

// WithTarget returns a copy of the scope whose `target` is n.
func (s *RunScope) WithTarget(n *Node) *RunScope {
	c := *s
	c.Target = n
	return &c
}

// Lookup implements Scope.
func (s *RunScope) Lookup(path []string) (Value, error) {
	missing := func(format string, args ...any) (Value, error) {
		return Value{}, fmt.Errorf("%w: "+format, append([]any{ErrTemplate}, args...)...)
	}
	switch path[0] {
	case "inputs":
		if len(path) < 2 {
			return missing("inputs needs a name")
		}
		v, ok := s.Inputs[path[1]]
		if !ok {
			return missing("no input %q", path[1])
		}
		return index(v, path[2:], "inputs."+path[1])
	case "steps":
		if len(path) < 3 {
			return missing("incomplete step reference %s", strings.Join(path, "."))
		}
		st, ok := s.Steps[path[1]]
		if !ok {
			return missing("step %q has not run", path[1])
		}
		switch path[2] {
		case "status":
			return Value{V: st.Status}, nil
		case "outputs":
			if len(path) < 4 {
				return missing("steps.%s.outputs needs a name", path[1])
			}
			if st.Outputs == nil && len(st.Targets) > 1 {
				return missing("step %q ran on %d targets: use steps.%s.targets.<node>.outputs.%s", path[1], len(st.Targets), path[1], path[3])
			}
			v, ok := st.Outputs[path[3]]
			if !ok {
				return missing("step %q produced no output %q", path[1], path[3])
			}
			return v, nil
		case "targets", "items":
			if len(path) < 5 || path[4] != "outputs" || len(path) < 6 {
				return missing("use steps.%s.%s.<%s>.outputs.<name>", path[1], path[2], map[bool]string{true: "item", false: "node"}[path[2] == "items"])
			}
			outs, ok := st.Targets[path[3]]
			if !ok {
				return missing("step %q did not run on %q", path[1], path[3])
			}
			v, ok := outs[path[5]]
			if !ok {
				return missing("step %q produced no output %q on %q", path[1], path[5], path[3])
			}
			return v, nil
		}
		return missing("unknown step field %q", path[2])
	case "nodes":
		if s.Inventory == nil {
			return missing("no inventory")
		}
		if len(path) < 2 {
			return missing("nodes needs a name")
		}
		n := s.Inventory.Node(path[1])
		if n == nil {
			return missing("no node %q", path[1])
		}
		return nodeValue(n, path[2:])
	case "target":
		if s.Target == nil {
			return missing("this step has no target node")
		}
		return nodeValue(s.Target, path[1:])
	case "item":
		if s.Item == nil {
			return missing("item is only defined in a step with for_each:")
		}
		if len(path) == 1 {
			return *s.Item, nil
		}
		name, _ := formatText(s.Item.V)
		var n *Node
		if s.Inventory != nil {
			n = s.Inventory.Node(name)
		}
		if n == nil {
			return missing("item %s is not a node: it has no field %q", itemShown(*s.Item), path[1])
		}
		v, err := nodeValue(n, path[1:])
		v.Secret = v.Secret || s.Item.Secret
		return v, err
	case "groups":
		if s.Inventory == nil {
			return missing("no inventory")
		}
		if len(path) < 2 {
			return missing("groups needs a name")
		}
		g := s.Inventory.Group(path[1])
		if g == nil {
			return missing("no group %q", path[1])
		}
		return index(Value{V: []string(slices.Clone(g.Nodes))}, path[2:], "groups."+path[1])
	case "outputs":
		if s.Own == nil {
			return missing("outputs.<name> is only defined in until:")
		}
		if len(path) < 2 {
			return missing("outputs needs a name")
		}
		v, ok := s.Own[path[1]]
		if !ok {
			return missing("the step produced no output %q", path[1])
		}
		return v, nil
	case "run":
		if len(path) < 2 {
			return missing("run needs a field")
		}
		switch path[1] {
		case "id":
			return Value{V: s.RunID}, nil
		case "runbook":
			return Value{V: s.Runbook}, nil
		case "mode":
			return Value{V: s.Mode}, nil
		}
		return missing("no run field %q", path[1])
	}
	return missing("unknown root %q", path[0])
}

func index(v Value, rest []string, what string) (Value, error) {
	if len(rest) == 0 {
		return v, nil
	}
	if list, ok := v.V.([]string); ok {
		i, err := strconv.Atoi(rest[0])
		if err != nil || i < 0 || i >= len(list) {
			return Value{}, fmt.Errorf("%w: %s has no element %s", ErrTemplate, what, rest[0])
		}
		return index(Value{V: list[i], Secret: v.Secret}, rest[1:], what)
	}
	return Value{}, fmt.Errorf("%w: %s has no field %q", ErrTemplate, what, rest[0])
}

func nodeValue(n *Node, rest []string) (Value, error) {
	if len(rest) == 0 {
		return Value{V: n.Name}, nil
	}
	str := func(m map[string]string, what string) (Value, error) {
		if len(rest) < 2 {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return Value{V: strings.Join(keys, ",")}, nil
		}
		v, ok := m[rest[1]]
		if !ok {
			return Value{}, fmt.Errorf("%w: node %q has no %s %q", ErrTemplate, n.Name, what, rest[1])
		}
		return Value{V: v}, nil
	}
	switch rest[0] {
	case "name":
		return Value{V: n.Name}, nil
	case "host":
		return Value{V: n.Host}, nil
	case "port":
		return Value{V: int64(n.Port)}, nil
	case "user":
		return Value{V: n.User}, nil
	case "transport":
		return Value{V: n.Transport}, nil
	case "labels":
		return str(n.Labels, "label")
	case "vars":
		return str(n.Vars, "var")
	case "env":
		return str(n.Env, "env")
	}
	if v, ok := n.Vars[rest[0]]; ok {
		return Value{V: v}, nil
	}
	return Value{}, fmt.Errorf("%w: node %q has no field or var %q", ErrTemplate, n.Name, rest[0])
}

// ResolveTargets renders a step's `on:` into node names, expanding groups.
func ResolveTargets(on StringList, sc *RunScope) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(name string) error {
		if sc.Inventory == nil {
			return fmt.Errorf("no inventory to resolve node %q", name)
		}
		members := []string{name}
		if g := sc.Inventory.Group(name); g != nil {
			members = g.Nodes
		} else if sc.Inventory.Node(name) == nil {
			return fmt.Errorf("unknown node or group %q", name)
		}
		for _, m := range members {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
		return nil
	}
	for _, o := range on {
		t, err := ParseTemplate(o)
		if err != nil {
			return nil, err
		}
		v, err := t.Eval(sc)
		if err != nil {
			return nil, fmt.Errorf("on: %w", err)
		}
		switch x := v.V.(type) {
		case []string:
			for _, n := range x {
				if err := add(n); err != nil {
					return nil, err
				}
			}
		case []any:
			for _, n := range x {
				if err := add(fmt.Sprint(n)); err != nil {
					return nil, err
				}
			}
		default:
			s, _ := formatText(x)
			for _, n := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
				if err := add(n); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// RenderParams renders every string in a step's parameters. Secret reports
// whether any rendered value derives from a secret; secrets lists the secret
// values themselves so callers can mask them.
func RenderParams(p Params, sc Scope) (map[string]any, []string, error) {
	var secrets []string
	var render func(v any, what string) (any, error)
	render = func(v any, what string) (any, error) {
		switch x := v.(type) {
		case string:
			if !strings.Contains(x, "{{") {
				return x, nil
			}
			t, err := ParseTemplate(x)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			val, err := t.Eval(sc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			if val.Secret {
				if s, err := formatText(val.V); err == nil && s != "" {
					secrets = append(secrets, s)
				}
			}
			return val.V, nil
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				r, err := render(e, what+"."+k)
				if err != nil {
					return nil, err
				}
				out[k] = r
			}
			return out, nil
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				r, err := render(e, fmt.Sprintf("%s[%d]", what, i))
				if err != nil {
					return nil, err
				}
				out[i] = r
			}
			return out, nil
		}
		return v, nil
	}
	out := make(map[string]any, len(p.Values))
	for k, v := range p.Values {
		r, err := render(v, "with."+k)
		if err != nil {
			return nil, nil, err
		}
		out[k] = r
	}
	return out, secrets, nil
}

func itemShown(v Value) string {
	if v.Secret {
		return "(secret)"
	}
	t, _ := formatText(v.V)
	return strconv.Quote(t)
}

// ForEachItems renders a step's for_each: into its items: a template whose
// value is a list, or a group name (a group's nodes). Items are text, unique
// and non-empty; a value derived from a secret is refused, since each item
// names an execution in the record and on screen.
func ForEachItems(forEach string, sc *RunScope) ([]string, error) {
	src := strings.TrimSpace(forEach)
	if !strings.Contains(src, "{{") {
		if sc.Inventory == nil || sc.Inventory.Group(src) == nil {
			return nil, fmt.Errorf("%w: for_each: %q is not a group (write a list template such as {{ inputs.joiners }})", ErrTemplate, src)
		}
		return slices.Clone(sc.Inventory.Group(src).Nodes), nil
	}
	t, err := ParseTemplate(src)
	if err != nil {
		return nil, fmt.Errorf("for_each: %w", err)
	}
	v, err := t.Eval(sc)
	if err != nil {
		return nil, fmt.Errorf("for_each: %w", err)
	}
	if v.Secret {
		return nil, fmt.Errorf("%w: for_each: the items derive from a secret; items are recorded and shown, so they may not", ErrType)
	}
	var items []string
	switch x := v.V.(type) {
	case []string:
		items = slices.Clone(x)
	case []any:
		for _, e := range x {
			s, err := formatText(e)
			if err != nil {
				return nil, err
			}
			items = append(items, s)
		}
	default:
		return nil, fmt.Errorf("%w: for_each: needs a list, got %s", ErrType, runtimeType(v.V))
	}
	seen := map[string]bool{}
	for _, it := range items {
		if strings.TrimSpace(it) == "" {
			return nil, fmt.Errorf("%w: for_each: an item is empty", ErrTemplate)
		}
		if seen[it] {
			return nil, fmt.Errorf("%w: for_each: item %q appears twice (each item is one execution)", ErrTemplate, it)
		}
		seen[it] = true
	}
	return items, nil
}
