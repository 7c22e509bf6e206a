package export

import (
	"strings"
	"testing"
)

// TestBoundedLog: text and Markdown replays show at most maxLogLines lines
// and maxLogBytes bytes of an execution's log and say what they cut.
func TestBoundedLog(t *testing.T) {
	many := strings.Repeat("line\n", maxLogLines+5)
	long := strings.Repeat("x", maxLogBytes-10) + "\n" + strings.Repeat("y", 100) + "\n"
	cases := []struct {
		name      string
		log       string
		lines     int
		cutPrefix string
	}{
		{"empty", "", 0, ""},
		{"short", "a\nb\n", 2, ""},
		{"unterminated", "a\nb", 2, ""},
		{"too many lines", many, maxLogLines, "[5 more line(s), 25 bytes, not shown"},
		{"too many bytes", long, 1, "[1 more line(s), 101 bytes, not shown"},
		{"secret masked", "key sealed:v1:QUJD\n", 1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines, cut := boundedLog(tc.log)
			if len(lines) != tc.lines {
				t.Errorf("%d lines, want %d", len(lines), tc.lines)
			}
			if !strings.HasPrefix(cut, tc.cutPrefix) || (tc.cutPrefix == "") != (cut == "") {
				t.Errorf("cut note %q, want prefix %q", cut, tc.cutPrefix)
			}
			for _, l := range lines {
				if strings.Contains(l, "sealed:") {
					t.Errorf("sealed value shown: %q", l)
				}
			}
		})
	}
}
