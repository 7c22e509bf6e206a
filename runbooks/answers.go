package runbooks

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/drbook/drbook/internal/capread"
)

// Answers are values given ahead of a run (an answers file, or a form): for
// the runbook's inputs and for `input` steps, by step id.
type Answers struct {
	File   string
	Inputs map[string]Answer
	Steps  map[string]Answer
}

// Answer is one given value and where it was written.
type Answer struct {
	Value any
	Pos   Pos
}

// ParseAnswers decodes an answers file:
//
//	inputs:
//	  seed: node1
//	  joiners: [node2, node3]
//	  backup_key: {env: DRBOOK_BACKUP_KEY}   # or {file: /path/to/secret}
//	steps:
//	  ticket: INC-1234                       # answer to the `input` step "ticket"
//
// Values written as {env: NAME} or {file: PATH} are read when the run
// resolves its inputs, so secrets need not be stored in the file.
func ParseAnswers(file string, src []byte) (*Answers, error) {
	root, err := parseYAML(file, src)
	if err != nil {
		return nil, err
	}
	d := &diags{file: file}
	a := &Answers{File: file, Inputs: map[string]Answer{}, Steps: map[string]Answer{}}
	if root.kind != kindMap {
		d.add(root.pos, "an answers file is a mapping with `inputs:` and `steps:`")
		return nil, d.err()
	}
	for i, k := range root.keys {
		var dst map[string]Answer
		switch k.value {
		case "inputs":
			dst = a.Inputs
		case "steps":
			dst = a.Steps
		default:
			d.add(k.pos, "unknown field %q in answers (expected inputs, steps)", k.value)
			continue
		}
		m := root.vals[i]
		if m.kind == kindNull {
			continue
		}
		if m.kind != kindMap {
			d.add(m.pos, "%s must be a mapping from name to value", k.value)
			continue
		}
		for j, name := range m.keys {
			val := m.vals[j]
			if val.kind == kindMap {
				if ref := val.get("env"); ref != nil && len(val.keys) == 1 {
					dst[name.value] = Answer{Value: envRef(ref.value), Pos: val.pos}
					continue
				}
				if ref := val.get("file"); ref != nil && len(val.keys) == 1 {
					dst[name.value] = Answer{Value: fileRef(ref.value), Pos: val.pos}
					continue
				}
				d.add(val.pos, "%s.%s: a value is a scalar, a list, {env: NAME} or {file: PATH}", k.value, name.value)
				continue
			}
			dst[name.value] = Answer{Value: toAny(val), Pos: val.pos}
		}
	}
	return a, d.err()
}

type envRef string
type fileRef string

// ErrMissingInput is wrapped when required inputs have no answer.
var ErrMissingInput = errors.New("missing required input")

// ResolveInputs turns answers into typed input values, applying defaults and
// every input rule. It returns the values it could resolve and, as an error,
// Diagnostics for every bad answer and every missing required input (pointed
// at the input's definition in the runbook). Inputs named in ask are skipped
// when absent: the caller will ask for them interactively.
func ResolveInputs(rb *Runbook, inv *Inventory, a *Answers, interactive bool) (map[string]Value, []*Input, error) {
	vals := map[string]Value{}
	chosen := map[string]any{} // node and nodes values, for distinct_from
	var ask []*Input
	rd := &diags{file: rb.File}
	ad := &diags{file: "answers"}
	if a != nil {
		ad.file = a.File
		for name, ans := range a.Inputs {
			if rb.Input(name) == nil {
				ad.add(ans.Pos, "answer for unknown input %q%s", name, suggestName(name, inputNames(rb)))
			}
		}
	}
	for i := range rb.Inputs {
		in := &rb.Inputs[i]
		var raw any
		var pos Pos
		have := false
		if a != nil {
			if ans, ok := a.Inputs[in.Name]; ok {
				raw, pos, have = ans.Value, ans.Pos, true
			}
		}
		if have {
			resolved, err := deref(raw)
			if err != nil {
				ad.add(pos, "input %q: %v", in.Name, err)
				continue
			}
			v, err := CoerceInput(in, resolved, inv)
			if err == nil {
				err = CheckDistinct(in, v, chosen)
			}
			if err != nil {
				ad.add(pos, "input %q: %v", in.Name, err)
				continue
			}
			chosen[in.Name] = v
			vals[in.Name] = Value{V: v, Secret: in.Type == InputSecret}
			continue
		}
		if interactive {
			ask = append(ask, in)
			continue
		}
		if in.Default != nil {
			v, err := CoerceInput(in, in.Default, inv)
			if err == nil {
				err = CheckDistinct(in, v, chosen)
			}
			if err != nil {
				rd.add(in.At("default"), "input %q: default: %v", in.Name, err)
				continue
			}
			chosen[in.Name] = v
			vals[in.Name] = Value{V: v}
			continue
		}
		if in.Optional {
			vals[in.Name] = Value{V: zeroOf(in.Type), Secret: in.Type == InputSecret}
			continue
		}
		rd.add(in.Pos, "%v %q (%s): give it in the answers file under inputs.%s", ErrMissingInput, in.Name, in.Type, in.Name)
	}
	all := append(rd.list, ad.list...)
	if len(all) > 0 {
		return vals, ask, all.sorted()
	}
	return vals, ask, nil
}

