package runbooks

import (
	"fmt"
	"strings"
	"testing"
)

// TestBlockChunks: a block scalar with templates is cut where its source
// lines begin (never inside {{ }}), each piece at its own line.
func TestBlockChunks(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // "line:col text" per piece
	}{
		{"literal", "x: |\n  a {{ b }}\n  c\n\n  d {{ e }}\n", []string{"2:3 a {{ b }}", "3:3 c", "5:3 d {{ e }}"}},
		{"more indented lines", "x: |\n  a\n    b {{ c }}\n  d\n", []string{"2:3 a", "3:3   b {{ c }}", "4:3 d"}},
		{"folded", "x: >\n  a {{ b }}\n  c\n\n  d {{ e }}\n", []string{"2:3 a {{ b }} ", "3:3 c\n", "5:3 d {{ e }}\n"}},
		{"template across lines", "x: |\n  a {{ b\n  }} c\n  d {{ e }}\n", []string{"2:3 a {{ b\n}} c", "4:3 d {{ e }}"}},
		{"keep chomping", "x: |+\n  a {{ b }}\n\n", []string{"2:3 a {{ b }}"}},
		{"no template", "x: |\n  a\n  b\n", []string{"1:4 a\nb\n"}},
		{"plain", "x: a {{ b }}\n", []string{"1:4 a {{ b }}"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, err := parseYAML("t.yaml", []byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ch := range root.get("x").chunks() {
				got = append(got, fmt.Sprintf("%d:%d %s", ch.pos.Line, ch.pos.Col, ch.text))
			}
			// The trailing piece of a literal keeps its final line break.
			for i := range got {
				got[i] = strings.TrimSuffix(got[i], "\n")
			}
			want := make([]string, len(c.want))
			for i, w := range c.want {
				want[i] = strings.TrimSuffix(w, "\n")
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("pieces\n got %q\nwant %q", got, want)
			}
		})
	}
}
