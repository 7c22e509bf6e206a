package nodeagent

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestHCLogAdapterKeysOnce: raft's hclog records reach slog with each key
// once: a repeated key keeps its last value, and keys slog writes itself
// (time, level, msg) or the adapter sets (component) are prefixed.
func TestHCLogAdapterKeysOnce(t *testing.T) {
	tests := []struct {
		name string
		args []any
		want map[string]any
	}{
		{"plain", []any{"peer", "node2", "index", 7}, map[string]any{"peer": "node2", "index": 7.0}},
		{"repeated key keeps the last", []any{"peer", "node2", "peer", "node3"}, map[string]any{"peer": "node3"}},
		{"slog's own keys", []any{"time", 250, "level", "x", "msg", "y", "component", "z"},
			map[string]any{"raft_time": 250.0, "raft_level": "x", "raft_msg": "y", "raft_component": "z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := newHCLogger(slog.New(slog.NewJSONHandler(&buf, nil)), "raft", "info")
			l.Warn("failed to contact", tc.args...)
			line := strings.TrimSpace(buf.String())
			if strings.Count(line, "\n") != 0 || line == "" {
				t.Fatalf("want one line, got %q", buf.String())
			}
			dec := json.NewDecoder(strings.NewReader(line))
			seen := map[string]bool{}
			if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
				t.Fatalf("not an object: %q", line)
			}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					t.Fatal(err)
				}
				key := k.(string)
				if seen[key] {
					t.Fatalf("key %q twice in %s", key, line)
				}
				seen[key] = true
				var v any
				if err := dec.Decode(&v); err != nil {
					t.Fatal(err)
				}
				if want, ok := tc.want[key]; ok && v != want {
					t.Errorf("%s = %v, want %v", key, v, want)
				}
			}
			for k := range tc.want {
				if !seen[k] {
					t.Errorf("no %q in %s", k, line)
				}
			}
			if !seen["component"] || !seen["time"] || !seen["msg"] {
				t.Errorf("slog's and the adapter's keys missing: %s", line)
			}
		})
	}
	// Below the level nothing is written.
	var buf bytes.Buffer
	newHCLogger(slog.New(slog.NewJSONHandler(&buf, nil)), "raft", "warn").Info("chatty", "a", 1)
	if buf.Len() != 0 {
		t.Fatalf("info record written at warn level: %s", buf.String())
	}
}
