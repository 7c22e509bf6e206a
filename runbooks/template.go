package runbooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Templates
//
// Strings in a runbook may contain {{ expr }}. An expression is a path into the
// run's scope, optionally compared or filtered:
//
//	{{ inputs.seed }}                       an input
//	{{ steps.token.outputs.token }}         an output of an earlier step
//	{{ nodes.node1.host }}                  an inventory field (or a var: nodes.node1.api)
//	{{ nodes[inputs.seed].api }}            index with another expression
//	{{ target.name }}                       the node the step is running on
//	{{ run.id }}
//	{{ inputs.backup | quote }}             filters: quote, join(sep), default(v), length, json, lower, upper,
//	                                        map(field), format("{name}={peer_url}") over node names
//	{{ groups.etcd | format("{name}={peer_url}") | join(",") }}
//	{{ item.name }}                         the for_each item (a node: its fields and vars)
//	{{ inputs.mode == "full" and not inputs.dry_run }}
//
// A reference to something that does not exist is an error, never an empty
// string. A template that is exactly one {{ expr }} keeps the value's type
// (a list of nodes stays a list); otherwise values are formatted into text.
// and, or and not take booleans. Lint types every expression (typecheck.go);
// a `when:` guard is one boolean expression, with or without braces
// (ParseGuard, EvalGuard). The language is described in docs/runbooks.md.

// ErrTemplate is wrapped by every template parse or evaluation error.
var ErrTemplate = errors.New("template")

// Value is a template value and whether it derives from a secret.
type Value struct {
	V      any
	Secret bool
}

// Scope resolves the roots of template paths.
type Scope interface {
	// Lookup returns the value at path (e.g. ["inputs","seed"]). It returns an
	// error naming the missing element if the path does not exist.
	Lookup(path []string) (Value, error)
}

// Template is a parsed template string.
type Template struct {
	src   string
	parts []tplPart
}

type tplPart struct {
	text string
	expr expr   // nil for literal text
	off  int    // byte offset of the part in src
	src  string // the {{ … }} as written, for messages
}

// ErrStatement is wrapped when a template holds Jinja statement or comment
// syntax ({% … %}, {# … #}): drbook templates have no statements, and such
// text must not reach a shell as it is. It wraps ErrTemplate.
var ErrStatement = fmt.Errorf("%w: Jinja syntax", ErrTemplate)

// statementHint is what to use instead of a Jinja statement; it lists the
// filters the language has.
func statementHint() string {
	return "drbook templates have no statements ({% if %}, {% for %}, {# #}): put a condition in the step's when:, and use the filters listed in docs/runbooks.md (" + strings.Join(filterNames(), ", ") + ") inside {{ }}"
}

// jinjaStatement finds Jinja statement ({% … %}) or comment ({# … #}) syntax
// in s. A shell's ${#var} is not a comment opener.
func jinjaStatement(s string) (string, bool) {
	if i := strings.Index(s, "{%"); i >= 0 {
		if j := strings.Index(s[i+2:], "%}"); j >= 0 {
			return s[i : i+2+j+2], true
		}
	}
	for off := 0; ; {
		i := strings.Index(s[off:], "{#")
		if i < 0 {
			return "", false
		}
		i += off
		if i == 0 || s[i-1] != '$' {
			if j := strings.Index(s[i+2:], "#}"); j >= 0 {
				return s[i : i+2+j+2], true
			}
		}
		off = i + 2
	}
}

// checkStatements refuses Jinja statement syntax in s.
func checkStatements(s string) error {
	if st, ok := jinjaStatement(s); ok {
		if len(st) > 40 {
			st = st[:37] + "..."
		}
		return fmt.Errorf("%w: %q: %s", ErrStatement, st, statementHint())
	}
	return nil
}

// ParseTemplate parses s. Text without {{ is a template that renders as
// itself. Jinja statements ({% … %}, {# … #}) are refused (ErrStatement).
func ParseTemplate(s string) (*Template, error) {
	if err := checkStatements(s); err != nil {
		return nil, err
	}
	t := &Template{src: s}
	rest, off := s, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, tplPart{text: rest, off: off})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, tplPart{text: rest[:i], off: off})
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("%w: unclosed {{ at offset %d", ErrTemplate, off+i)
		}
		body := rest[i+2 : i+2+j]
		e, err := parseExpr(body)
		if err != nil {
			return nil, fmt.Errorf("%w: in {{%s}}: %v", ErrTemplate, body, err)
		}
		t.parts = append(t.parts, tplPart{expr: e, off: off + i, src: rest[i : i+2+j+2]})
		off += i + 2 + j + 2
		rest = rest[i+2+j+2:]
	}
}

