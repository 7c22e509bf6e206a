package runbooks

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Src records where a decoded struct and each of its fields came from. It is
// embedded in every model struct so validation can point at the exact field.
type Src struct {
	// Pos is the position of the struct's mapping (or scalar shorthand).
	Pos    Pos
	fields map[string]Pos
	raw    map[string]*ynode
}

// At returns the position of a field's value, falling back to the struct's
// own position when the field was absent.
func (s Src) At(field string) Pos {
	if p, ok := s.fields[field]; ok {
		return p
	}
	return s.Pos
}

// Has reports whether the field was written in the document.
func (s Src) Has(field string) bool {
	_, ok := s.fields[field]
	return ok
}

func (s *Src) setField(name string, p Pos, n *ynode) {
	if s.fields == nil {
		s.fields = map[string]Pos{}
		s.raw = map[string]*ynode{}
	}
	s.fields[name] = p
	s.raw[name] = n
}

// Duration is a time.Duration written as a Go duration string ("90s", "2m").
// A field tagged none:"true" (a step's timeout) also accepts the word
// "none", decoded as NoLimit: the author opts out of the limit explicitly.
type Duration time.Duration

// NoLimit is the value of a Duration written as "none".
const NoLimit Duration = -1

// D returns the value as a time.Duration (NoLimit is negative).
func (d Duration) D() time.Duration { return time.Duration(d) }

// None reports whether the duration was written as "none".
func (d Duration) None() bool { return d == NoLimit }

// String formats the duration as Go does, and NoLimit as "none".
func (d Duration) String() string {
	if d.None() {
		return "none"
	}
	return time.Duration(d).String()
}

// StringList is written either as one string or as a list of strings.
type StringList []string

// Params holds a step's free-form `with:` mapping. Values keep their YAML
// positions so kinds' parameter schemas can be checked with line and column.
type Params struct {
	Src
	Values map[string]any
	node   *ynode
}

// Get returns the raw value of a parameter.
func (p Params) Get(name string) (any, bool) {
	v, ok := p.Values[name]
	return v, ok
}

var (
	srcType      = reflect.TypeOf(Src{})
	durationType = reflect.TypeOf(Duration(0))
	listType     = reflect.TypeOf(StringList(nil))
	paramsType   = reflect.TypeOf(Params{})
)

// fieldInfo is the decoded form of a struct field's tags:
//
//	yaml:"name"          key in the document ("-" to skip)
//	yaml:",key"          in a keyed list, receives the mapping key
//	required:"true"      must be present
//	enum:"a,b,c"         allowed values of a string
//	pattern:"^re$"       regular expression a string must match
//	keyed:"true"         a []T written as a mapping from name to T
//	scalar:"true"        a struct may be written as just this field's value
//	doc:"..."            description, published in the JSON Schema
//	none:"true"          a Duration that may be written "none" (NoLimit)
type fieldInfo struct {
	index    int
	name     string
	isKey    bool
	required bool
	enum     []string
	pattern  *regexp.Regexp
	keyed    bool
	scalar   bool
	none     bool
	doc      string
}

// fieldCache holds structFields' answer per type: a runbook decodes the same
// few struct types once per step, and reading the tags (and compiling their
// patterns) every time was most of the time a large runbook took to load.
var fieldCache sync.Map // reflect.Type → []fieldInfo

// structFields returns the decoded tags of t's fields. The result is shared:
// callers must not modify it.
func structFields(t reflect.Type) []fieldInfo {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]fieldInfo)
	}
	f, _ := fieldCache.LoadOrStore(t, readFields(t))
	return f.([]fieldInfo)
}

func readFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == srcType || !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		fi := fieldInfo{index: i, doc: f.Tag.Get("doc")}
		switch {
		case tag == "-":
			continue
		case tag == ",key":
			fi.isKey = true
		case tag == "":
			continue
		default:
			fi.name = tag
		}
		fi.required = f.Tag.Get("required") == "true"
		if e := f.Tag.Get("enum"); e != "" {
			fi.enum = strings.Split(e, ",")
		}
		if p := f.Tag.Get("pattern"); p != "" {
			fi.pattern = regexp.MustCompile(p)
		}
		fi.keyed = f.Tag.Get("keyed") == "true"
		fi.scalar = f.Tag.Get("scalar") == "true"
		fi.none = f.Tag.Get("none") == "true"
		out = append(out, fi)
	}
	return out
}

// decoder turns ynode trees into model structs, collecting every problem.
type decoder struct {
	d *diags
}

