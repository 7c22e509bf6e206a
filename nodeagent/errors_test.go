package nodeagent

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitError},
		{fmt.Errorf("x: %w", ErrUsage), ExitUsage},
		{fmt.Errorf("x: %w", ErrNotFound), ExitNotFound},
		{fmt.Errorf("x: %w", ErrUnavailable), ExitUnavailable},
		{ErrNoClusterState, ExitUnavailable},
		{fmt.Errorf("%w: %w", ErrTokenUsed, errors.New("token: used")), ExitRefused},
		{fmt.Errorf("x: %w", ErrTooLarge), ExitUsage},
		{fmt.Errorf("x: %w", ErrUnauthenticated), ExitError},
	}
	for _, s := range ruleErrors() {
		tests = append(tests, struct {
			err  error
			want int
		}{fmt.Errorf("wrapped: %w", s), ExitRefused})
	}
	for _, tc := range tests {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestRuleMessagesNameTheirRule(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range ruleErrors() {
		msg := s.Error()
		if !strings.HasPrefix(msg, "refused by rule ") {
			t.Errorf("%q does not name its rule", msg)
		}
		if seen[msg] {
			t.Errorf("duplicate message %q", msg)
		}
		seen[msg] = true
	}
}

// TestWireRoundTrip: sentinels survive the admin/internal JSON error body.
func TestWireRoundTrip(t *testing.T) {
	for _, s := range append(ruleErrors(), otherErrors()...) {
		in := fmt.Errorf("context: %w", s)
		out := fromWire(toWire(in))
		if !errors.Is(out, s) || out.Error() != in.Error() || ExitCode(out) != ExitCode(in) {
			t.Errorf("%v did not survive the wire: %v", in, out)
		}
	}
	ns := fromWire(toWire(&notSentError{fmt.Errorf("%w: x", ErrUnavailable)}))
	if !errors.Is(ns, errNotSent) || !errors.Is(ns, ErrUnavailable) {
		t.Errorf("not-sent flag lost: %v", ns)
	}
	if plain := fromWire(toWire(errors.New("boom"))); ExitCode(plain) != ExitError {
		t.Errorf("plain error maps to %d", ExitCode(plain))
	}
}

func TestCompareManifests(t *testing.T) {
	m := func(kv ...string) Manifest {
		var es []ManifestEntry
		for i := 0; i < len(kv); i += 2 {
			es = append(es, ManifestEntry{ID: kv[i], SHA256: kv[i+1]})
		}
		return Manifest{Keys: es, Count: len(es), Digest: manifestDigest(es)}
	}
	tests := []struct {
		name                    string
		want, got               Manifest
		missing, extra, changed string
	}{
		{"equal", m("a", "1", "b", "2"), m("a", "1", "b", "2"), "", "", ""},
		{"missing", m("a", "1", "b", "2"), m("a", "1"), "b", "", ""},
		{"extra", m("a", "1"), m("a", "1", "c", "3"), "", "c", ""},
		{"changed", m("a", "1", "b", "2"), m("a", "1", "b", "9"), "", "", "b"},
		{"all", m("a", "1", "b", "2"), m("b", "9", "c", "3"), "a", "c", "b"},
		{"empty", m(), m(), "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := CompareManifests(tc.want, tc.got)
			j := func(s []string) string { return strings.Join(s, ",") }
			if j(r.Missing) != tc.missing || j(r.Extra) != tc.extra || j(r.Changed) != tc.changed {
				t.Fatalf("got missing=%v extra=%v changed=%v", r.Missing, r.Extra, r.Changed)
			}
			if r.OK != (tc.missing == "" && tc.extra == "" && tc.changed == "") {
				t.Fatalf("OK=%v", r.OK)
			}
			if r.OK && tc.want.Digest != tc.got.Digest {
				t.Fatal("equal manifests with different digests")
			}
		})
	}
}