// IsStatic reports whether the template has no expressions.
func (t *Template) IsStatic() bool {
	for _, p := range t.parts {
		if p.expr != nil {
			return false
		}
	}
	return true
}

// Refs returns every path the template reads, for static checking. Index
// expressions are returned as separate refs; the indexed path is cut at the
// index and marked Dynamic.
func (t *Template) Refs() []Ref {
	var out []Ref
	for _, p := range t.parts {
		if p.expr != nil {
			p.expr.refs(&out)
		}
	}
	return out
}

// QuotedInQuotes returns the {{ … | quote }} expressions of a command
// template that sit inside single or double quotes of the surrounding shell
// text. quote already makes one shell word: inside "…" its single quotes are
// literal characters and $(…) or `…` in the value run; inside '…' its quotes
// end the quoting. Either way the value is no longer safe.
func (t *Template) QuotedInQuotes() []string {
	var out []string
	var state byte // 0 outside quotes, '\'' or '"' inside
	for _, p := range t.parts {
		if p.expr != nil {
			if f, ok := p.expr.(filterExpr); ok && f.name == "quote" && state != 0 {
				out = append(out, p.src)
			}
			continue
		}
		for i := 0; i < len(p.text); i++ {
			c := p.text[i]
			switch {
			case state == '\'':
				if c == '\'' {
					state = 0
				}
			case c == '\\':
				i++ // an escaped character, outside quotes or inside "…"
			case state == '"':
				if c == '"' {
					state = 0
				}
			case c == '\'' || c == '"':
				state = c
			}
		}
	}
	return out
}

// Ref is one path read by a template.
type Ref struct {
	Path []string
	// Dynamic is true when the path continued past an index expression
	// (nodes[inputs.x].api): only Path's prefix is known statically.
	Dynamic bool
	// Rest holds the static segments after the index, if any.
	Rest []string
	// Index is the path of the first index expression when it is a plain
	// path (nodes[inputs.failed].api: inputs, failed), so lint can check
	// the fields after it on every node that input can choose.
	Index []string
}

// String renders the ref as written (without index expressions).
func (r Ref) String() string {
	s := strings.Join(r.Path, ".")
	if r.Dynamic {
		s += "[...]"
		if len(r.Rest) > 0 {
			s += "." + strings.Join(r.Rest, ".")
		}
	}
	return s
}

// Eval renders the template in scope. A template that is a single expression
// returns the expression's value unchanged; otherwise the result is a string.
func (t *Template) Eval(sc Scope) (Value, error) {
	if len(t.parts) == 1 && t.parts[0].expr != nil {
		return t.parts[0].expr.eval(sc)
	}
	var b strings.Builder
	secret := false
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := p.expr.eval(sc)
		if err != nil {
			return Value{}, err
		}
		secret = secret || v.Secret
		s, err := formatText(v.V)
		if err != nil {
			return Value{}, err
		}
		b.WriteString(s)
	}
	return Value{V: b.String(), Secret: secret}, nil
}

// RenderString evaluates a template string and formats it as text.
func RenderString(s string, sc Scope) (string, bool, error) {
	t, err := ParseTemplate(s)
	if err != nil {
		return "", false, err
	}
	v, err := t.Eval(sc)
	if err != nil {
		return "", false, err
	}
	text, err := formatText(v.V)
	return text, v.Secret, err
}

func formatText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case json.Number:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case []string:
		return strings.Join(x, " "), nil
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", fmt.Errorf("%w: cannot format %T", ErrTemplate, v)
		}
		return string(b), nil
	}
}

// Truthy reports whether a value would count as true in a loose reading.
// Guards do not use it: a guard must be a boolean (see EvalGuard).
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "", "false", "no", "0", "off":
			return false
		}
		return true
	case int64:
		return x != 0
	case int:
		return x != 0
	case float64:
		return x != 0
	case uint64:
		return x != 0
	case json.Number:
		r, ok := parseNumber(x.String())
		return !ok || r.Sign() != 0
	case []string:
		return len(x) > 0
	case []any:
		return len(x) > 0
	}
	return true
}

