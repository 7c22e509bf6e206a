package runbooks

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Lint with an inventory (-i): a node field read through an input
// (nodes[inputs.failed].client) or through `target` (target.client) is
// checked on every node the input can choose or the step can run on, so a
// typo fails lint, not the run after its destructive steps.

// nodeLacks reports what of fields (the path after a node: host, api,
// vars.api, labels.role) node n does not have, written for a message.
func nodeLacks(n *Node, fields []string) (string, bool) {
	if len(fields) == 0 {
		return "", false
	}
	f := fields[0]
	if !nodeFields[f] {
		if _, ok := n.Vars[f]; !ok {
			return fmt.Sprintf("field or var %q", f), true
		}
		return "", false
	}
	if len(fields) < 2 {
		return "", false
	}
	var m map[string]string
	what := ""
	switch f {
	case "vars":
		m, what = n.Vars, "var"
	case "labels":
		m, what = n.Labels, "label"
	case "env":
		m, what = n.Env, "env"
	default:
		return "", false
	}
	if _, ok := m[fields[1]]; !ok {
		return fmt.Sprintf("%s %q", what, fields[1]), true
	}
	return "", false
}

// suggestField suggests a var of n close to the missing one.
func suggestField(n *Node, fields []string) string {
	if len(fields) == 0 {
		return ""
	}
	name := fields[0]
	m := n.Vars
	switch {
	case len(fields) >= 2 && name == "labels":
		name, m = fields[1], n.Labels
	case len(fields) >= 2 && name == "env":
		name, m = fields[1], n.Env
	case len(fields) >= 2 && name == "vars":
		name = fields[1]
	}
	return suggestName(name, slices.Sorted(maps.Keys(m)))
}

// inputNodes returns the nodes a node or nodes input can choose: those
// carrying its label, less the node of an earlier distinct_from input that
// can only be one node. ok is false when the input is not a node input.
func (v *validator) inputNodes(name string, depth int) ([]string, bool) {
	in := v.rb.Input(name)
	if in == nil || v.inv == nil || depth > len(v.rb.Inputs) || (in.Type != InputNode && in.Type != InputNodes) {
		return nil, false
	}
	taken := map[string]bool{}
	for _, other := range in.DistinctFrom {
		o := v.rb.Input(other)
		if o == nil || o.Type != InputNode || other == name {
			continue
		}
		if c, ok := v.inputNodes(other, depth+1); ok && len(c) == 1 {
			taken[c[0]] = true
		}
	}
	var out []string
	for i := range v.inv.Nodes {
		n := &v.inv.Nodes[i]
		if (in.Label == "" || HasLabel(n, in.Label)) && !taken[n.Name] {
			out = append(out, n.Name)
		}
	}
	return out, true
}

// checkNodes reports the nodes among names that lack fields, as one
// diagnostic naming where the nodes come from.
func (v *validator) checkNodes(names []string, fields []string, written, from string, at func(string, ...any)) {
	var lacking []string
	missing, hint := "", ""
	for _, name := range names {
		n := v.inv.Node(name)
		if n == nil {
			continue
		}
		if m, ok := nodeLacks(n, fields); ok {
			if missing == "" {
				missing, hint = m, suggestField(n, fields)
			}
			lacking = append(lacking, name)
		}
	}
	if len(lacking) == 0 {
		return
	}
	node := "node " + quoteList(lacking) + " has"
	if len(lacking) > 1 {
		node = "nodes " + quoteList(lacking) + " have"
	}
	at("%s: %s no %s%s (%s)", written, node, missing, hint, from)
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// indexedNodeRef checks nodes[inputs.x].field on every node inputs.x can
// choose (inputs.x[0] for a nodes input likewise).
func (v *validator) indexedNodeRef(r Ref, at func(string, ...any)) {
	if len(r.Index) < 2 || r.Index[0] != "inputs" || len(r.Rest) == 0 {
		return
	}
	name := r.Index[1]
	in := v.rb.Input(name)
	if in == nil || (in.Type == InputNodes && len(r.Index) < 3) {
		return
	}
	nodes, ok := v.inputNodes(name, 0)
	if !ok {
		return
	}
	written := "nodes[" + pathText(r.Index) + "]." + strings.Join(r.Rest, ".")
	v.checkNodes(nodes, r.Rest, written, "inputs."+name+" can choose "+strings.Join(nodes, ", "), at)
}

// targetRef checks target.field on every node the step can run on, as far
// as its on: is known before the run: node and group names, and node or
// nodes inputs (their possible nodes).
func (v *validator) targetRef(s *Step, r Ref, at func(string, ...any)) {
	fields := r.Path[1:]
	if len(fields) == 0 {
		return
	}
	var nodes []string
	seen := map[string]bool{}
	add := func(names ...string) {
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				nodes = append(nodes, n)
			}
		}
	}
	for _, on := range s.On {
		t, err := ParseTemplate(on)
		if err != nil {
			continue
		}
		if t.IsStatic() {
			if g := v.inv.Group(on); g != nil {
				add(g.Nodes...)
			} else if v.inv.Node(on) != nil {
				add(on)
			}
			continue
		}
		refs := t.Refs()
		if len(t.parts) != 1 || len(refs) != 1 || refs[0].Dynamic || len(refs[0].Path) < 2 || refs[0].Path[0] != "inputs" {
			continue // known only at run time
		}
		if c, ok := v.inputNodes(refs[0].Path[1], 0); ok {
			add(c...)
		}
	}
	written := "target." + strings.Join(fields, ".")
	v.checkNodes(nodes, fields, written, "the step runs on "+strings.Join(nodes, ", "), at)
}

// pathText writes a path as in a template: inputs.members[0].
func pathText(path []string) string {
	var b strings.Builder
	for i, p := range path {
		switch {
		case p != "" && strings.Trim(p, "0123456789") == "":
			b.WriteString("[" + p + "]")
		case i > 0:
			b.WriteString("." + p)
		default:
			b.WriteString(p)
		}
	}
	return b.String()
}

// locate finds needle in the runbook's source at or after p (within the
// next lines a field can span) and returns where it starts, so a Jinja
// statement in a block scalar is reported at its own line and column. It
// returns p when the text is not found as written (an escaped string).
func (v *validator) locate(p Pos, needle string) Pos {
	if needle == "" || p.Line == 0 || len(v.rb.Source) == 0 {
		return p
	}
	lines := strings.Split(string(v.rb.Source), "\n")
	for i := p.Line - 1; i < len(lines) && i < p.Line-1+maxFieldLines; i++ {
		line := lines[i]
		from := 0
		if i == p.Line-1 {
			// p.Col counts characters from 1; skip what precedes the field.
			from = len(string([]rune(line)[:min(max(p.Col-1, 0), len([]rune(line)))]))
		}
		if j := strings.Index(line[from:], needle); j >= 0 {
			return Pos{Line: i + 1, Col: len([]rune(line[:from+j])) + 1}
		}
	}
	return p
}

// maxFieldLines bounds how far locate looks below a field's start.
const maxFieldLines = 500
