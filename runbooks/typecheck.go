package runbooks

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Types
//
// Lint gives every template expression a static type, so that a guard that
// can never be a boolean, or a comparison that mixes a boolean with text, is
// an error at its line before anything runs:
//
//	bool    true, false, a bool input, a comparison, and/or/not
//	int     an int input, a number, nodes.<n>.port, x | length
//	string  string, node, enum, duration and secret inputs; steps.<id>.status;
//	        node names and fields; run.*; filters quote, join, json, lower, upper
//	text    a step output or a node var: text that may hold a number, so it
//	        compares with strings, numbers and booleans ("true" == true)
//	list    a nodes input, groups.<name>, map(...) and format(...) of a list
//
// and/or/not take booleans; == and != take two values of the same type (or
// text and anything but a list); <, <=, >, >= take numbers or text.

// ErrType is wrapped when a template expression has the wrong type: a guard
// that is not a boolean, or a comparison of incompatible values.
// It wraps ErrTemplate.
var ErrType = fmt.Errorf("%w: wrong type", ErrTemplate)

// Type is the static type of a template expression.
type Type int

// Static types.
const (
	// TypeUnknown is a value whose type is only known at run time.
	TypeUnknown Type = iota
	TypeBool
	TypeInt
	TypeString
	// TypeText is text from outside the runbook (a step output, a node var):
	// it compares with strings and numbers.
	TypeText
	TypeList
)

// a writes the type with its article: "a string", "an integer".
func (t Type) a() string {
	if t == TypeInt || t == TypeUnknown {
		return "an " + t.String()
	}
	return "a " + t.String()
}

func (t Type) String() string {
	switch t {
	case TypeBool:
		return "boolean"
	case TypeInt:
		return "integer"
	case TypeString:
		return "string"
	case TypeText:
		return "text"
	case TypeList:
		return "list"
	}
	return "unknown"
}

// RefTyper gives the static type of a path read by a template.
type RefTyper func(Ref) Type

// Type returns the static type of the template's value: the type of its
// expression when it is exactly one {{ expr }}, otherwise string. It reports
// any expression inside that mixes incompatible types.
func (t *Template) Type(typeOf RefTyper) (Type, error) {
	var out Type = TypeString
	for _, p := range t.parts {
		if p.expr == nil {
			continue
		}
		ty, err := typeOfExpr(p.expr, typeOf)
		if err != nil {
			return TypeUnknown, err
		}
		out = ty
	}
	if len(t.parts) != 1 || t.parts[0].expr == nil {
		out = TypeString
	}
	return out, nil
}

// ParseGuard parses a `when:` guard. A guard is one expression, written
// either bare (inputs.drill, steps.check.status == "succeeded") or inside one
// {{ }}; text around or between {{ }} is refused, since text is never a
// boolean.
func ParseGuard(s string) (*Template, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty guard: write a condition such as inputs.drill, or remove the when: line", ErrTemplate)
	}
	if err := checkStatements(s); err != nil {
		return nil, err
	}
	if strings.Contains(s, "{{") || strings.Contains(s, "}}") {
		t, err := ParseTemplate(s)
		if err != nil {
			return nil, err
		}
		if len(t.parts) != 1 || t.parts[0].expr == nil {
			return nil, fmt.Errorf("%w: a guard is one expression, not text: write `when: inputs.a and inputs.b` or `when: \"{{ inputs.a and inputs.b }}\"`", ErrType)
		}
		return t, nil
	}
	e, err := parseExpr(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not an expression (%v): a guard is a condition such as inputs.drill or steps.check.status == \"succeeded\"", ErrTemplate, s, err)
	}
	return &Template{src: s, parts: []tplPart{{expr: e, src: "{{ " + s + " }}"}}}, nil
}

// CheckGuard parses a guard and checks statically that it is a boolean.
// A guard whose type is only known at run time passes; EvalGuard checks it.
func CheckGuard(s string, typeOf RefTyper) (*Template, error) {
	t, err := ParseGuard(s)
	if err != nil {
		return nil, err
	}
	ty, err := t.Type(typeOf)
	if err != nil {
		return t, err
	}
	if ty != TypeBool && ty != TypeUnknown {
		return t, fmt.Errorf("%w: a guard must be true or false, but %s is %s%s", ErrType, strings.TrimSpace(s), ty.a(), guardHint(ty))
	}
	return t, nil
}

func guardHint(ty Type) string {
	switch ty {
	case TypeString, TypeText:
		return ` (compare it: x == "value")`
	case TypeInt:
		return " (compare it: x > 0)"
	case TypeList:
		return " (compare its length: x | length > 0)"
	}
	return ""
}

