package runbooks

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/goccy/go-yaml/ast"
	yamllexer "github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// nodeKind is the shape of a YAML node after anchors and tags are resolved.
type nodeKind int

const (
	kindNull nodeKind = iota
	kindScalar
	kindMap
	kindSeq
)

func (k nodeKind) String() string {
	switch k {
	case kindScalar:
		return "scalar"
	case kindMap:
		return "mapping"
	case kindSeq:
		return "list"
	}
	return "null"
}

// scalarType is the YAML 1.2 core-schema type of a plain scalar.
type scalarType int

const (
	scalarString scalarType = iota
	scalarInt
	scalarFloat
	scalarBool
)

func (t scalarType) String() string {
	return [...]string{"string", "integer", "number", "boolean"}[t]
}

// ynode is a YAML node with the position of its first character. It is the
// only form of YAML the rest of this package sees, which keeps the parser
// library's AST out of the decoder and validator.
type ynode struct {
	kind   nodeKind
	pos    Pos
	stype  scalarType
	value  string   // scalar text
	keys   []*ynode // mapping keys (scalars), in document order
	vals   []*ynode // mapping values, parallel to keys
	items  []*ynode // list items
	quoted bool     // scalar was quoted (always a string)
	// size counts the node and everything under it with aliases expanded,
	// and height its depth the same way: what a walk of it would visit.
	size, height int
	// block locates a block scalar's (| or >) text in the source, so a
	// problem inside it can be reported at its own line (see posAt).
	block *blockText
	index map[string]int // key → position in keys, for large mappings
}

// get returns the value for a mapping key, or nil.
func (n *ynode) get(key string) *ynode {
	if n == nil || n.kind != kindMap {
		return nil
	}
	if i, ok := n.keyIndex(key); ok {
		return n.vals[i]
	}
	return nil
}

func (n *ynode) describe() string {
	if n == nil {
		return "nothing"
	}
	if n.kind == kindScalar {
		return n.stype.String()
	}
	return n.kind.String()
}

// Large documents (over largeYAML bytes) are parsed one at a time, with the
// garbage collector working harder meanwhile: the YAML library allocates
// about 100 bytes per input byte, mostly garbage, and with the default
// pacing a 4 MiB document peaks near 150 MB; at largeYAMLGCPercent it stays
// near 110 MB, and concurrent loads (a directory of runbooks) cannot add up.
var largeParse sync.Mutex

const (
	largeYAML          = 1 << 20
	largeYAMLGCPercent = 25
)