// Resolve returns the answer's value, reading an {env: NAME} or
// {file: PATH} answer now.
func (a Answer) Resolve() (any, error) { return deref(a.Value) }

func deref(raw any) (any, error) {
	switch r := raw.(type) {
	case envRef:
		v, ok := os.LookupEnv(string(r))
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", string(r))
		}
		return v, nil
	case fileRef:
		b, err := capread.ReadFile(string(r), maxSecretFileBytes)
		if err != nil {
			return nil, fmt.Errorf("read answer file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return raw, nil
}

func zeroOf(typ string) any {
	switch typ {
	case InputBool:
		return false
	case InputInt:
		return int64(0)
	case InputNodes:
		return []string{}
	}
	return ""
}

// CoerceInput checks a raw answer against an input's type and rules and
// returns its typed value: string, bool, int64, or []string for nodes.
func CoerceInput(in *Input, raw any, inv *Inventory) (any, error) {
	str := func() (string, error) {
		switch x := raw.(type) {
		case string:
			return x, nil
		case int64, float64, bool, int:
			return fmt.Sprint(x), nil
		}
		return "", fmt.Errorf("expected a single value, got %T", raw)
	}
	switch in.Type {
	case InputString, InputSecret:
		s, err := str()
		if err != nil {
			return nil, err
		}
		if s == "" && !in.Optional {
			return nil, errors.New("must not be empty")
		}
		if in.Min != nil && len(s) < *in.Min {
			return nil, fmt.Errorf("must be at least %s", plural(*in.Min, "character"))
		}
		if in.Max != nil && len(s) > *in.Max {
			return nil, fmt.Errorf("must be at most %s", plural(*in.Max, "character"))
		}
		if in.Pattern != "" && s != "" {
			re, err := regexp.Compile(in.Pattern)
			if err == nil && !re.MatchString(s) {
				if in.Type == InputSecret {
					return nil, fmt.Errorf("does not match %s", in.Pattern)
				}
				return nil, fmt.Errorf("%q does not match %s", s, in.Pattern)
			}
		}
		return s, nil
	case InputBool:
		switch x := raw.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(x) {
			case "true", "yes", "y", "on":
				return true, nil
			case "false", "no", "n", "off":
				return false, nil
			}
		}
		return nil, fmt.Errorf("expected true or false, got %v", raw)
	case InputInt:
		var n int64
		switch x := raw.(type) {
		case int64:
			n = x
		case int:
			n = int64(x)
		case string:
			v, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not an integer", x)
			}
			n = v
		default:
			return nil, fmt.Errorf("expected an integer, got %v", raw)
		}
		if in.Min != nil && n < int64(*in.Min) {
			return nil, fmt.Errorf("%d is below the minimum %d", n, *in.Min)
		}
		if in.Max != nil && n > int64(*in.Max) {
			return nil, fmt.Errorf("%d is above the maximum %d", n, *in.Max)
		}
		return n, nil
	case InputEnum:
		s, err := str()
		if err != nil {
			return nil, err
		}
		for _, o := range in.Options {
			if o == s {
				return s, nil
			}
		}
		return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(in.Options, ", "))
	case InputDuration:
		s, err := str()
		if err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (e.g. 30s, 5m)", s)
		}
		return d.String(), nil
	case InputNode:
		s, err := str()
		if err != nil {
			return nil, err
		}
		if err := checkNode(in, s, inv); err != nil {
			return nil, err
		}
		return s, nil
	case InputNodes:
		var names []string
		switch x := raw.(type) {
		case []any:
			for _, it := range x {
				s, ok := it.(string)
				if !ok {
					return nil, fmt.Errorf("each node must be a name, got %v", it)
				}
				names = append(names, s)
			}
		case []string:
			names = append(names, x...)
		case string:
			names = append(names, strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' })...)
		default:
			return nil, fmt.Errorf("expected a list of nodes, got %v", raw)
		}
		var out []string
		seen := map[string]bool{}
		for _, n := range names {
			members := []string{n}
			if inv != nil {
				if g := inv.Group(n); g != nil {
					members = g.Nodes
				}
			}
			for _, m := range members {
				if err := checkNode(in, m, inv); err != nil {
					return nil, err
				}
				if !seen[m] {
					seen[m] = true
					out = append(out, m)
				}
			}
		}
		if in.Min != nil && len(out) < *in.Min {
			return nil, fmt.Errorf("needs at least %s, got %d", plural(*in.Min, "node"), len(out))
		}
		if in.Max != nil && len(out) > *in.Max {
			return nil, fmt.Errorf("allows at most %s, got %d", plural(*in.Max, "node"), len(out))
		}
		if out == nil {
			out = []string{}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown input type %q", in.Type)
}

func checkNode(in *Input, name string, inv *Inventory) error {
	if inv == nil {
		return nil
	}
	n := inv.Node(name)
	if n == nil {
		return fmt.Errorf("unknown node %q%s", name, suggestName(name, nodeNames(inv)))
	}
	if in.Label != "" && !HasLabel(n, in.Label) {
		return fmt.Errorf("node %q does not carry label %s", name, in.Label)
	}
	return nil
}

// plural writes n and a noun, plural unless n is 1 or -1: "1 node", "3 nodes".
func plural(n int, noun string) string {
	if n == 1 || n == -1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// HasLabel reports whether a node carries a label given as "key" or "key=value".
func HasLabel(n *Node, sel string) bool {
	k, v, hasValue := strings.Cut(sel, "=")
	got, ok := n.Labels[k]
	return ok && (!hasValue || got == v)
}

// ErrNotDistinct is wrapped when a node or nodes input uses a node that a
// distinct_from input already chose.
var ErrNotDistinct = errors.New("node already chosen")

// takenNodes returns the nodes chosen by the inputs in in.DistinctFrom, in
// the order found, each with the input that chose it.
func takenNodes(in *Input, chosen map[string]any) (names []string, by map[string]string) {
	by = map[string]string{}
	for _, other := range in.DistinctFrom {
		switch v := chosen[other].(type) {
		case string:
			if v != "" && by[v] == "" {
				by[v] = other
				names = append(names, v)
			}
		case []string:
			for _, n := range v {
				if n != "" && by[n] == "" {
					by[n] = other
					names = append(names, n)
				}
			}
		}
	}
	return names, by
}

// NodeChoices returns the inventory nodes a node or nodes input may offer,
// in inventory order: those carrying its label, less the nodes already chosen
// by the inputs it must be distinct from (chosen maps input names to their
// values: a string for node, []string for nodes).
func NodeChoices(in *Input, inv *Inventory, chosen map[string]any) []string {
	if inv == nil {
		return nil
	}
	_, taken := takenNodes(in, chosen)
	var out []string
	for i := range inv.Nodes {
		n := &inv.Nodes[i]
		if in.Label != "" && !HasLabel(n, in.Label) {
			continue
		}
		if taken[n.Name] != "" {
			continue
		}
		out = append(out, n.Name)
	}
	return out
}

// CheckDistinct reports, wrapping ErrNotDistinct, a node of value (a string
// for a node input, []string for nodes) that an input named in
// in.DistinctFrom already chose.
func CheckDistinct(in *Input, value any, chosen map[string]any) error {
	_, taken := takenNodes(in, chosen)
	var vals []string
	switch v := value.(type) {
	case string:
		vals = []string{v}
	case []string:
		vals = v
	}
	for _, n := range vals {
		if other := taken[n]; other != "" {
			return fmt.Errorf("%w: %s is already chosen for %s; choose another node", ErrNotDistinct, n, other)
		}
	}
	return nil
}