func (dc *decoder) decode(n *ynode, v reflect.Value, what string) {
	if n == nil || n.kind == kindNull {
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		if n.kind != kindScalar {
			dc.d.add(n.pos, "%s must be a duration like \"30s\" or \"2m\", not a %s", what, n.describe())
			return
		}
		d, err := time.ParseDuration(n.value)
		if err != nil || d < 0 {
			dc.d.add(n.pos, "%s: %q is not a duration (write e.g. \"30s\", \"2m\", \"1h30m\")", what, n.value)
			return
		}
		v.SetInt(int64(d))
		return
	case t == listType:
		switch n.kind {
		case kindScalar:
			v.Set(reflect.ValueOf(StringList{n.value}))
		case kindSeq:
			list := make(StringList, 0, len(n.items))
			for _, it := range n.items {
				if it.kind != kindScalar {
					dc.d.add(it.pos, "%s: each entry must be a string, not a %s", what, it.describe())
					continue
				}
				list = append(list, it.value)
			}
			v.Set(reflect.ValueOf(list))
		default:
			dc.d.add(n.pos, "%s must be a string or a list of strings, not a %s", what, n.describe())
		}
		return
	case t == paramsType:
		if n.kind != kindMap {
			dc.d.add(n.pos, "%s must be a mapping of parameters, not a %s", what, n.describe())
			return
		}
		p := Params{Values: map[string]any{}, node: n}
		p.Pos = n.pos
		for i, k := range n.keys {
			p.Values[k.value] = toAny(n.vals[i])
			p.setField(k.value, n.vals[i].pos, n.vals[i])
		}
		v.Set(reflect.ValueOf(p))
		return
	}
	switch t.Kind() {
	case reflect.String:
		if n.kind != kindScalar {
			dc.d.add(n.pos, "%s must be a string, not a %s", what, n.describe())
			return
		}
		v.SetString(n.value)
	case reflect.Bool:
		if n.kind != kindScalar || n.stype != scalarBool {
			dc.d.add(n.pos, "%s must be true or false, not %s", what, quoteScalar(n))
			return
		}
		v.SetBool(n.value == "true")
	case reflect.Int, reflect.Int64:
		if n.kind != kindScalar || n.stype != scalarInt {
			dc.d.add(n.pos, "%s must be an integer, not %s", what, quoteScalar(n))
			return
		}
		i, err := strconv.ParseInt(n.value, 0, 64)
		if err != nil {
			dc.d.add(n.pos, "%s: %q is out of range", what, n.value)
			return
		}
		v.SetInt(i)
	case reflect.Pointer:
		elem := reflect.New(t.Elem())
		dc.decode(n, elem.Elem(), what)
		v.Set(elem)
	case reflect.Interface:
		v.Set(reflect.ValueOf(toAny(n)))
	case reflect.Map:
		if n.kind != kindMap {
			dc.d.add(n.pos, "%s must be a mapping, not a %s", what, n.describe())
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.keys))
		for i, k := range n.keys {
			ev := reflect.New(t.Elem()).Elem()
			dc.decode(n.vals[i], ev, fmt.Sprintf("%s.%s", what, k.value))
			m.SetMapIndex(reflect.ValueOf(k.value).Convert(t.Key()), ev)
		}
		v.Set(m)
	case reflect.Slice:
		if n.kind != kindSeq {
			dc.d.add(n.pos, "%s must be a list, not a %s", what, n.describe())
			return
		}
		s := reflect.MakeSlice(t, len(n.items), len(n.items))
		for i, it := range n.items {
			dc.decode(it, s.Index(i), fmt.Sprintf("%s[%d]", what, i))
		}
		v.Set(s)
	case reflect.Struct:
		dc.decodeStruct(n, v, what)
	default:
		panic(fmt.Sprintf("runbooks: cannot decode into %s", t))
	}
}

// decodeKeyed decodes a mapping of name → struct into a slice of structs whose
// `yaml:",key"` field receives the name, keeping document order.
func (dc *decoder) decodeKeyed(n *ynode, v reflect.Value, what string) {
	if n == nil || n.kind == kindNull {
		return
	}
	if n.kind != kindMap {
		dc.d.add(n.pos, "%s must be a mapping from name to definition, not a %s", what, n.describe())
		return
	}
	t := v.Type()
	s := reflect.MakeSlice(t, len(n.keys), len(n.keys))
	for i, k := range n.keys {
		ev := s.Index(i)
		dc.decode(n.vals[i], ev, fmt.Sprintf("%s.%s", what, k.value))
		setSrcPos(ev, k.pos)
		for _, fi := range structFields(ev.Type()) {
			if fi.isKey {
				ev.Field(fi.index).SetString(k.value)
			}
		}
	}
	v.Set(s)
}

