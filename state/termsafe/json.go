package termsafe

import (
	"bytes"
	"unicode/utf8"
)

// JSON makes JSON text from encoding/json safe for a terminal without
// changing the data it encodes. encoding/json already escapes C0 controls
// (ESC is written as \u001b), but it writes DEL, the C1 controls
// (U+0080–U+009F, which a UTF-8 terminal may obey as CSI, OSC, …) and the
// bidirectional controls as they are; JSON rewrites each of them as a \uXXXX
// escape, which decodes to the same string. Those characters can only occur
// inside JSON strings, where the escape is equivalent. Bytes that are not
// valid UTF-8 (never produced by encoding/json) become \ufffd.
func JSON(b []byte) []byte {
	i := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if c == 0x7f {
				break
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || escapedRune(r) {
			break
		}
		i += n
	}
	if i == len(b) {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b) + 16)
	out.Write(b[:i])
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if c == 0x7f {
				out.WriteString(`\u007f`)
			} else {
				out.WriteByte(c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			out.WriteString(`\ufffd`)
		case escapedRune(r):
			out.WriteString(`\u`)
			for shift := 12; shift >= 0; shift -= 4 {
				out.WriteByte(hexDigits[(r>>shift)&0xf])
			}
		default:
			out.Write(b[i : i+n])
		}
		i += n
	}
	return out.Bytes()
}
