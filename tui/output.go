package tui

import (
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
)

// Bounds of the output the run screen keeps in memory. The record keeps
// every step execution's output (state.StepFinished.Log); the screen keeps
// only the tail of each step, and the pager reads the rest from the record.
const (
	// maxLineBytes caps one stored line; longer lines end in "…" on the
	// screen (the pager shows them whole from the record).
	maxLineBytes = 4096
	// liveRingLines and liveRingBytes bound a step that has not settled.
	liveRingLines = 5000
	liveRingBytes = 2 << 20
	// doneRingLines and doneRingBytes bound a settled step.
	doneRingLines = 500
	doneRingBytes = 64 << 10
)

// lineKind says what a line of a step's output is.
type lineKind uint8

const (
	lineOut    lineKind = iota // stdout of a target
	lineStderr                 // stderr of a target
	lineHead                   // "▸ node1: command" when an attempt starts
	lineFail                   // "✗ node1: error" when an attempt failed
	lineNotice                 // "» text" from the engine
)

// outLine is one line of a step's output, sanitised, unstyled: the style is
// applied only to the lines a frame shows.
type outLine struct {
	text    string
	target  string
	attempt int
	kind    lineKind
}

func (l outLine) size() int { return len(l.text) + len(l.target) + 32 }

// outRing keeps the last lines of a step's output within a line and a byte
// budget, and counts every line it was given.
type outRing struct {
	buf      []outLine
	start, n int
	bytes    int
	total    int // lines ever added (kept + dropped)
	maxLines int
	maxBytes int
}

func newRing() *outRing { return &outRing{maxLines: liveRingLines, maxBytes: liveRingBytes} }

// add appends l, dropping the oldest lines beyond the budget.
func (r *outRing) add(l outLine) {
	r.total++
	sz := l.size()
	for r.n > 0 && (r.n >= r.maxLines || r.bytes+sz > r.maxBytes) {
		r.dropOldest()
	}
	if r.n == len(r.buf) {
		// The buffer is full but under budget: grow it, oldest first.
		if r.start != 0 {
			r.buf = append(r.buf[r.start:len(r.buf):len(r.buf)], r.buf[:r.start]...)
			r.start = 0
		}
		r.buf = append(r.buf, l)
	} else {
		r.buf[(r.start+r.n)%len(r.buf)] = l
	}
	r.n++
	r.bytes += sz
}

func (r *outRing) dropOldest() {
	r.bytes -= r.buf[r.start].size()
	r.buf[r.start] = outLine{}
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	if r.n == 0 {
		r.start = 0
		r.buf = r.buf[:0]
	}
}

// skip counts n lines that never reached the ring (the bridge dropped them
// while the screen was behind; they are in the record).
func (r *outRing) skip(n int) { r.total += n }

// first is the number of the oldest kept line (lines are numbered from 0
// over the step's whole output).
func (r *outRing) first() int { return r.total - r.n }

// at returns line number i (first() <= i < total).
func (r *outRing) at(i int) outLine {
	return r.buf[(r.start+i-r.first())%len(r.buf)]
}

// shrink lowers the budget (a step settled) and keeps the newest lines.
func (r *outRing) shrink(lines, bytes int) {
	if r.maxLines <= lines && r.maxBytes <= bytes {
		return
	}
	kept := make([]outLine, 0, min(r.n, lines))
	size := 0
	for i := r.total - 1; i >= r.first() && len(kept) < lines; i-- {
		l := r.at(i)
		if size+l.size() > bytes && len(kept) > 0 {
			break
		}
		size += l.size()
		kept = append(kept, l)
	}
	for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
		kept[i], kept[j] = kept[j], kept[i]
	}
	r.buf, r.start, r.n, r.bytes = kept, 0, len(kept), size
	r.maxLines, r.maxBytes = lines, bytes
}

// lines returns copies of the kept lines that match keep, oldest first.
func (r *outRing) lines(keep func(outLine) bool) []outLine {
	var out []outLine
	for i := r.first(); i < r.total; i++ {
		if l := r.at(i); keep == nil || keep(l) {
			out = append(out, l)
		}
	}
	return out
}

// capBytes cuts s to at most n bytes on a rune boundary, marking the cut.
func capBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// wrapRows splits an unstyled line into rows of at most w cells: wrapped
// at words when wrap is set (long words are broken), else cut with "…".
func wrapRows(s string, w int, wrap bool) []string {
	w = max(1, w)
	if ansi.StringWidth(s) <= w {
		return []string{s}
	}
	if !wrap {
		return []string{ansi.Truncate(s, w, "…")}
	}
	return strings.Split(ansi.Wrap(s, w, ""), "\n")
}

// exactRows splits s into rows of at most w cells keeping every character
// and space (commands are shown exactly).
func exactRows(s string, w int) []string {
	w = max(1, w)
	if ansi.StringWidth(s) <= w {
		return []string{s}
	}
	return strings.Split(ansi.Hardwrap(s, w, true), "\n")
}

// expandTabs replaces tabs by spaces to the next multiple of 8 columns, so
// an indented command keeps its shape once control characters are removed.
func expandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for _, r := range s {
		if r == '\t' {
			n := 8 - col%8
			b.WriteString(strings.Repeat(" ", n))
			col += n
			continue
		}
		b.WriteRune(r)
		col++
	}
	return b.String()
}