// ---- expressions ----

type expr interface {
	eval(sc Scope) (Value, error)
	refs(out *[]Ref)
}

type litExpr struct{ v any }

func (e litExpr) eval(Scope) (Value, error) { return Value{V: e.v}, nil }
func (e litExpr) refs(*[]Ref)               {}

// pathExpr is root.seg.seg[index].seg...
type pathExpr struct {
	segs []pathSeg
}

type pathSeg struct {
	name  string
	index expr // non-nil: [index]
}

func (e pathExpr) eval(sc Scope) (Value, error) {
	path := make([]string, 0, len(e.segs))
	secret := false
	for _, s := range e.segs {
		if s.index == nil {
			path = append(path, s.name)
			continue
		}
		iv, err := s.index.eval(sc)
		if err != nil {
			return Value{}, err
		}
		secret = secret || iv.Secret
		key, err := formatText(iv.V)
		if err != nil {
			return Value{}, err
		}
		path = append(path, key)
	}
	v, err := sc.Lookup(path)
	if err != nil {
		return Value{}, err
	}
	v.Secret = v.Secret || secret
	return v, nil
}

func (e pathExpr) refs(out *[]Ref) {
	var r Ref
	for _, s := range e.segs {
		if s.index != nil {
			s.index.refs(out)
			if p, ok := s.index.(pathExpr); ok && !r.Dynamic {
				if ir := p.pathRef(); !ir.Dynamic {
					r.Index = ir.Path
				}
			}
			r.Dynamic = true
			continue
		}
		if r.Dynamic {
			r.Rest = append(r.Rest, s.name)
		} else {
			r.Path = append(r.Path, s.name)
		}
	}
	*out = append(*out, r)
}

type unaryExpr struct {
	op string
	x  expr
}

func (e unaryExpr) eval(sc Scope) (Value, error) {
	v, err := e.x.eval(sc)
	if err != nil {
		return Value{}, err
	}
	b, err := boolOperand("not", v)
	if err != nil {
		return Value{}, err
	}
	return Value{V: !b, Secret: v.Secret}, nil
}

// boolOperand returns the boolean operand of and, or, not; anything else is
// an error (an empty string or list is not false: compare it).
func boolOperand(op string, v Value) (bool, error) {
	b, ok := v.V.(bool)
	if !ok {
		return false, fmt.Errorf("%w: %s needs booleans, got %s", ErrType, op, runtimeType(v.V))
	}
	return b, nil
}
func (e unaryExpr) refs(out *[]Ref) { e.x.refs(out) }

type binaryExpr struct {
	op   string
	l, r expr
}

func (e binaryExpr) refs(out *[]Ref) { e.l.refs(out); e.r.refs(out) }

func (e binaryExpr) eval(sc Scope) (Value, error) {
	l, err := e.l.eval(sc)
	if err != nil {
		return Value{}, err
	}
	if e.op == "and" || e.op == "or" {
		lb, err := boolOperand(e.op, l)
		if err != nil {
			return Value{}, err
		}
		if lb == (e.op == "or") { // false and …, true or …
			return Value{V: lb, Secret: l.Secret}, nil
		}
	}
	r, err := e.r.eval(sc)
	if err != nil {
		return Value{}, err
	}
	secret := l.Secret || r.Secret
	switch e.op {
	case "and", "or":
		rb, err := boolOperand(e.op, r)
		return Value{V: rb, Secret: secret}, err
	}
	ls, _ := formatText(l.V)
	rs, _ := formatText(r.V)
	// Numbers compare exactly (number.go): never through float64, so two
	// uint64 ids that differ in the last digit are not equal.
	cmp, numeric := CompareNumbers(ls, rs)
	var res bool
	switch e.op {
	case "==":
		res = ls == rs || (numeric && cmp == 0)
	case "!=":
		res = !(ls == rs || (numeric && cmp == 0))
	case "<", "<=", ">", ">=":
		if !numeric {
			return Value{}, fmt.Errorf("%w: %s needs numbers, got %q and %q", ErrTemplate, e.op, ls, rs)
		}
		switch e.op {
		case "<":
			res = cmp < 0
		case "<=":
			res = cmp <= 0
		case ">":
			res = cmp > 0
		case ">=":
			res = cmp >= 0
		}
	}
	return Value{V: res, Secret: secret}, nil
}

