package termsafe

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
)

func TestSanitize(t *testing.T) {
	tests := []struct {
		name             string
		in               string
		text, line, cell string
	}{
		{"plain ascii", "hello world", "hello world", "hello world", "hello world"},
		{"empty", "", "", "", ""},
		{"utf8 passes", "café ✓ 日本", "café ✓ 日本", "café ✓ 日本", "café ✓ 日本"},
		{"literal U+FFFD passes", "a\uFFFDb", "a\uFFFDb", "a\uFFFDb", "a\uFFFDb"},
		{"window title OSC 0", "\x1b]0;pwned\x07rest", "␛]0;pwned␇rest", "␛]0;pwned␇rest", "␛]0;pwned␇rest"},
		{"window title OSC 2 with ST", "\x1b]2;t\x1b\\x", "␛]2;t␛\\x", "␛]2;t␛\\x", "␛]2;t␛\\x"},
		{"clipboard OSC 52", "\x1b]52;c;cm0gLXJmIC8K\x07", "␛]52;c;cm0gLXJmIC8K␇", "␛]52;c;cm0gLXJmIC8K␇", "␛]52;c;cm0gLXJmIC8K␇"},
		{"clear screen", "\x1b[2J\x1b[H", "␛[2J␛[H", "␛[2J␛[H", "␛[2J␛[H"},
		{"cursor up fakes a line", "x\x1b[1A\r  ✓ ok", "x␛[1A␍  ✓ ok", "x␛[1A␍  ✓ ok", "x␛[1A␍  ✓ ok"},
		{"SGR colour dropped", "\x1b[31mred\x1b[0m \x1b[1;38:5:9mb\x1b[m", "red b", "red b", "red b"},
		{"SGR with private marker shown", "\x1b[?25l", "␛[?25l", "␛[?25l", "␛[?25l"},
		{"unterminated SGR shown", "\x1b[31", "␛[31", "␛[31", "␛[31"},
		{"overlong SGR shown", "\x1b[" + strings.Repeat("1;", 40) + "m", "␛[" + strings.Repeat("1;", 40) + "m", "␛[" + strings.Repeat("1;", 40) + "m", "␛[" + strings.Repeat("1;", 40) + "m"},
		{"ESC ESC [m", "\x1b\x1b[0m[31m", "␛[31m", "␛[31m", "␛[31m"},
		{"NUL BEL BS DEL", "a\x00b\x07c\x08d\x7f", "a␀b␇c␈d␡", "a␀b␇c␈d␡", "a␀b␇c␈d␡"},
		{"newlines and tabs", "a\tb\nc\r\nd\re", "a\tb\nc\nd␍e", "a\tb⏎c␍⏎d␍e", "a b⏎c␍⏎d␍e"},
		{"C1 CSI (UTF-8) shown", "x\u009b2Jy", `x\u009B2Jy`, `x\u009B2Jy`, `x\u009B2Jy`},
		{"lone 0x9b byte shown", "x\x9b2Jy", `x\x9B2Jy`, `x\x9B2Jy`, `x\x9B2Jy`},
		{"invalid utf8", "\xff\xfe ok \xc3", `\xFF\xFE ok \xC3`, `\xFF\xFE ok \xC3`, `\xFF\xFE ok \xC3`},
		{"bidi override", "abc\u202edcba\u2066", `abc\u202Edcba\u2066`, `abc\u202Edcba\u2066`, `abc\u202Edcba\u2066`},
		{"surrogate half", "\xed\xa0\x80", `\xED\xA0\x80`, `\xED\xA0\x80`, `\xED\xA0\x80`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				fn   string
				f    func(string) string
				want string
			}{{"Text", Text, tc.text}, {"Line", Line, tc.line}, {"Cell", Cell, tc.cell}} {
				if got := c.f(tc.in); got != c.want {
					t.Errorf("%s(%q) = %q, want %q", c.fn, tc.in, got, c.want)
				}
			}
		})
	}
}

// TestCleanReturnsInput checks the fast path returns the very string.
func TestCleanReturnsInput(t *testing.T) {
	s := strings.Repeat("plain line with ✓ and tabs\t", 100)
	got := Line(s)
	if got != s || testing.AllocsPerRun(100, func() { _ = Line(s) }) != 0 {
		t.Errorf("clean input was copied or changed")
	}
}

// checkSafe fails t if out could be interpreted by a terminal in mode m.
func checkSafe(t *testing.T, in, out string, m mode) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("output of %q is not valid UTF-8: %q", in, out)
	}
	for _, r := range out {
		switch {
		case r == '\n' && m == modeText, r == '\t' && m != modeCell:
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, escapedRune(r):
			t.Fatalf("output of %q holds control %U: %q", in, r, out)
		}
	}
	// An independent parser finds no escape sequence left to strip.
	if ansi.Strip(out) != out {
		t.Fatalf("x/ansi still finds a sequence in the output of %q: %q", in, out)
	}
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{
		"", "plain", "\x1b]0;t\x07", "\x1b]52;c;aGk=\x1b\\", "\x1b[2J\x1b[1A\r✓", "\x1b[31mred\x1b[0m",
		"\x00\x01\x7f\u0085\u009b", "\xff\xfe\xc3", "a\r\nb\tc", "\u202e\u2066", "\x1b\x1b[m[1m",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, m := range []mode{modeText, modeLine, modeCell} {
			out := sanitize(in, m)
			checkSafe(t, in, out, m)
			if again := sanitize(in, m); again != out {
				t.Fatalf("not deterministic on %q: %q then %q", in, out, again)
			}
			if twice := sanitize(out, m); twice != out {
				t.Fatalf("not idempotent on %q: %q then %q", in, out, twice)
			}
		}
	})
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name string
		in   any
	}{
		{"escapes", map[string]string{"line": "\x1b]0;t\x07 \u009b2J \u202e rtl \x7f \xff ✓ \u2028"}},
		{"plain", []string{"a", "b"}},
		{"nested", map[string]any{"k\u0085": []any{"\u2066x", 1.5, nil}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			out := JSON(raw)
			checkSafe(t, string(raw), string(out), modeCell)
			var a, b any
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &b); err != nil {
				t.Fatalf("not JSON any more: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("data changed:\n%#v\n%#v", a, b)
			}
		})
	}
}

func FuzzJSON(f *testing.F) {
	f.Add("\x1b]52;c;x\x07\u009b\u202e\x7f\xff")
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := json.Marshal(map[string]string{s: s})
		if err != nil {
			t.Fatal(err)
		}
		out := JSON(raw)
		checkSafe(t, s, string(out), modeCell)
		var a, b map[string]string
		if json.Unmarshal(raw, &a) != nil || json.Unmarshal(out, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("data changed: %s -> %s", raw, out)
		}
	})
}

func BenchmarkLine(b *testing.B) {
	for _, bc := range []struct{ name, s string }{
		{"clean", strings.Repeat("member node2 joined, voters=3 healthy ✓ ", 3)},
		{"hostile", strings.Repeat("\x1b]0;t\x07\x1b[2J\x1b[31mred\x1b[0m \xff\u009b ", 8)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.s)))
			for b.Loop() {
				_ = Line(bc.s)
			}
		})
	}
}
