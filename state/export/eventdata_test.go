package export

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/drbook/drbook/state"
)

// TestEventDataMasks: the stream's fast path (the payload as recorded)
// never carries what maskedData would mask.
func TestEventDataMasks(t *testing.T) {
	sealed := state.SealedPrefix + "2:QUJD"
	tests := []struct {
		name    string
		typ     state.EventType
		data    string
		raw     bool
		notWant string
	}{
		{"plain step.started", state.EvStepStarted, `{"title":"t","kind":"shell"}`, true, ""},
		{"finished without secrets", state.EvStepFinished, `{"status":"succeeded","outputs":{"a":"1"},"secret_outputs":[]}`, true, ""},
		{"finished with a secret output", state.EvStepFinished, `{"status":"succeeded","outputs":{"tok":"hunter22"},"secret_outputs":["tok"]}`, false, "hunter22"},
		{"decision with a secret output", state.EvStepDecision, `{"decision":"skip","outputs":{"tok":"hunter22"},"secret_outputs":["tok"]}`, false, "hunter22"},
		{"sealed value in a note", state.EvNote, `{"text":"x","data":{"v":"` + sealed + `"}}`, false, sealed},
		{"secret answer", state.EvAnswer, `{"name":"p","secret":true,"value":"hunter22"}`, false, "hunter22"},
		{"not JSON", state.EvNote, `{"text":`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EventData(state.Event{Type: tt.typ, Data: json.RawMessage(tt.data)})
			_, isRaw := got.(json.RawMessage)
			if isRaw != tt.raw {
				t.Fatalf("returned as recorded: %v, want %v", isRaw, tt.raw)
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if tt.notWant != "" && strings.Contains(string(b), tt.notWant) {
				t.Fatalf("%s leaks %q", b, tt.notWant)
			}
		})
	}
}