// parseYAML parses one YAML document into a ynode tree. A syntax error is
// returned as a Diagnostic with the position the parser reports. Every bound
// in bounds.go is checked before the work it protects.
func parseYAML(file string, src []byte) (*ynode, error) {
	d := &diags{file: file}
	body, ok := prescan(d, src)
	if !ok {
		return nil, d.err()
	}
	if len(body) > largeYAML {
		largeParse.Lock()
		defer largeParse.Unlock()
		defer debug.SetGCPercent(debug.SetGCPercent(largeYAMLGCPercent))
	}
	tokens := yamllexer.Tokenize(string(body))
	if !checkTokens(d, tokens) {
		return nil, d.err()
	}
	f, err := parser.Parse(tokens, 0)
	if err != nil {
		var ye interface {
			GetToken() *token.Token
			GetMessage() string
		}
		if errors.As(err, &ye) && ye.GetToken() != nil {
			p := ye.GetToken().Position
			d.add(Pos{Line: p.Line, Col: p.Column}, "YAML syntax: %s", ye.GetMessage())
		} else {
			d.add(Pos{Line: 1, Col: 1}, "YAML syntax: %v", firstLine(err.Error()))
		}
		return nil, d.err()
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		d.add(Pos{Line: 1, Col: 1}, "the document is empty")
		return nil, d.err()
	}
	if len(docs) > 1 {
		d.add(posOf(docs[1].Body), "only one YAML document per file is allowed")
		return nil, d.err()
	}
	c := converter{d: d, anchors: map[string]*ynode{}, src: body}
	root := c.convert(docs[0].Body, 0)
	if err := d.err(); err != nil {
		return nil, err
	}
	return root, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func posOf(n ast.Node) Pos {
	if n == nil || n.GetToken() == nil {
		return Pos{}
	}
	p := n.GetToken().Position
	return Pos{Line: p.Line, Col: p.Column}
}

type converter struct {
	d       *diags
	anchors map[string]*ynode
	src     []byte // the parsed bytes (BOM removed), for block scalar positions
	lines   []int  // byte offset of each line's start, built on first use
	total   int    // nodes created plus nodes reached through aliases
	refused bool   // the node budget was exceeded (reported once)
}

// saturate keeps node counts from overflowing; anything this large is far
// over maxYAMLNodes anyway.
func saturate(n int) int { return min(n, 1<<40) }

// sized sets n's expanded size and height from its children.
func sized(n *ynode) *ynode {
	size, height := 1, 0
	for _, k := range n.keys {
		size = saturate(size + k.size)
	}
	for _, v := range n.vals {
		size = saturate(size + v.size)
		height = max(height, v.height)
	}
	for _, it := range n.items {
		size = saturate(size + it.size)
		height = max(height, it.height)
	}
	n.size, n.height = size, height+1
	return n
}

func (c *converter) convert(n ast.Node, depth int) *ynode {
	if depth > maxYAMLDepth {
		c.d.add(posOf(n), "nesting deeper than %d levels", maxYAMLDepth)
		return &ynode{kind: kindNull, pos: posOf(n), size: 1, height: 1}
	}
	out := c.convertNode(n, depth)
	if _, alias := n.(*ast.AliasNode); !alias {
		c.total = saturate(c.total + 1)
		if c.total > maxYAMLNodes && !c.refused {
			c.refused = true
			c.d.add(posOf(n), "more than %d YAML nodes; a document this large is refused", maxYAMLNodes)
		}
	}
	return out
}

func (c *converter) convertNode(n ast.Node, depth int) *ynode {
	switch v := n.(type) {
	case nil:
		return &ynode{kind: kindNull, size: 1, height: 1}
	case *ast.DocumentNode:
		return c.convert(v.Body, depth+1)
	case *ast.NullNode:
		return &ynode{kind: kindNull, pos: posOf(v), size: 1, height: 1}
	case *ast.StringNode:
		t := v.GetToken()
		quoted := t != nil && (t.Type == token.SingleQuoteType || t.Type == token.DoubleQuoteType)
		return sized(&ynode{kind: kindScalar, pos: posOf(v), stype: scalarString, value: v.Value, quoted: quoted})
	case *ast.LiteralNode:
		val := ""
		if v.Value != nil {
			val = v.Value.Value
		}
		return sized(&ynode{kind: kindScalar, pos: posOf(v), stype: scalarString, value: val, quoted: true, block: c.blockText(v)})
	case *ast.IntegerNode:
		return sized(&ynode{kind: kindScalar, pos: posOf(v), stype: scalarInt, value: v.GetToken().Value})
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return sized(&ynode{kind: kindScalar, pos: posOf(v), stype: scalarFloat, value: v.GetToken().Value})
	case *ast.BoolNode:
		return sized(&ynode{kind: kindScalar, pos: posOf(v), stype: scalarBool, value: fmt.Sprint(v.Value)})
	case *ast.TagNode:
		return c.convert(v.Value, depth+1)
	case *ast.AnchorNode:
		out := c.convert(v.Value, depth+1)
		if v.Name != nil {
			c.anchors[v.Name.String()] = out
		}
		return out
	case *ast.AliasNode:
		name := ""
		if v.Value != nil {
			name = v.Value.String()
		}
		target, ok := c.anchors[name]
		if !ok {
			c.d.add(posOf(v), "unknown alias *%s", name)
			return &ynode{kind: kindNull, pos: posOf(v), size: 1, height: 1}
		}
		// The alias is shared, not copied; what it costs is what every
		// later walk of the tree pays for it.
		c.total = saturate(c.total + target.size)
		switch {
		case c.total > maxYAMLNodes && !c.refused:
			c.refused = true
			c.d.add(posOf(v), "alias *%s expands to %d nodes, taking the document past %d nodes (an alias bomb?); write the values out or use fewer aliases", name, target.size, maxYAMLNodes)
		case depth+target.height > maxYAMLDepth:
			c.d.add(posOf(v), "alias *%s nests deeper than %d levels", name, maxYAMLDepth)
		default:
			return target
		}
		return &ynode{kind: kindNull, pos: posOf(v), size: 1, height: 1}
	case *ast.MappingNode:
		out := &ynode{kind: kindMap, pos: posOf(v)}
		if len(v.Values) > 0 {
			out.pos = posOf(v.Values[0].Key)
		}
		for _, mv := range v.Values {
			c.addPair(out, mv, depth)
		}
		return sized(out)
	case *ast.MappingValueNode:
		out := &ynode{kind: kindMap, pos: posOf(v.Key)}
		c.addPair(out, v, depth)
		return sized(out)
	case *ast.SequenceNode:
		out := &ynode{kind: kindSeq, pos: posOf(v)}
		for _, item := range v.Values {
			out.items = append(out.items, c.convert(item, depth+1))
		}
		return sized(out)
	case *ast.MappingKeyNode:
		return c.convert(v.Value, depth+1)
	default:
		c.d.add(posOf(n), "unsupported YAML construct (%s)", n.Type())
		return &ynode{kind: kindNull, pos: posOf(n), size: 1, height: 1}
	}
}

func (c *converter) addPair(m *ynode, mv *ast.MappingValueNode, depth int) {
	if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
		c.d.add(posOf(mv.Key), "merge keys (<<) are not supported; write the fields out")
		return
	}
	key := c.convert(mv.Key, depth+1)
	if key.kind != kindScalar {
		c.d.add(key.pos, "a mapping key must be a plain name, not a %s", key.describe())
		return
	}
	if j, dup := m.keyIndex(key.value); dup {
		c.d.add(key.pos, "duplicate key %q (first at line %d)", key.value, m.keys[j].pos.Line)
		return
	}
	val := c.convert(mv.Value, depth+1)
	if val.pos.IsZero() {
		val.pos = key.pos
	}
	m.keys = append(m.keys, key)
	m.vals = append(m.vals, val)
	if m.index != nil {
		m.index[key.value] = len(m.keys) - 1
	}
}

// keyIndex finds a key of a mapping. Large mappings get an index so a
// hostile mapping with many keys costs linear time, not quadratic.
func (n *ynode) keyIndex(key string) (int, bool) {
	if n.index == nil && len(n.keys) >= 16 {
		n.index = make(map[string]int, len(n.keys))
		for i, k := range n.keys {
			n.index[k.value] = i
		}
	}
	if n.index != nil {
		i, ok := n.index[key]
		return i, ok
	}
	for i, k := range n.keys {
		if k.value == key {
			return i, true
		}
	}
	return 0, false
}
