package runbooks

import (
	"bytes"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// blockText is where a block scalar's content lines are in the source.
type blockText struct {
	src    []byte
	lines  []int // byte offset of each source line's start (shared)
	first  int   // 1-based line of the first content line
	indent int   // content indentation, in spaces
}

// blockText locates a literal (|) or folded (>) scalar's content: it starts
// on the line after its header, indented as its first non-blank line is.
func (c *converter) blockText(v *ast.LiteralNode) *blockText {
	if v.Start == nil || c.src == nil {
		return nil
	}
	if c.lines == nil {
		c.lines = []int{0}
		for i, b := range c.src {
			if b == '\n' {
				c.lines = append(c.lines, i+1)
			}
		}
	}
	b := &blockText{src: c.src, lines: c.lines, first: v.Start.Position.Line + 1}
	for l := b.first; l <= len(b.lines); l++ {
		line := b.raw(l)
		if strings.TrimSpace(line) == "" {
			continue
		}
		b.indent = len(line) - len(strings.TrimLeft(line, " "))
		break
	}
	return b
}

// raw returns source line l (1-based) without its line break.
func (b *blockText) raw(l int) string {
	if l < 1 || l > len(b.lines) {
		return ""
	}
	start := b.lines[l-1]
	end := len(b.src)
	if l < len(b.lines) {
		end = b.lines[l] - 1
	}
	return string(bytes.TrimSuffix(b.src[start:end], []byte("\r")))
}

// content returns line l without the block's indentation.
func (b *blockText) content(l int) string {
	line := b.raw(l)
	n := 0
	for n < b.indent && n < len(line) && line[n] == ' ' {
		n++
	}
	return line[n:]
}

// lineStarts walks a block scalar's value beside its source lines and
// returns the offsets in the value at which a source line begins, with that
// line's position (the first line starts at offset 0). A literal (|) keeps
// each line break; a folded (>) scalar turns some into spaces and drops
// others, so the walk matches each source line's text in turn. If the value
// and the source disagree (an unusual indentation indicator), the walk stops
// and the rest is attributed to the last line matched.
func (n *ynode) lineStarts() (offs []int, pos []Pos) {
	b := n.block
	v := n.value
	l := b.first
	s := b.content(l)
	offs, pos = []int{0}, []Pos{{Line: l, Col: b.indent + 1}}
	i, j := 0, 0
	for i < len(v) && l < len(b.lines) {
		if j < len(s) {
			if v[i] != s[j] {
				break
			}
			i, j = i+1, j+1
			continue
		}
		if v[i] == '\n' || v[i] == ' ' {
			i++
		}
		l++
		s, j = b.content(l), 0
		p := Pos{Line: l, Col: b.indent + 1}
		if offs[len(offs)-1] == i {
			pos[len(pos)-1] = p // a dropped blank line: the text is on the later one
			continue
		}
		offs, pos = append(offs, i), append(pos, p)
	}
	return offs, pos
}

// scalarChunk is a piece of a scalar's value with its source position.
type scalarChunk struct {
	text string
	pos  Pos
}

// chunks splits a block scalar's value where its source lines begin, except
// inside a {{ }} expression, each piece with its own position, so problems
// in a multi-line command are reported at their own line. Any other scalar,
// and a block scalar without templates, is one piece at its own position.
func (n *ynode) chunks() []scalarChunk {
	v := n.value
	if n.block == nil || !strings.Contains(v, "{{") {
		return []scalarChunk{{text: v, pos: n.pos}}
	}
	offs, pos := n.lineStarts()
	var out []scalarChunk
	start, startPos, open, next := 0, pos[0], false, 1
	for i := 0; i < len(v); i++ {
		if next < len(offs) && i == offs[next] {
			if !open {
				if strings.TrimSpace(v[start:i]) != "" {
					out = append(out, scalarChunk{text: v[start:i], pos: startPos})
				}
				start, startPos = i, pos[next]
			}
			next++
		}
		switch {
		case !open && strings.HasPrefix(v[i:], "{{"):
			open = true
			i++
			for next < len(offs) && offs[next] <= i {
				next++ // "{{" cannot straddle a line start; keep in step
			}
		case open && strings.HasPrefix(v[i:], "}}"):
			open = false
			i++
			for next < len(offs) && offs[next] <= i {
				next++
			}
		}
	}
	if strings.TrimSpace(v[start:]) != "" {
		out = append(out, scalarChunk{text: v[start:], pos: startPos})
	}
	if len(out) == 0 {
		return []scalarChunk{{text: v, pos: n.pos}}
	}
	return out
}
