// Package jsonapi is drbook's JSON contract: the documents every
// `--output json` command prints and the lines of the headless JSON event
// stream. Each is an explicit struct with snake_case json tags, never an
// internal type marshalled as it is, so that refactoring the engine or the
// record cannot change what scripts read.
//
// The rules, for every document and every stream line:
//   - a top-level "schema" field holds [Schema];
//   - field names are snake_case;
//   - durations are integer milliseconds in fields named *_ms;
//   - timestamps are RFC 3339 strings in UTC (see [Time]);
//   - events are named as the record names them (state.EvStepStarted is
//     "step.started"); events that live only in memory have names of the
//     same form (see the Ev* constants).
//
// docs/json.md documents every type; a test keeps it in agreement.
package jsonapi

import (
	"time"

	"github.com/drbook/drbook/state"
)

// Schema is the value of every document's "schema" field. It changes only
// when a field is removed or changes meaning; adding a field keeps it.
const Schema = "drbook/v1"

// Time formats t as RFC 3339 in UTC with the fractional seconds it has;
// the zero time is "".
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// MS is d in whole milliseconds.
func MS(d time.Duration) int64 { return d.Milliseconds() }

// Event names of the headless stream. Those the record keeps are the
// record's own names; the others are in-memory events of a live run.
const (
	EvRunCreated   = string(state.EvRunCreated)
	EvRunResumed   = string(state.EvRunResumed)
	EvStepStarted  = string(state.EvStepStarted)
	EvStepOutput   = string(state.EvStepOutput)
	EvStepFinished = string(state.EvStepFinished)
	EvOperatorWait = string(state.EvOperatorWait)
	EvRunFinished  = string(state.EvRunFinished)
	EvNote         = string(state.EvNote)
	// EvStepPending announces a step's targets before any of them runs.
	EvStepPending = "step.pending"
	// EvStepDone says a whole step is settled on all its targets.
	EvStepDone = "step.done"
	// EvOperatorWaiting says the run waits for a person; the
	// operator.wait event follows when the answer came.
	EvOperatorWaiting = "operator.waiting"
	// EvRTOCrossed says the run went over its RTO budget.
	EvRTOCrossed = "rto.crossed"
)

// Header starts every document and every stream line.
type Header struct {
	// Schema is "drbook/v1" (jsonapi.Schema) in this version.
	Schema string `json:"schema"`
}

// NewHeader returns the header of the current schema.
func NewHeader() Header { return Header{Schema: Schema} }
