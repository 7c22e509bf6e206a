package transport_test

import (
	"bytes"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/drbook/drbook/steps/transport"
)

// shPrintf runs `sh -c 'printf "%s\0" Q1 Q2 ...'` with each value quoted by
// Quote and returns what sh printed, split back into values.
func shPrintf(t testing.TB, values []string) []string {
	t.Helper()
	var line strings.Builder
	line.WriteString(`printf '%s\0'`)
	for _, v := range values {
		line.WriteString(" " + transport.Quote(v))
	}
	out, err := exec.Command("/bin/sh", "-c", line.String()).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", line.String(), err)
	}
	got := bytes.Split(bytes.TrimSuffix(out, []byte{0}), []byte{0})
	res := make([]string, len(got))
	for i, g := range got {
		res[i] = string(g)
	}
	return res
}

func TestQuoteGolden(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"abc", "'abc'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{"a b", "'a b'"},
		{"$x", "'$x'"},
	}
	for _, tt := range tests {
		if got := transport.Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestQuoteProperty checks, against a real /bin/sh, that Quote round-trips
// 500 random strings (random bytes, shell metacharacters, invalid UTF-8).
func TestQuoteProperty(t *testing.T) {
	const alphabet = "'\"\\$`!*?[]{}()<>|&;#~=% \t\n\r-_abcXYZ019é世"
	rng := rand.New(rand.NewPCG(1, 2))
	values := []string{""}
	for range 500 {
		n := rng.IntN(24)
		var b []byte
		for range n {
			if rng.IntN(4) == 0 {
				b = append(b, byte(1+rng.IntN(255))) // any byte but NUL
			} else {
				r := []rune(alphabet)[rng.IntN(utf8.RuneCountInString(alphabet))]
				b = utf8.AppendRune(b, r)
			}
		}
		values = append(values, string(b))
	}
	got := shPrintf(t, values)
	if len(got) != len(values) {
		t.Fatalf("sh printed %d values, want %d", len(got), len(values))
	}
	for i := range values {
		if got[i] != values[i] {
			t.Errorf("round trip of %q gave %q (quoted %s)", values[i], got[i], transport.Quote(values[i]))
		}
	}
}

// FuzzQuote checks that sh reads Quote(s) back as exactly s, for any s
// without NUL (which no shell word can hold).
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "'", "''", `\'`, "a'b'c", "$(id)", "`id`", "\n", "-n", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			t.Skip("NUL cannot be passed through a shell word")
		}
		if got := shPrintf(t, []string{s}); len(got) != 1 || got[0] != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}