type filterExpr struct {
	x    expr
	name string
	args []expr
}

func (e filterExpr) refs(out *[]Ref) {
	e.x.refs(out)
	for _, a := range e.args {
		a.refs(out)
	}
}

var filterArity = map[string]int{"quote": 0, "join": 1, "default": 1, "length": 0, "json": 0, "lower": 0, "upper": 0, "map": 1, "format": 1}

func (e filterExpr) eval(sc Scope) (Value, error) {
	v, err := e.x.eval(sc)
	if e.name == "default" {
		if err != nil || v.V == nil || v.V == "" {
			return e.args[0].eval(sc)
		}
		return v, nil
	}
	if err != nil {
		return Value{}, err
	}
	var args []Value
	for _, a := range e.args {
		av, err := a.eval(sc)
		if err != nil {
			return Value{}, err
		}
		args = append(args, av)
	}
	switch e.name {
	case "quote":
		if list, ok := v.V.([]string); ok {
			q := make([]string, len(list))
			for i, s := range list {
				q[i] = ShellQuote(s)
			}
			return Value{V: strings.Join(q, " "), Secret: v.Secret}, nil
		}
		s, err := formatText(v.V)
		return Value{V: ShellQuote(s), Secret: v.Secret}, err
	case "join":
		sep, _ := formatText(args[0].V)
		switch list := v.V.(type) {
		case []string:
			return Value{V: strings.Join(list, sep), Secret: v.Secret}, nil
		case []any:
			parts := make([]string, len(list))
			for i, x := range list {
				parts[i], _ = formatText(x)
			}
			return Value{V: strings.Join(parts, sep), Secret: v.Secret}, nil
		}
		s, err := formatText(v.V)
		return Value{V: s, Secret: v.Secret}, err
	case "length":
		switch list := v.V.(type) {
		case []string:
			return Value{V: int64(len(list))}, nil
		case []any:
			return Value{V: int64(len(list))}, nil
		case map[string]any:
			return Value{V: int64(len(list))}, nil
		}
		s, err := formatText(v.V)
		return Value{V: int64(len(s))}, err
	case "map", "format":
		arg, _ := formatText(args[0].V)
		one := func(name string) (string, error) {
			if e.name == "map" {
				return nodeField(sc, name, arg)
			}
			return formatNode(sc, name, arg)
		}
		secret := v.Secret || args[0].Secret
		var list []string
		switch x := v.V.(type) {
		case []string:
			list = x
		case []any:
			for _, el := range x {
				s, err := formatText(el)
				if err != nil {
					return Value{}, err
				}
				list = append(list, s)
			}
		default:
			name, err := formatText(v.V)
			if err != nil {
				return Value{}, err
			}
			out, err := one(name)
			return Value{V: out, Secret: secret}, err
		}
		out := make([]string, len(list))
		for i, name := range list {
			if out[i], err = one(name); err != nil {
				return Value{}, err
			}
		}
		return Value{V: out, Secret: secret}, nil
	case "json":
		b, err := json.Marshal(v.V)
		return Value{V: string(b), Secret: v.Secret}, err
	case "lower", "upper":
		s, err := formatText(v.V)
		if e.name == "lower" {
			s = strings.ToLower(s)
		} else {
			s = strings.ToUpper(s)
		}
		return Value{V: s, Secret: v.Secret}, err
	}
	return Value{}, fmt.Errorf("%w: unknown filter %q", ErrTemplate, e.name)
}

// GroupFieldUse is a map or format filter applied to a group with a
// literal argument: lint checks every member has the fields it reads.
type GroupFieldUse struct {
	Group  string
	Filter string
	Fields []string
}