func setSrcPos(v reflect.Value, p Pos) {
	if f := v.FieldByName("Src"); f.IsValid() && f.Type() == srcType {
		f.Addr().Interface().(*Src).Pos = p
	}
}

func (dc *decoder) decodeStruct(n *ynode, v reflect.Value, what string) {
	fields := structFields(v.Type())
	var src *Src
	if f := v.FieldByName("Src"); f.IsValid() && f.Type() == srcType {
		src = f.Addr().Interface().(*Src)
		src.Pos = n.pos
	}
	if n.kind != kindMap {
		for _, fi := range fields {
			if fi.scalar {
				dc.decode(n, v.Field(fi.index), what)
				if src != nil {
					src.setField(fi.name, n.pos, n)
				}
				return
			}
		}
	}
	if n.kind != kindMap {
		dc.d.add(n.pos, "%s must be a mapping, not a %s", what, n.describe())
		return
	}
	known := map[string]fieldInfo{}
	for _, fi := range fields {
		if fi.name != "" {
			known[fi.name] = fi
		}
	}
	for i, k := range n.keys {
		fi, ok := known[k.value]
		if !ok {
			dc.d.add(k.pos, "unknown field %q in %s%s", k.value, what, suggest(k.value, fields))
			continue
		}
		val := n.vals[i]
		if src != nil {
			src.setField(fi.name, val.pos, val)
		}
		fv := v.Field(fi.index)
		if fv.Type() == durationType && val.kind == kindScalar && val.value == "none" {
			if fi.none {
				fv.SetInt(int64(NoLimit))
			} else {
				dc.d.add(val.pos, "%s.%s cannot be none: write a duration like \"30s\" or \"2m\"", what, fi.name)
			}
			continue
		}
		if fv.Type() == durationType && fi.none && val.kind == kindScalar {
			if d, err := time.ParseDuration(val.value); err != nil || d < 0 {
				dc.d.add(val.pos, "%s.%s: %q is not a duration (write e.g. \"30s\", \"2m\", or none for no limit)", what, fi.name, val.value)
				continue
			}
		}
		if fi.keyed {
			dc.decodeKeyed(val, fv, what+"."+fi.name)
		} else {
			dc.decode(val, fv, what+"."+fi.name)
		}
		if val.kind == kindScalar && fv.Kind() == reflect.String {
			if len(fi.enum) > 0 && !contains(fi.enum, val.value) {
				dc.d.add(val.pos, "%s.%s: %q is not one of %s", what, fi.name, val.value, strings.Join(fi.enum, ", "))
			} else if fi.pattern != nil && !fi.pattern.MatchString(val.value) {
				dc.d.add(val.pos, "%s.%s: %q does not match %s", what, fi.name, val.value, fi.pattern)
			}
		}
	}
	for _, fi := range fields {
		if fi.required && n.get(fi.name) == nil {
			dc.d.add(n.pos, "%s: missing required field %q", what, fi.name)
		}
	}
}

func suggest(name string, fields []fieldInfo) string {
	best, bestD := "", 3
	for _, f := range fields {
		if f.name == "" {
			continue
		}
		if d := editDistance(name, f.name); d < bestD {
			best, bestD = f.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteScalar(n *ynode) string {
	if n.kind == kindScalar {
		return fmt.Sprintf("%q (%s)", n.value, n.stype)
	}
	return "a " + n.describe()
}

// toAny converts a node to plain Go values: map[string]any, []any, string,
// int64, float64, bool or nil.
func toAny(n *ynode) any {
	switch n.kind {
	case kindScalar:
		switch n.stype {
		case scalarInt:
			if i, err := strconv.ParseInt(n.value, 0, 64); err == nil {
				return i
			}
		case scalarFloat:
			if f, err := strconv.ParseFloat(n.value, 64); err == nil {
				return f
			}
		case scalarBool:
			return n.value == "true"
		}
		return n.value
	case kindMap:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			m[k.value] = toAny(n.vals[i])
		}
		return m
	case kindSeq:
		s := make([]any, len(n.items))
		for i, it := range n.items {
			s[i] = toAny(it)
		}
		return s
	}
	return nil
}
