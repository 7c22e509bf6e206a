package evidence

import (
	"testing"

	"github.com/drbook/drbook/state"
)

// FuzzBundleEvents: any events.jsonl is read, re-chained and checked
// without a panic, and what parses re-encodes to the very same lines.
func FuzzBundleEvents(f *testing.F) {
	f.Add([]byte(`{"attempt":0,"data":{"user":"root"},"run_id":"r1","seq":1,"step_id":"","target":"","time":"2026-11-29T10:00:00Z","type":"run.created"}` + "\n"))
	f.Add([]byte(`{"attempt":0,"data":{"seq":0,"hash":"x","signature":"s"},"run_id":"r1","seq":1,"step_id":"","target":"","time":"2026-11-29T10:00:00Z","type":"record.signed"}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		events, runID, err := parseEvents(data)
		if err != nil {
			return
		}
		var out []byte
		for _, ev := range events {
			out = append(out, state.CanonicalJSON(ev)...)
			out = append(out, '\n')
		}
		if string(out) != string(data) {
			t.Fatalf("re-encoding differs:\n%q\n%q", out, data)
		}
		_ = state.VerifyEvents(runID, events)
		_, _ = Check(runID, events, nil)
	})
}
