package runbooks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// decodeRunbook parses and decodes a runbook, collecting decode problems in
// the returned diags without stopping.
func decodeRunbook(file string, src []byte) (*Runbook, *diags, error) {
	root, err := parseYAML(file, src)
	if err != nil {
		return nil, nil, err
	}
	d := &diags{file: file}
	rb := &Runbook{File: file, Source: src, SHA256: digest(src)}
	(&decoder{d: d}).decode(root, reflect.ValueOf(rb).Elem(), "runbook")
	return rb, d, nil
}

// ParseRunbook decodes a runbook without cross-checking it (no kinds, no
// inventory). Use Validate, or LoadRunbook which does both.
func ParseRunbook(file string, src []byte) (*Runbook, error) {
	rb, d, err := decodeRunbook(file, src)
	if err != nil {
		return nil, err
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return rb, nil
}

// LoadRunbook decodes and validates a runbook. inv may be nil: node names are
// then not checked. Every problem is returned at once as Diagnostics.
func LoadRunbook(file string, src []byte, cat KindCatalog, inv *Inventory) (*Runbook, error) {
	rb, d, err := decodeRunbook(file, src)
	if err != nil {
		return nil, err
	}
	// Validate what decoded too, so one lint shows every problem at once.
	v := &validator{d: d, rb: rb, cat: cat, inv: inv, stepIndex: map[string]int{}}
	v.inputs()
	v.steps()
	v.rto()
	if err := dedupe(d).err(); err != nil {
		return nil, err
	}
	rb.Warnings = d.warnings()
	return rb, nil
}

// dedupe drops repeated diagnostics (same position and message).
func dedupe(d *diags) *diags {
	seen := map[Diagnostic]bool{}
	out := d.list[:0]
	for _, x := range d.list {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	d.list = out
	return d
}

// ParseInventory decodes and validates an inventory.
func ParseInventory(file string, src []byte) (*Inventory, error) {
	root, err := parseYAML(file, src)
	if err != nil {
		return nil, err
	}
	d := &diags{file: file}
	inv := &Inventory{File: file, Source: src, SHA256: digest(src)}
	(&decoder{d: d}).decode(root, reflect.ValueOf(inv).Elem(), "inventory")
	if err := d.err(); err != nil {
		return nil, err
	}
	validateInventory(d, inv)
	return inv, d.err()
}

func validateInventory(d *diags, inv *Inventory) {
	names := map[string]Pos{}
	for _, n := range inv.Nodes {
		if p, dup := names[n.Name]; dup {
			d.add(n.At("name"), "duplicate node %q (first at line %d)", n.Name, p.Line)
			continue
		}
		names[n.Name] = n.At("name")
		if (n.Transport == "" || n.Transport == TransportSSH) && n.Host == "" {
			d.add(n.Pos, "node %q: missing host (required for ssh transport)", n.Name)
		}
		if n.Port < 0 || n.Port > 65535 {
			d.add(n.At("port"), "node %q: port %d out of range", n.Name, n.Port)
		}
	}
	for _, g := range inv.Groups {
		if _, clash := names[g.Name]; clash {
			d.add(g.Pos, "group %q has the same name as a node", g.Name)
		}
		for _, m := range g.Nodes {
			if _, ok := names[m]; !ok {
				d.add(g.At("nodes"), "group %q: unknown node %q%s", g.Name, m, suggestName(m, nodeNames(inv)))
			}
		}
		if len(g.Nodes) == 0 {
			d.add(g.Pos, "group %q has no nodes", g.Name)
		}
	}
}

func nodeNames(inv *Inventory) []string {
	out := make([]string, 0, len(inv.Nodes)+len(inv.Groups))
	for _, n := range inv.Nodes {
		out = append(out, n.Name)
	}
	for _, g := range inv.Groups {
		out = append(out, g.Name)
	}
	return out
}

func suggestName(name string, names []string) string {
	for _, n := range names {
		if editDistance(name, n) <= 2 {
			return fmt.Sprintf(" (did you mean %q?)", n)
		}
	}
	return ""
}

// Validate cross-checks a decoded runbook: unique ids, known kinds and their
// parameters, every template reference, targets and secrets.
func Validate(rb *Runbook, cat KindCatalog, inv *Inventory) error {
	v := &validator{d: &diags{file: rb.File}, rb: rb, cat: cat, inv: inv, stepIndex: map[string]int{}}
	v.inputs()
	v.steps()
	v.rto()
	dedupe(v.d)
	rb.Warnings = v.d.warnings()
	return v.d.err()
}

type validator struct {
	d         *diags
	rb        *Runbook
	cat       KindCatalog
	inv       *Inventory
	stepIndex map[string]int
	// usedOutputs: step id → its outputs that later steps read.
	usedOutputs map[string][]string
}

// rto checks the budget: a written rto: is more than 0.
func (v *validator) rto() {
	if v.rb.Has("rto") && v.rb.RTO <= 0 {
		v.d.add(v.rb.At("rto"), "rto: must be more than 0 (omit it for no budget)")
	}
}

func (v *validator) inputs() {
	order := map[string]int{}
	for i, in := range v.rb.Inputs {
		if _, dup := order[in.Name]; !dup {
			order[in.Name] = i
		}
	}
	for i, in := range v.rb.Inputs {
		v.distinctFrom(i, &in, order)
		if !regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`).MatchString(in.Name) {
			v.d.add(in.Pos, "input name %q: use letters, digits and _ (it is used as inputs.%s)", in.Name, in.Name)
		}
		if in.Type == InputEnum && len(in.Options) == 0 {
			v.d.add(in.Pos, "input %q: an enum needs options", in.Name)
		}
		if in.Type != InputEnum && len(in.Options) > 0 {
			v.d.add(in.At("options"), "input %q: options only apply to enum inputs", in.Name)
		}
		if in.Pattern != "" {
			if _, err := regexp.Compile(in.Pattern); err != nil {
				v.d.add(in.At("pattern"), "input %q: bad pattern: %v", in.Name, err)
			}
		}
		if in.Min != nil && in.Max != nil && *in.Min > *in.Max {
			v.d.add(in.At("min"), "input %q: min %d is above max %d", in.Name, *in.Min, *in.Max)
		}
		if in.Type == InputSecret && in.Default != nil {
			v.d.add(in.At("default"), "input %q: a secret cannot have a default written in the runbook", in.Name)
		}
		if in.Default != nil && in.Type != InputSecret {
			if _, err := CoerceInput(&in, in.Default, v.inv); err != nil {
				v.d.add(in.At("default"), "input %q: default: %v", in.Name, err)
			}
		}
	}
}

// distinctFrom checks an input's distinct_from: each name is an earlier
// node or nodes input, and the input itself is a node or nodes input.
func (v *validator) distinctFrom(i int, in *Input, order map[string]int) {
	if len(in.DistinctFrom) == 0 {
		return
	}
	p := in.At("distinct_from")
	if in.Type != InputNode && in.Type != InputNodes {
		v.d.add(p, "input %q: distinct_from only applies to node and nodes inputs, not %s", in.Name, in.Type)
		return
	}
	for _, other := range in.DistinctFrom {
		j, ok := order[other]
		switch {
		case !ok:
			v.d.add(p, "input %q: distinct_from: unknown input %q%s", in.Name, other, suggestName(other, inputNames(v.rb)))
		case other == in.Name:
			v.d.add(p, "input %q: distinct_from names the input itself", in.Name)
		case j > i:
			v.d.add(p, "input %q: distinct_from: input %q is declared later; declare it before %q (inputs are asked in order)", in.Name, other, in.Name)
		default:
			if t := v.rb.Inputs[j].Type; t != InputNode && t != InputNodes {
				v.d.add(p, "input %q: distinct_from: input %q is a %s input, not node or nodes", in.Name, other, t)
			}
		}
	}
}

func (v *validator) steps() {
	if len(v.rb.Steps) == 0 {
		v.d.add(v.rb.At("steps"), "a runbook needs at least one step")
	}
	for i := range v.rb.Steps {
		s := &v.rb.Steps[i]
		if s.ID == "" {
			s.ID = fmt.Sprintf("#%d", i+1) // reported as a missing field; named for the messages below
		}
		if j, dup := v.stepIndex[s.ID]; dup {
			v.d.add(s.At("id"), "duplicate step id %q (first at line %d)", s.ID, v.rb.Steps[j].At("id").Line)
		} else {
			v.stepIndex[s.ID] = i
		}
		v.step(i, s)
	}
	v.resumeWarnings()
}

// resumeWarnings flags steps whose declared outputs later steps read but
// that have no check: and are not idempotent: if a run is interrupted during
// one, a resume cannot restore its outputs by itself. Only for a runbook
// without errors: it is advice on a runbook that would run.
func (v *validator) resumeWarnings() {
	if v.d.err() != nil {
		return
	}
	for i := range v.rb.Steps {
		s := &v.rb.Steps[i]
		used := v.usedOutputs[s.ID]
		if len(used) == 0 || len(s.Outputs) == 0 || s.Check != "" {
			continue
		}
		if info, ok := v.cat.Kind(s.Run); !ok || info.Idempotent {
			continue
		}
		v.d.warn(s.At("outputs"), "step %q: later steps use its outputs (%s) and it has no check:; if a run is interrupted during it, "+
			"resume cannot restore them: add a check: that exits 0 and prints them (key=value) when the step took effect, "+
			"or they must be given by hand on resume (--skip %s --set-output %s.%s=VALUE)", s.ID, strings.Join(used, ", "), s.ID, s.ID, used[0])
	}
}

func (v *validator) useOutput(id, name string) {
	if v.usedOutputs == nil {
		v.usedOutputs = map[string][]string{}
	}
	if !slices.Contains(v.usedOutputs[id], name) {
		v.usedOutputs[id] = append(v.usedOutputs[id], name)
	}
}

func (v *validator) step(i int, s *Step) {
	info, ok := v.cat.Kind(s.Run)
	if s.Run == "" {
		return // reported as a missing field
	}
	if !ok {
		v.d.add(s.At("run"), "step %q: unknown step kind %q%s", s.ID, s.Run, suggestName(s.Run, v.cat.KindNames()))
	} else {
		if s.With.node != nil || info.Params != nil {
			schema := info.Params
			if schema == nil {
				schema = map[string]any{"type": "object", "additionalProperties": false}
			}
			if s.With.node != nil {
				checkSchema(v.d, s.With.node, schema, fmt.Sprintf("step %q: with", s.ID))
			} else if req, ok := schema["required"].([]any); ok && len(req) > 0 {
				v.d.add(s.Pos, "step %q: %s needs `with:` parameters %v", s.ID, s.Run, req)
			}
		}
		switch info.Targets {
		case TargetsRequired:
			if len(s.On) == 0 && s.ForEach == "" {
				v.d.add(s.Pos, "step %q: %s runs on nodes: add `on:` with a node, group or input", s.ID, s.Run)
			}
		case TargetsNone:
			if len(s.On) > 0 {
				v.d.add(s.At("on"), "step %q: %s runs on no node; remove `on:`", s.ID, s.Run)
			}
		}
		if len(s.Outputs) > 0 && !info.DeclaredOutputs {
			v.d.add(s.At("outputs"), "step %q: %s has fixed outputs; `outputs:` is only for shell-like steps", s.ID, s.Run)
		}
		if s.Check != "" && info.Idempotent {
			v.d.add(s.At("check"), "step %q: %s is idempotent and re-runs on resume; `check:` is not used", s.ID, s.Run)
		}
	}
	seen := map[string]bool{}
	for _, o := range s.Outputs {
		if seen[o.Name] {
			v.d.add(o.Pos, "step %q: duplicate output %q", s.ID, o.Name)
		}
		seen[o.Name] = true
	}
	if s.Serial < 0 || s.Retries < 0 {
		v.d.add(s.Pos, "step %q: serial and retries cannot be negative", s.ID)
	}
	if s.Danger && info.Targets == TargetsNone {
		v.d.add(s.At("danger"), "step %q: danger needs a target node to confirm by name", s.ID)
	}
	if ok && info.PollsKind {
		v.polled(s)
	}
	v.confirm(i, s)
	v.approvals(s)
	hasTarget := len(s.On) > 0 || (s.ForEach != "" && (!ok || info.Targets != TargetsNone))
	v.forEach(i, s)
	v.until(i, s, hasTarget)
	// Targets.
	for _, on := range s.On {
		t, err := ParseTemplate(on)
		if err != nil {
			v.d.add(s.At("on"), "step %q: on: %v", s.ID, err)
			continue
		}
		if t.IsStatic() {
			if v.inv != nil && v.inv.Node(on) == nil && v.inv.Group(on) == nil {
				v.d.add(s.At("on"), "step %q: unknown node or group %q%s", s.ID, on, suggestName(on, nodeNames(v.inv)))
			}
			continue
		}
		for _, r := range t.Refs() {
			v.ref(i, s, r, s.At("on"), false)
			if len(r.Path) == 2 && r.Path[0] == "inputs" && !r.Dynamic {
				if in := v.rb.Input(r.Path[1]); in != nil && in.Type != InputNode && in.Type != InputNodes && in.Type != InputString {
					v.d.add(s.At("on"), "step %q: on: input %q is a %s, not a node", s.ID, in.Name, in.Type)
				}
			}
		}
	}
	// Templates in strings.
	v.guard(i, s, hasTarget)
	v.templ(i, s, s.Title, s.At("title"), hasTarget, "title")
	if n := s.raw["check"]; n != nil && n.kind == kindScalar && n.value == s.Check {
		for _, c := range n.chunks() {
			v.command(i, s, c.text, c.pos, hasTarget, "check")
		}
	} else {
		v.command(i, s, s.Check, s.At("check"), hasTarget, "check")
	}
	if s.With.node != nil {
		pk := paramKinds{cmd: map[string]bool{}, shown: map[string]bool{}}
		for _, p := range info.CommandParams {
			pk.cmd[p] = true
		}
		for _, p := range info.ShownParams {
			pk.shown[p] = true
		}
		v.walkParams(i, s, s.With.node, hasTarget, "with", pk)
	}
}

// paramKinds says which of a kind's parameters are command lines and which
// are shown to the operator.
type paramKinds struct {
	cmd, shown map[string]bool
}

func (v *validator) walkParams(i int, s *Step, n *ynode, hasTarget bool, what string, pk paramKinds) {
	switch n.kind {
	case kindScalar:
		if n.stype == scalarString {
			name := strings.TrimPrefix(what, "with.")
			// A block scalar is checked piece by piece, so a problem is
			// reported at its own line.
			for _, c := range n.chunks() {
				switch {
				case pk.cmd[name]:
					v.command(i, s, c.text, c.pos, hasTarget, what)
				case pk.shown[name]:
					for _, r := range v.templ(i, s, c.text, c.pos, hasTarget, what) {
						if v.refIsSecret(r) {
							v.d.warn(c.pos, "step %q: %s: secret %s is shown to the operator (masked, so it says nothing; or in clear on a screen others see); leave it out", s.ID, what, r)
						}
					}
				default:
					v.templ(i, s, c.text, c.pos, hasTarget, what)
				}
			}
		}
	case kindMap:
		for j, k := range n.keys {
			v.walkParams(i, s, n.vals[j], hasTarget, what+"."+k.value, pk)
		}
	case kindSeq:
		for j, it := range n.items {
			v.walkParams(i, s, it, hasTarget, fmt.Sprintf("%s[%d]", what, j), pk)
		}
	}
}

// guard checks `when:`: one expression whose value is a boolean.
func (v *validator) guard(i int, s *Step, hasTarget bool) {
	if !s.Has("when") {
		return
	}
	p := s.At("when")
	t, err := CheckGuard(s.When, v.typeOf)
	if err != nil {
		if st, ok := jinjaStatement(s.When); ok {
			p = v.locate(p, st)
		}
		v.d.add(p, "step %q: when: %v", s.ID, err)
	}
	if t != nil {
		for _, r := range t.Refs() {
			if len(r.Path) > 0 && (r.Path[0] == "target" || r.Path[0] == "item") {
				v.d.add(p, "step %q: when: is evaluated once for the step, before its targets, so it cannot use %s", s.ID, r.Path[0])
				continue
			}
			v.ref(i, s, r, p, hasTarget)
		}
	}
}

// confirm checks a danger step's confirm: the word is one word, the same for
// every target (no `target`), never a secret; the reason names no secret.
func (v *validator) confirm(i int, s *Step) {
	c := s.Confirm
	if c == nil {
		return
	}
	if !s.Danger {
		v.d.warn(s.At("confirm"), "step %q: confirm: only applies to danger steps (add danger: true, or remove confirm:)", s.ID)
	}
	p := c.At("word")
	if c.Has("word") && strings.TrimSpace(c.Word) == "" {
		v.d.add(p, "step %q: confirm.word is empty: name what the step destroys, e.g. \"{{ inputs.failed }}\"", s.ID)
	} else if c.Word != "" {
		t, err := ParseTemplate(c.Word)
		if err != nil {
			v.d.add(p, "step %q: confirm.word: %v", s.ID, err)
		} else {
			if t.IsStatic() && strings.ContainsFunc(c.Word, unicode.IsSpace) {
				v.d.add(p, "step %q: confirm.word %q is not one word (no spaces: the operator types it exactly)", s.ID, c.Word)
			}
			for _, r := range t.Refs() {
				if r.Path[0] == "target" || r.Path[0] == "item" {
					v.d.add(p, "step %q: confirm.word: the word is the same for every target, so it cannot use %s; name what is destroyed, e.g. {{ inputs.failed }}", s.ID, r.Path[0])
					continue
				}
				v.ref(i, s, r, p, false)
				if v.refIsSecret(r) {
					v.d.add(p, "step %q: confirm.word: secret %s would be shown on screen and typed; name the node or thing destroyed instead", s.ID, r)
				}
			}
			if ty, err := t.Type(v.typeOf); err != nil {
				v.d.add(p, "step %q: confirm.word: %v", s.ID, err)
			} else if ty == TypeList {
				v.d.add(p, "step %q: confirm.word is a list; the operator types one word: name one thing, or join them (x | join(\"-\"))", s.ID)
			}
		}
	}
	rp := c.At("reason")
	for _, r := range v.templ(i, s, c.Reason, rp, true, "confirm.reason") {
		if r.Path[0] == "target" || r.Path[0] == "item" {
			v.d.add(rp, "step %q: confirm.reason is shown once for all targets, so it cannot use %s", s.ID, r.Path[0])
		}
		if v.refIsSecret(r) {
			v.d.warn(rp, "step %q: confirm.reason: secret %s is shown to the operator in the danger box; leave it out", s.ID, r)
		}
	}
}

// approvals checks a step's two-person rule: only on danger steps, a
// positive count no larger than the named approvers, principals that are
// literal names.
func (v *validator) approvals(s *Step) {
	if !s.Has("approvals") && !s.Has("approvers") {
		return
	}
	at := s.At("approvals")
	if !s.Has("approvals") {
		at = s.At("approvers")
	}
	if !s.Danger {
		v.d.add(at, "step %q: approvals: and approvers: only apply to danger steps (add danger: true)", s.ID)
	}
	if s.Has("approvals") && s.Approvals < 1 {
		v.d.add(s.At("approvals"), "step %q: approvals must be at least 1 (omit it for no approval)", s.ID)
	}
	seen := map[string]bool{}
	for _, p := range s.Approvers {
		switch {
		case strings.TrimSpace(p) == "" || strings.ContainsFunc(p, unicode.IsSpace):
			v.d.add(s.At("approvers"), "step %q: approver %q: a principal is one word (as in the allowed-signers file)", s.ID, p)
		case strings.ContainsAny(p, "*?!,\"{}"):
			v.d.add(s.At("approvers"), "step %q: approver %q: name a person (a principal of the allowed-signers file), not a pattern or template", s.ID, p)
		case seen[p]:
			v.d.add(s.At("approvers"), "step %q: approver %q is listed twice", s.ID, p)
		}
		seen[p] = true
	}
	if len(s.Approvers) > 0 && s.Approvals > len(s.Approvers) {
		v.d.add(s.At("approvals"), "step %q: approvals: %d needs at least %d approvers, only %d listed", s.ID, s.Approvals, s.Approvals, len(s.Approvers))
	}
}

// polled checks a polling step (wait): the kind it polls exists, gets valid
// parameters, and reports every output its expect: names.
func (v *validator) polled(s *Step) {
	n := s.With.node
	kn := n.get("kind")
	if kn == nil || kn.kind != kindScalar || strings.Contains(kn.value, "{{") {
		return
	}
	inner, ok := v.cat.Kind(kn.value)
	if !ok {
		v.d.add(kn.pos, "step %q: with.kind: unknown step kind %q%s", s.ID, kn.value, suggestName(kn.value, v.cat.KindNames()))
		return
	}
	if w := n.get("with"); w != nil && w.kind != kindNull {
		schema := inner.Params
		if schema == nil {
			schema = map[string]any{"type": "object", "additionalProperties": false}
		}
		checkSchema(v.d, w, schema, fmt.Sprintf("step %q: with.with (%s)", s.ID, inner.Name))
	} else if req, ok := inner.Params["required"].([]any); ok && len(req) > 0 {
		v.d.add(kn.pos, "step %q: %s needs parameters %v under with.with", s.ID, inner.Name, req)
	}
	exp := n.get("expect")
	if exp == nil || exp.kind != kindMap || inner.DeclaredOutputs {
		return
	}
	var names []string
	for _, o := range inner.Outputs {
		names = append(names, o.Name)
	}
	for _, k := range exp.keys {
		if !slices.Contains(names, k.value) {
			v.d.add(k.pos, "step %q: expect: %s reports no %q%s (it reports %s)", s.ID, inner.Name, k.value, suggestName(k.value, names), strings.Join(names, ", "))
		}
	}
}

// typeOf gives the static type of a path a template reads.
func (v *validator) typeOf(r Ref) Type {
	if len(r.Path) == 0 {
		return TypeUnknown
	}
	switch r.Path[0] {
	case "inputs":
		if len(r.Path) < 2 {
			return TypeUnknown
		}
		in := v.rb.Input(r.Path[1])
		if in == nil {
			return TypeUnknown
		}
		if len(r.Path) > 2 || r.Dynamic {
			if in.Type == InputNodes {
				return TypeString // one element
			}
			return TypeUnknown
		}
		switch in.Type {
		case InputBool:
			return TypeBool
		case InputInt:
			return TypeInt
		case InputNodes:
			return TypeList
		}
		return TypeString
	case "steps":
		if len(r.Path) >= 3 && r.Path[2] == "status" {
			return TypeString
		}
		if slices.Contains(r.Path, "outputs") || slices.Contains(r.Rest, "outputs") {
			return TypeText
		}
	case "groups":
		switch {
		case r.Dynamic || len(r.Path) > 2:
			return TypeString
		case len(r.Path) == 2:
			return TypeList
		}
		return TypeUnknown
	case "outputs":
		return TypeText
	case "nodes", "target", "item":
		fields := r.Path[1:]
		if r.Path[0] == "nodes" {
			if r.Dynamic && len(r.Path) == 1 {
				fields = r.Rest
			} else if !r.Dynamic && len(r.Path) >= 2 {
				fields = r.Path[2:]
			} else {
				return TypeUnknown
			}
		} else if r.Dynamic {
			return TypeUnknown
		}
		if len(fields) == 0 {
			return TypeString
		}
		switch fields[0] {
		case "name", "host", "user", "transport":
			return TypeString
		case "port":
			return TypeInt
		case "labels", "vars", "env":
			if len(fields) == 1 {
				return TypeString
			}
			return TypeText
		case "agent":
			return TypeUnknown
		}
		return TypeText // a var
	case "run":
		return TypeString
	}
	return TypeUnknown
}

// command checks a template that becomes a command line on a node: besides
// the references, it must not carry a secret (visible in ps on the node).
func (v *validator) command(i int, s *Step, text string, p Pos, hasTarget bool, what string) {
	for _, r := range v.templ(i, s, text, p, hasTarget, what) {
		if v.refIsSecret(r) {
			v.d.add(p, "step %q: %s: secret %s would appear on the node's command line (visible in ps); pass it in with.env and use $NAME", s.ID, what, r)
		}
	}
	if t, err := ParseTemplate(text); err == nil {
		for _, q := range t.QuotedInQuotes() {
			v.d.warn(p, "step %q: %s: %s is placed inside quotes: quote already makes one shell word, and inside \"…\" its quotes are literal and $(…) in the value runs (inside '…' they end the quoting); remove the quotes around it", s.ID, what, q)
		}
	}
}

func (v *validator) templ(i int, s *Step, text string, p Pos, hasTarget bool, what string) []Ref {
	if st, ok := jinjaStatement(text); ok {
		// Reported where the statement is, not only where the field starts.
		v.d.add(v.locate(p, st), "step %q: %s: %v", s.ID, what, checkStatements(text))
		return nil
	}
	if !strings.Contains(text, "{{") {
		return nil
	}
	t, err := ParseTemplate(text)
	if err != nil {
		v.d.add(p, "step %q: %s: %v", s.ID, what, err)
		return nil
	}
	refs := t.Refs()
	for _, r := range refs {
		v.ref(i, s, r, p, hasTarget)
	}
	v.groupFields(s, t, p)
	if _, err := t.Type(v.typeOf); err != nil {
		v.d.add(p, "step %q: %s: %v", s.ID, what, err)
	}
	return refs
}

func (v *validator) refIsSecret(r Ref) bool {
	switch {
	case len(r.Path) >= 2 && r.Path[0] == "inputs":
		in := v.rb.Input(r.Path[1])
		return in != nil && in.Type == InputSecret
	case len(r.Path) >= 4 && r.Path[0] == "steps" && r.Path[2] == "outputs":
		return v.outputSecret(r.Path[1], r.Path[3])
	}
	return false
}

func (v *validator) outputSecret(stepID, name string) bool {
	st := v.rb.Step(stepID)
	if st == nil {
		return false
	}
	for _, o := range st.Outputs {
		if o.Name == name {
			return o.Secret
		}
	}
	if info, ok := v.cat.Kind(st.Run); ok {
		for _, o := range info.Outputs {
			if o.Name == name {
				return o.Secret
			}
		}
	}
	return false
}

// nodeFields are the inventory fields templates may read from a node.
var nodeFields = map[string]bool{"name": true, "host": true, "port": true, "user": true, "transport": true, "labels": true, "vars": true, "env": true, "agent": true}

func (v *validator) ref(i int, s *Step, r Ref, p Pos, hasTarget bool) {
	if len(r.Path) == 0 {
		return
	}
	at := func(format string, args ...any) {
		v.d.add(p, "step %q: "+format, append([]any{s.ID}, args...)...)
	}
	switch r.Path[0] {
	case "inputs":
		if len(r.Path) < 2 {
			if !r.Dynamic {
				at("`inputs` needs a name: inputs.<name>")
			}
			return
		}
		if v.rb.Input(r.Path[1]) == nil {
			at("unknown input %q%s", r.Path[1], suggestName(r.Path[1], inputNames(v.rb)))
		}
	case "steps":
		if len(r.Path) < 2 {
			return
		}
		id := r.Path[1]
		j, ok := v.stepIndex[id]
		if !ok {
			if v.rb.Step(id) != nil {
				at("forward reference to step %q, which runs later; a step can only use earlier steps' outputs", id)
			} else {
				at("unknown step %q%s", id, suggestName(id, stepIDs(v.rb)))
			}
			return
		}
		if j == i {
			at("step refers to itself (cycle): %s", r)
			return
		}
		rest := r.Path[2:]
		switch {
		case len(rest) == 0:
		case rest[0] == "status":
		case rest[0] == "outputs" && len(rest) >= 2:
			if !v.hasOutput(&v.rb.Steps[j], rest[1]) {
				at("step %q has no output %q%s", id, rest[1], suggestName(rest[1], v.outputNames(&v.rb.Steps[j])))
			} else {
				v.useOutput(id, rest[1])
			}
		case (rest[0] == "targets" || rest[0] == "items") && len(rest) >= 4 && rest[2] == "outputs":
			if !v.hasOutput(&v.rb.Steps[j], rest[3]) {
				at("step %q has no output %q", id, rest[3])
			} else {
				v.useOutput(id, rest[3])
			}
		case (rest[0] == "targets" || rest[0] == "items") && r.Dynamic:
		default:
			at("unknown reference %s (use steps.%s.outputs.<name>, steps.%s.status, steps.%s.targets.<node>.outputs.<name> or steps.%s.items.<item>.outputs.<name>)", r, id, id, id, id)
		}
	case "nodes":
		if v.inv == nil {
			return
		}
		if r.Dynamic && len(r.Path) == 1 {
			v.indexedNodeRef(r, at) // nodes[inputs.x].field (lintinv.go)
			return
		}
		if len(r.Path) < 2 {
			return
		}
		n := v.inv.Node(r.Path[1])
		if n == nil {
			at("unknown node %q%s", r.Path[1], suggestName(r.Path[1], nodeNames(v.inv)))
			return
		}
		if missing, ok := nodeLacks(n, r.Path[2:]); ok {
			at("node %q has no %s%s", n.Name, missing, suggestField(n, r.Path[2:]))
		}
	case "target":
		if !hasTarget {
			at("`target` is only defined in steps that run on nodes (add `on:`)")
			return
		}
		if v.inv != nil && !r.Dynamic {
			v.targetRef(s, r, at) // target.field on every target (lintinv.go)
		}
	case "item":
		if s.ForEach == "" {
			at("`item` is only defined in a step with for_each:")
			return
		}
		if g := v.forEachGroup(s); g != nil && len(r.Path) >= 2 && !r.Dynamic {
			for _, m := range g.Nodes {
				if n := v.inv.Node(m); n != nil && !NodeHasField(n, strings.Join(r.Path[1:], ".")) {
					at("%s: node %q of group %q (the for_each items) has no field or var %q", r, m, g.Name, strings.Join(r.Path[1:], "."))
				}
			}
		}
	case "groups":
		if len(r.Path) < 2 {
			at("`groups` needs a name: groups.<name>")
			return
		}
		if v.inv != nil && v.inv.Group(r.Path[1]) == nil {
			at("unknown group %q%s", r.Path[1], suggestName(r.Path[1], groupNames(v.inv)))
		}
	case "outputs":
		at("outputs.%s: a step's own outputs are only read in its until: (elsewhere use steps.<id>.outputs.<name>)", strings.Join(r.Path[1:], "."))
	case "run":
		if len(r.Path) >= 2 && r.Path[1] != "id" && r.Path[1] != "runbook" && r.Path[1] != "mode" {
			at("unknown reference %s (run.id, run.runbook, run.mode)", r)
		}
	default:
		hint := ""
		if v.rb.Input(r.Path[0]) != nil {
			hint = fmt.Sprintf(" (did you mean inputs.%s?)", r.Path[0])
		}
		at("unknown reference %q%s (templates can read inputs, steps, nodes, target, run)", r.Path[0], hint)
	}
}

func (v *validator) hasOutput(st *Step, name string) bool {
	for _, o := range v.outputNames(st) {
		if o == name {
			return true
		}
	}
	return false
}

func (v *validator) outputNames(st *Step) []string {
	var out []string
	for _, o := range st.Outputs {
		out = append(out, o.Name)
	}
	if info, ok := v.cat.Kind(st.Run); ok {
		for _, o := range info.Outputs {
			out = append(out, o.Name)
		}
	}
	return out
}

func inputNames(rb *Runbook) []string {
	var out []string
	for _, in := range rb.Inputs {
		out = append(out, in.Name)
	}
	return out
}

func stepIDs(rb *Runbook) []string {
	var out []string
	for _, s := range rb.Steps {
		out = append(out, s.ID)
	}
	return out
}

func groupNames(inv *Inventory) []string {
	var out []string
	for _, g := range inv.Groups {
		out = append(out, g.Name)
	}
	return out
}

// forEach checks for_each: a group name, or a template whose value is a
// list, that reads no secret (items are recorded and shown).
func (v *validator) forEach(i int, s *Step) {
	if !s.Has("for_each") {
		return
	}
	p := s.At("for_each")
	src := strings.TrimSpace(s.ForEach)
	if src == "" {
		v.d.add(p, "step %q: for_each: is empty: name a group or write a list such as \"{{ inputs.joiners }}\"", s.ID)
		return
	}
	if !strings.Contains(src, "{{") {
		if v.inv != nil && v.inv.Group(src) == nil {
			v.d.add(p, "step %q: for_each: unknown group %q%s (or write a list template such as \"{{ inputs.joiners }}\")", s.ID, src, suggestName(src, groupNames(v.inv)))
		}
		return
	}
	t, err := ParseTemplate(src)
	if err != nil {
		v.d.add(p, "step %q: for_each: %v", s.ID, err)
		return
	}
	for _, r := range t.Refs() {
		if len(r.Path) > 0 && (r.Path[0] == "item" || r.Path[0] == "target") {
			v.d.add(p, "step %q: for_each: gives the items, so it cannot use %s", s.ID, r.Path[0])
			continue
		}
		v.ref(i, s, r, p, false)
		if v.refIsSecret(r) {
			v.d.add(p, "step %q: for_each: secret %s would name executions in the record and on screen; iterate over something that is not secret", s.ID, r)
		}
	}
	ty, err := t.Type(v.typeOf)
	switch {
	case err != nil:
		v.d.add(p, "step %q: for_each: %v", s.ID, err)
	case ty != TypeList && ty != TypeUnknown:
		v.d.add(p, "step %q: for_each: must be a list (a nodes input, groups.<name>, x | map(...)), but %s is %s", s.ID, src, ty.a())
	}
}

// until checks until: a boolean guard over the step's own outputs, and a
// bound on how long it may retry.
func (v *validator) until(i int, s *Step, hasTarget bool) {
	if !s.Has("until") {
		return
	}
	p := s.At("until")
	t, err := CheckGuard(s.Until, v.typeOf)
	if err != nil {
		v.d.add(p, "step %q: until: %v", s.ID, err)
	}
	if t != nil {
		names := v.outputNames(s)
		for _, r := range t.Refs() {
			if len(r.Path) > 0 && r.Path[0] == "outputs" {
				if len(r.Path) < 2 {
					v.d.add(p, "step %q: until: outputs needs a name: outputs.<name>", s.ID)
				} else if !slices.Contains(names, r.Path[1]) {
					v.d.add(p, "step %q: until: the step has no output %q%s (declare it under outputs:)", s.ID, r.Path[1], suggestName(r.Path[1], names))
				}
				continue
			}
			v.ref(i, s, r, p, hasTarget)
		}
	}
	if s.Retries == 0 && s.Timeout.None() {
		v.d.add(p, "step %q: until: with timeout: none and no retries: would retry forever; set retries: or a timeout:", s.ID)
	}
}

// forEachGroup is the inventory group a for_each: iterates over when lint
// can tell (a group name, or exactly {{ groups.<name> }}), else nil.
func (v *validator) forEachGroup(s *Step) *Group {
	if v.inv == nil {
		return nil
	}
	src := strings.TrimSpace(s.ForEach)
	if !strings.Contains(src, "{{") {
		return v.inv.Group(src)
	}
	t, err := ParseTemplate(src)
	if err != nil || len(t.parts) != 1 || t.parts[0].expr == nil {
		return nil
	}
	p, ok := t.parts[0].expr.(pathExpr)
	if !ok || len(p.segs) != 2 || p.segs[0].name != "groups" || p.segs[1].index != nil {
		return nil
	}
	return v.inv.Group(p.segs[1].name)
}

// groupFields checks, with an inventory, that every member of a group that
// map or format reads has the fields they name.
func (v *validator) groupFields(s *Step, t *Template, p Pos) {
	if v.inv == nil {
		return
	}
	for _, u := range t.GroupFieldUses() {
		g := v.inv.Group(u.Group)
		if g == nil {
			continue // reported as an unknown group
		}
		for _, f := range u.Fields {
			for _, m := range g.Nodes {
				if n := v.inv.Node(m); n != nil && !NodeHasField(n, f) {
					v.d.add(p, "step %q: groups.%s | %s: node %q has no field or var %q", s.ID, g.Name, u.Filter, m, f)
				}
			}
		}
	}
}
