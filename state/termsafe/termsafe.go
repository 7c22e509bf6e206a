// Package termsafe makes any bytes harmless for a terminal. Every byte that
// came from a node, a runbook or the record goes through it before drbook
// writes it to a terminal (headless output, replay text and Markdown, lint
// messages, run lists, plans, the TUI), so that nothing a node prints can set
// the window title, write the clipboard, clear the screen, move the cursor or
// otherwise be interpreted by the operator's terminal.
//
// The rules, applied to each byte or UTF-8 character of the input:
//
//   - Printable characters pass unchanged (ASCII, and any valid UTF-8
//     character that is not one of the controls below).
//   - C0 controls (U+0000–U+001F) and DEL (U+007F) are shown as their
//     Unicode Control Picture: NUL as ␀, BEL as ␇, BS as ␈, CR as ␍, ESC as
//     ␛, DEL as ␡ (U+2400+c, U+2421). An escape sequence therefore stays
//     readable but inert: "\x1b]52;c;aGk=\x07" is shown as "␛]52;c;aGk=␇",
//     "\x1b[2J" as "␛[2J", "\x1b[1A" as "␛[1A".
//   - C1 controls (U+0080–U+009F, which some terminals obey as ESC-free
//     CSI, OSC, …) and the Unicode bidirectional controls (U+061C,
//     U+200E–U+200F, U+202A–U+202E, U+2066–U+2069), which reorder text on
//     screen, are shown as Go escapes: "\u009b", "\u202e".
//   - A byte that is not part of valid UTF-8 is shown as "\xNN" (two upper
//     case hex digits). The output is always valid UTF-8.
//   - A complete SGR sequence (ESC '[' digits, ';' or ':' … 'm'), which only
//     sets colours and text attributes, is removed rather than shown, so
//     coloured command output stays readable. Removing it cannot hide text
//     (the attributes that would, like conceal or equal colours, never reach
//     the terminal) and cannot move anything.
//   - Newlines and tabs depend on the context, chosen by the function:
//     [Text] keeps '\n' and '\t' and turns "\r\n" into '\n'; [Line] keeps
//     '\t' and shows '\n' as ⏎; [Cell] shows '\n' as ⏎ and turns '\t' into
//     a space (for tables and fixed-width screens).
//
// The visible forms are for reading, not for reversing: a node that prints a
// literal "␛" or "\x1b" looks the same as one that prints ESC. The raw bytes
// stay in the record (see state.StepFinished.LogBytes) for anyone who needs
// them exactly. Every function is total (any input, no panic), deterministic
// and idempotent: sanitising its own output changes nothing.
package termsafe

import (
	"strings"
	"unicode/utf8"
)

// mode says how newlines and tabs are rendered.
type mode uint8

const (
	modeText mode = iota // '\n' and '\t' kept, "\r\n" → '\n'
	modeLine             // '\t' kept, '\n' → ⏎
	modeCell             // '\t' → ' ', '\n' → ⏎
)

// NewlineMark is how [Line] and [Cell] show a newline.
const NewlineMark = "⏎"

// Text makes s safe for a terminal as multi-line text: newlines and tabs
// are kept ("\r\n" becomes "\n"), every other control is shown visibly.
func Text(s string) string { return sanitize(s, modeText) }

// Line makes s safe for a terminal as one line: a newline is shown as ⏎,
// tabs are kept, every other control is shown visibly.
func Line(s string) string { return sanitize(s, modeLine) }

// Cell makes s safe for a terminal as one table cell or screen line: a
// newline is shown as ⏎, a tab becomes one space, every other control is
// shown visibly.
func Cell(s string) string { return sanitize(s, modeCell) }

// clean reports whether s needs no change in mode m. It is the fast path:
// most lines are plain ASCII.
func clean(s string, m mode) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			if !keptASCII(c, m) {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || escapedRune(r) {
			return false
		}
		i += n
	}
	return true
}

// keptASCII reports whether the ASCII control c passes unchanged in mode m.
func keptASCII(c byte, m mode) bool {
	switch c {
	case '\t':
		return m != modeCell
	case '\n':
		return m == modeText
	}
	return false
}

// escapedRune reports whether r (valid UTF-8, not ASCII) is shown as a Go
// escape: C1 controls and bidirectional controls.
func escapedRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

const hexDigits = "0123456789ABCDEF"

func sanitize(s string, m mode) string {
	if clean(s, m) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/4 + 8)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
			i++
		case c == 0x1b:
			if n := sgrLen(s[i:]); n > 0 {
				i += n // colours and attributes: dropped
				continue
			}
			b.WriteRune(0x2400 + rune(c))
			i++
		case c == '\r' && m == modeText && i+1 < len(s) && s[i+1] == '\n':
			i++ // "\r\n" → "\n" (the '\n' is written next)
		case c == '\n':
			if m == modeText {
				b.WriteByte('\n')
			} else {
				b.WriteString(NewlineMark)
			}
			i++
		case c == '\t':
			if m == modeCell {
				b.WriteByte(' ')
			} else {
				b.WriteByte('\t')
			}
			i++
		case c < 0x20:
			b.WriteRune(0x2400 + rune(c))
			i++
		case c == 0x7f:
			b.WriteRune(0x2421)
			i++
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && n == 1:
				b.WriteString(`\x`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xf])
			case escapedRune(r):
				b.WriteString(`\u`)
				for shift := 12; shift >= 0; shift -= 4 {
					b.WriteByte(hexDigits[(r>>shift)&0xf])
				}
			default:
				b.WriteString(s[i : i+n])
			}
			i += n
		}
	}
	return b.String()
}

// maxSGR bounds the length of an SGR sequence that is dropped; a longer one
// is shown visibly (no terminal needs more to set colours).
const maxSGR = 64

// sgrLen returns the length of the SGR sequence at the start of s (ESC '['
// then only digits, ';' and ':' then 'm'), or 0 if s does not start with one.
func sgrLen(s string) int {
	if len(s) < 3 || s[0] != 0x1b || s[1] != '[' {
		return 0
	}
	for i := 2; i < len(s) && i < maxSGR; i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == ';', c == ':':
		case c == 'm':
			return i + 1
		default:
			return 0
		}
	}
	return 0
}