// GroupFieldUses returns the map("field") and format("…{field}…") filters
// the template applies directly to groups.<name>.
func (t *Template) GroupFieldUses() []GroupFieldUse {
	var out []GroupFieldUse
	var walk func(e expr)
	walk = func(e expr) {
		switch x := e.(type) {
		case filterExpr:
			walk(x.x)
			for _, a := range x.args {
				walk(a)
			}
			p, isPath := x.x.(pathExpr)
			lit, isLit := litArg(x.args)
			if (x.name != "map" && x.name != "format") || !isPath || !isLit || len(p.segs) != 2 || p.segs[0].name != "groups" || p.segs[1].index != nil {
				return
			}
			u := GroupFieldUse{Group: p.segs[1].name, Filter: x.name}
			if x.name == "map" {
				u.Fields = []string{lit}
			} else {
				for rest := lit; ; {
					i := strings.IndexByte(rest, '{')
					j := strings.IndexByte(rest, '}')
					if i < 0 || j < i {
						break
					}
					u.Fields = append(u.Fields, rest[i+1:j])
					rest = rest[j+1:]
				}
			}
			out = append(out, u)
		case binaryExpr:
			walk(x.l)
			walk(x.r)
		case unaryExpr:
			walk(x.x)
		}
	}
	for _, p := range t.parts {
		if p.expr != nil {
			walk(p.expr)
		}
	}
	return out
}

func litArg(args []expr) (string, bool) {
	if len(args) != 1 {
		return "", false
	}
	l, ok := args[0].(litExpr)
	if !ok {
		return "", false
	}
	s, ok := l.v.(string)
	return s, ok
}

// NodeHasField reports whether a template can read field (name, host, a
// var, vars.<var>, …) of node n, as map and format do.
func NodeHasField(n *Node, field string) bool {
	_, err := nodeValue(n, strings.Split(strings.TrimSpace(field), "."))
	return err == nil
}

// nodeField is map's work: field (name, host, port, a var, vars.<var>, …)
// of the node called name, as text.
func nodeField(sc Scope, name, field string) (string, error) {
	field = strings.TrimSpace(field)
	if field == "" {
		return "", fmt.Errorf("%w: map needs a node field such as \"host\" or \"vars.peer_url\"", ErrTemplate)
	}
	path := append([]string{"nodes", name}, strings.Split(field, ".")...)
	v, err := sc.Lookup(path)
	if err != nil {
		return "", err
	}
	return formatText(v.V)
}

// formatNode is format's work: pattern with each {field} replaced by that
// field of the node called name ({name}, {host}, {peer_url}, {vars.x}).
func formatNode(sc Scope, name, pattern string) (string, error) {
	var b strings.Builder
	rest := pattern
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("%w: format: unclosed { in %q", ErrTemplate, pattern)
		}
		b.WriteString(rest[:i])
		s, err := nodeField(sc, name, rest[i+1:i+j])
		if err != nil {
			return "", err
		}
		b.WriteString(s)
		rest = rest[i+j+1:]
	}
}

// ShellQuote quotes s as one word for a POSIX shell: inside single quotes,
// each embedded quote is closed, escaped and reopened.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("@%+=:,./_-", r)))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ---- parser ----

type lexer struct {
	toks []string
	i    int
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'':
			j := i + 1
			var b strings.Builder
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string")
			}
			toks = append(toks, "\x00"+b.String()) // marks a string literal
			i = j + 1
		case strings.ContainsRune(".[]()|,", rune(c)):
			toks = append(toks, string(c))
			i++
		case c == '=' || c == '!' || c == '<' || c == '>':
			if i+1 < len(s) && s[i+1] == '=' {
				toks = append(toks, s[i:i+2])
				i += 2
			} else if c == '<' || c == '>' {
				toks = append(toks, string(c))
				i++
			} else {
				return nil, fmt.Errorf("unexpected %q", c)
			}
		case c == '_' || c == '-' || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)):
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '-' || unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j]))) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q", c)
		}
	}
	return toks, nil
}

func (l *lexer) peek() string {
	if l.i < len(l.toks) {
		return l.toks[l.i]
	}
	return ""
}

func (l *lexer) next() string {
	t := l.peek()
	l.i++
	return t
}

func parseExpr(s string) (expr, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("empty expression")
	}
	l := &lexer{toks: toks}
	e, err := l.parseOr()
	if err != nil {
		return nil, err
	}
	if l.i < len(l.toks) {
		return nil, fmt.Errorf("unexpected %q", strings.TrimPrefix(l.peek(), "\x00"))
	}
	return e, nil
}

