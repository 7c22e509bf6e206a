package engine

import "testing"

// TestMaskTail: a line cut short in the middle of a secret shows no part
// of it (of minSecretLen bytes or more).
func TestMaskTail(t *testing.T) {
	var m masker
	m.add("pa55-w0rd-long")
	for _, tc := range []struct{ in, want string }{
		{"key pa55-w0rd-long ok", "key " + Mask + " ok"},
		{"key pa55-w0rd-lo", "key " + Mask},
		{"key pa55", "key " + Mask},
		{"key pa5", "key pa5"}, // shorter than minSecretLen: not a secret's worth
		{"plain", "plain"},
	} {
		if got := m.maskTail(tc.in); got != tc.want {
			t.Errorf("maskTail(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