// EvalGuard evaluates a guard. A value that is not a boolean is an error,
// never true.
func EvalGuard(s string, sc Scope) (bool, error) {
	t, err := ParseGuard(s)
	if err != nil {
		return false, err
	}
	v, err := t.Eval(sc)
	if err != nil {
		return false, err
	}
	b, ok := v.V.(bool)
	if !ok {
		shown := runtimeType(v.V)
		if !v.Secret {
			text, _ := formatText(v.V)
			shown += fmt.Sprintf(" (%q)", text)
		}
		return false, fmt.Errorf("%w: a guard must be true or false, got %s", ErrType, shown)
	}
	return b, nil
}

func runtimeType(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case int, int64, uint64, float64, json.Number:
		return "a number"
	case string:
		return "a string"
	case []string, []any:
		return "a list"
	case nil:
		return "an empty value"
	}
	return fmt.Sprintf("a %T", v)
}

// pathRef is the Ref of the path itself (index expressions left out).
func (e pathExpr) pathRef() Ref {
	var r Ref
	for _, s := range e.segs {
		if s.index != nil {
			r.Dynamic = true
			continue
		}
		if r.Dynamic {
			r.Rest = append(r.Rest, s.name)
		} else {
			r.Path = append(r.Path, s.name)
		}
	}
	return r
}

func typeOfExpr(e expr, typeOf RefTyper) (Type, error) {
	switch x := e.(type) {
	case litExpr:
		switch x.v.(type) {
		case bool:
			return TypeBool, nil
		case int64, json.Number:
			return TypeInt, nil
		}
		return TypeString, nil
	case pathExpr:
		for _, s := range x.segs {
			if s.index != nil {
				if _, err := typeOfExpr(s.index, typeOf); err != nil {
					return TypeUnknown, err
				}
			}
		}
		if typeOf == nil {
			return TypeUnknown, nil
		}
		return typeOf(x.pathRef()), nil
	case unaryExpr:
		t, err := typeOfExpr(x.x, typeOf)
		if err != nil {
			return TypeUnknown, err
		}
		if t != TypeBool && t != TypeUnknown {
			return TypeUnknown, fmt.Errorf("%w: not needs a boolean, got %s%s", ErrType, t.a(), guardHint(t))
		}
		return TypeBool, nil
	case binaryExpr:
		l, err := typeOfExpr(x.l, typeOf)
		if err != nil {
			return TypeUnknown, err
		}
		r, err := typeOfExpr(x.r, typeOf)
		if err != nil {
			return TypeUnknown, err
		}
		switch x.op {
		case "and", "or":
			for _, t := range []Type{l, r} {
				if t != TypeBool && t != TypeUnknown {
					return TypeUnknown, fmt.Errorf("%w: %s needs booleans on both sides, got %s%s", ErrType, x.op, t.a(), guardHint(t))
				}
			}
		case "==", "!=":
			if !canCompare(l, r) {
				return TypeUnknown, fmt.Errorf("%w: %s compares %s with %s: they are never equal", ErrType, x.op, l.a(), r.a())
			}
		default:
			for _, t := range []Type{l, r} {
				if t != TypeInt && t != TypeText && t != TypeUnknown {
					return TypeUnknown, fmt.Errorf("%w: %s needs numbers, got %s", ErrType, x.op, t.a())
				}
			}
		}
		return TypeBool, nil
	case filterExpr:
		t, err := typeOfExpr(x.x, typeOf)
		if err != nil {
			return TypeUnknown, err
		}
		var args []Type
		for _, a := range x.args {
			at, err := typeOfExpr(a, typeOf)
			if err != nil {
				return TypeUnknown, err
			}
			args = append(args, at)
		}
		switch x.name {
		case "length":
			return TypeInt, nil
		case "map", "format":
			if len(args) == 1 && args[0] != TypeString && args[0] != TypeUnknown && args[0] != TypeText {
				return TypeUnknown, fmt.Errorf("%w: %s takes a string argument (a node field or a pattern), got %s", ErrType, x.name, args[0].a())
			}
			switch t {
			case TypeList:
				return TypeList, nil
			case TypeString, TypeText:
				return TypeString, nil
			case TypeUnknown:
				return TypeUnknown, nil
			}
			return TypeUnknown, fmt.Errorf("%w: %s takes node names (a list such as groups.<name> or a nodes input, or one node), got %s", ErrType, x.name, t.a())
		case "default":
			if t == TypeUnknown {
				return args[0], nil
			}
			if args[0] != TypeUnknown && !canCompare(t, args[0]) {
				return TypeUnknown, fmt.Errorf("%w: default gives %s to %s", ErrType, args[0].a(), t.a())
			}
			return t, nil
		}
		return TypeString, nil
	}
	return TypeUnknown, nil
}

// canCompare reports whether == may compare values of types a and b.
func canCompare(a, b Type) bool {
	switch {
	case a == TypeUnknown || b == TypeUnknown || a == b:
		return true
	case a == TypeList || b == TypeList:
		return false
	case a == TypeText || b == TypeText:
		return true
	}
	return false
}
