package jsonapi

import (
	"reflect"
	"strings"
	"time"

	"github.com/drbook/drbook/state"
)

// Documented lists every type of the contract in the order docs/json.md
// shows them: the documents of the commands, then the event stream's lines.
// Types they contain are documented after them (see the test that keeps
// docs/json.md in agreement).
var Documented = []struct {
	// Title heads the section: the command, or the event's name.
	Title string
	Type  reflect.Type
}{
	{"drbook runs -o json", reflect.TypeFor[RunList]()},
	{"drbook plan -o json", reflect.TypeFor[Plan]()},
	{"drbook runbooks -o json", reflect.TypeFor[RunbookList]()},
	{"drbook lint -o json", reflect.TypeFor[Lint]()},
	{"drbook replay RUN_ID -o json", reflect.TypeFor[Replay]()},
	{"drbook verify BUNDLE_DIR -o json", reflect.TypeFor[Verify]()},
	{"drbook rehearse -o json", reflect.TypeFor[Rehearsal]()},
	{"drbook lab up -o json", reflect.TypeFor[LabUp]()},
	{"drbook lab status -o json", reflect.TypeFor[LabStatus]()},
	{"drbook plugins list -o json", reflect.TypeFor[PluginList]()},
	{"drbook version -o json", reflect.TypeFor[Version]()},
	{"drbook config -o json", reflect.TypeFor[Config]()},
	{"event of the record (run.created, step.started, …)", reflect.TypeFor[RecordEvent]()},
	{"event " + EvStepPending, reflect.TypeFor[StepPendingEvent]()},
	{"event " + EvOutputLine, reflect.TypeFor[OutputLineEvent]()},
	{"event " + EvOperatorWaiting, reflect.TypeFor[OperatorWaitingEvent]()},
	{"event " + EvNotice, reflect.TypeFor[NoticeEvent]()},
}

// Payloads lists the payload of each event type of the record: the "data"
// of a RecordEvent line of the stream (and of an event in the replay
// document), in the order docs/json.md shows them.
var Payloads = []struct {
	Event string
	Type  reflect.Type
}{
	{string(state.EvRunCreated), reflect.TypeFor[state.RunCreated]()},
	{string(state.EvRunResumed), reflect.TypeFor[state.RunResumed]()},
	{string(state.EvAnswer), reflect.TypeFor[state.Answer]()},
	{string(state.EvStepStarted), reflect.TypeFor[state.StepStarted]()},
	{string(state.EvStepOutput), reflect.TypeFor[state.StepOutput]()},
	{string(state.EvStepFinished), reflect.TypeFor[state.StepFinished]()},
	{string(state.EvStepDecision), reflect.TypeFor[state.StepDecision]()},
	{string(state.EvOperatorWait), reflect.TypeFor[state.OperatorWait]()},
	{string(state.EvNote), reflect.TypeFor[state.Note]()},
	{string(state.EvRunFinished), reflect.TypeFor[state.RunFinished]()},
	{string(state.EvApprovalRequested), reflect.TypeFor[state.ApprovalRequested]()},
	{string(state.EvApprovalGranted), reflect.TypeFor[state.ApprovalGranted]()},
	{string(state.EvApprovalRefused), reflect.TypeFor[state.ApprovalRefused]()},
}

// Field is one JSON field of a documented type.
type Field struct {
	// Name is the JSON name; GoName the struct field's (for comments).
	Name, GoName string
	// Owner is the struct type that declares the field.
	Owner reflect.Type
	// Type describes the JSON value: string, integer, boolean, …
	Type string
	// Optional is true for omitempty fields.
	Optional bool
	// Elem is the struct type of an object (or list of objects) value.
	Elem reflect.Type
}

// Fields lists t's JSON fields in order, embedded structs flattened.
func Fields(t reflect.Type) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			out = append(out, Fields(ft)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		typ, elem := describe(ft)
		out = append(out, Field{Name: name, GoName: f.Name, Owner: t, Type: typ, Optional: opts == "omitempty", Elem: elem})
	}
	return out
}

var timeType = reflect.TypeFor[time.Time]()

// describe names a Go type's JSON form, and returns the struct type of an
// object (or list of objects) value.
func describe(t reflect.Type) (string, reflect.Type) {
	if t == timeType {
		return "string (RFC 3339, UTC)", nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		s, e := describe(t.Elem())
		return s + " or null", e
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer", nil
	case reflect.Float32, reflect.Float64:
		return "number", nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string (base64)", nil
		}
		s, e := describe(t.Elem())
		return "list of " + s, e
	case reflect.Map:
		s, e := describe(t.Elem())
		return "object of " + s, e
	case reflect.Interface:
		return "any JSON value", nil
	case reflect.Struct:
		return "object " + t.Name(), t
	}
	return t.Kind().String(), nil
}