func (l *lexer) parseOr() (expr, error) {
	left, err := l.parseAnd()
	for err == nil && l.peek() == "or" {
		l.next()
		var right expr
		right, err = l.parseAnd()
		left = binaryExpr{op: "or", l: left, r: right}
	}
	return left, err
}

func (l *lexer) parseAnd() (expr, error) {
	left, err := l.parseNot()
	for err == nil && l.peek() == "and" {
		l.next()
		var right expr
		right, err = l.parseNot()
		left = binaryExpr{op: "and", l: left, r: right}
	}
	return left, err
}

func (l *lexer) parseNot() (expr, error) {
	if l.peek() == "not" {
		l.next()
		x, err := l.parseNot()
		return unaryExpr{op: "not", x: x}, err
	}
	return l.parseCmp()
}

func (l *lexer) parseCmp() (expr, error) {
	left, err := l.parseFilter()
	if err != nil {
		return nil, err
	}
	switch op := l.peek(); op {
	case "==", "!=", "<", "<=", ">", ">=":
		l.next()
		right, err := l.parseFilter()
		return binaryExpr{op: op, l: left, r: right}, err
	}
	return left, nil
}

func (l *lexer) parseFilter() (expr, error) {
	x, err := l.parsePrimary()
	if err != nil {
		return nil, err
	}
	for l.peek() == "|" {
		l.next()
		name := l.next()
		arity, ok := filterArity[name]
		if !ok {
			return nil, fmt.Errorf("unknown filter %q (known: %s)", name, strings.Join(filterNames(), ", "))
		}
		f := filterExpr{x: x, name: name}
		if l.peek() == "(" {
			l.next()
			for l.peek() != ")" {
				a, err := l.parseOr()
				if err != nil {
					return nil, err
				}
				f.args = append(f.args, a)
				if l.peek() == "," {
					l.next()
				} else if l.peek() != ")" {
					return nil, fmt.Errorf("expected , or ) in arguments of %s", name)
				}
			}
			l.next()
		}
		if len(f.args) != arity {
			return nil, fmt.Errorf("filter %s takes %d argument(s), got %d", name, arity, len(f.args))
		}
		x = f
	}
	return x, nil
}

func filterNames() []string {
	names := make([]string, 0, len(filterArity))
	for n := range filterArity {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (l *lexer) parsePrimary() (expr, error) {
	t := l.next()
	switch {
	case t == "":
		return nil, fmt.Errorf("unexpected end of expression")
	case t == "(":
		e, err := l.parseOr()
		if err != nil {
			return nil, err
		}
		if l.next() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		return e, nil
	case strings.HasPrefix(t, "\x00"):
		return litExpr{v: t[1:]}, nil
	case t == "true" || t == "false":
		return litExpr{v: t == "true"}, nil
	case t[0] >= '0' && t[0] <= '9' || t[0] == '-':
		n, ok := numberLiteral(t)
		if !ok {
			return nil, fmt.Errorf("bad number %q", t)
		}
		return litExpr{v: n}, nil
	case isIdent(t):
		p := pathExpr{segs: []pathSeg{{name: t}}}
		for {
			switch l.peek() {
			case ".":
				l.next()
				n := l.next()
				if !isIdent(n) && !isNumber(n) {
					return nil, fmt.Errorf("expected a name after '.', got %q", strings.TrimPrefix(n, "\x00"))
				}
				p.segs = append(p.segs, pathSeg{name: n})
				continue
			case "[":
				l.next()
				idx, err := l.parseOr()
				if err != nil {
					return nil, err
				}
				if l.next() != "]" {
					return nil, fmt.Errorf("missing ]")
				}
				if lit, ok := idx.(litExpr); ok {
					s, _ := formatText(lit.v)
					p.segs = append(p.segs, pathSeg{name: s})
				} else {
					p.segs = append(p.segs, pathSeg{index: idx})
				}
				continue
			}
			return p, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q", t)
}

func isIdent(t string) bool {
	if t == "" || t[0] == '\x00' || (t[0] >= '0' && t[0] <= '9') || t[0] == '-' {
		return false
	}
	switch t {
	case "and", "or", "not", "true", "false":
		return false
	}
	return true
}

func isNumber(t string) bool {
	_, err := strconv.Atoi(t)
	return err == nil
}
