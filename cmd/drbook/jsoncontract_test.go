package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/state"
)

// userKeyed are the JSON object paths whose keys are the runbook's or the
// operator's own (parameters, outputs, labels, event payload data): the
// snake_case rule is about drbook's field names, not about those.
var userKeyed = []string{".params", ".per_target", ".outputs", ".labels", ".data"}

// assertSnakeCase decodes doc (one JSON value, or JSON lines) and fails on
// any object key with an uppercase letter or a space, outside userKeyed
// objects; every top-level object must carry "schema": jsonapi.Schema.
func assertSnakeCase(t *testing.T, what, doc string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	n := 0
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", what, err, doc)
		}
		n++
		top, ok := v.(map[string]any)
		if !ok || top["schema"] != jsonapi.Schema {
			t.Errorf("%s: document %d has no \"schema\": %q at the top", what, n, jsonapi.Schema)
		}
		walkKeys(t, what, "", v)
	}
	if n == 0 {
		t.Fatalf("%s: no JSON at all", what)
	}
}

func walkKeys(t *testing.T, what, path string, v any) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for _, u := range userKeyed {
			if strings.HasSuffix(path, u) {
				return
			}
		}
		for k, e := range x {
			if k == "" || strings.ContainsFunc(k, func(r rune) bool { return unicode.IsUpper(r) || r == ' ' || r == '-' }) {
				t.Errorf("%s: key %q at %s is not snake_case", what, k, path)
			}
			walkKeys(t, what, path+"."+k, e)
		}
	case []any:
		for _, e := range x {
			walkKeys(t, what, path+"[]", e)
		}
	}
}

// TestWalkKeysCatchesGoNames keeps the checker honest: Go field names and
// a missing schema fail it.
func TestWalkKeysCatchesGoNames(t *testing.T) {
	for _, bad := range []string{`{"schema":"drbook/v1","runs":[{"ID":"x"}]}`, `{"runs":[]}`, `{"schema":"drbook/v1","Duration":1}`} {
		ft := &testing.T{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			assertSnakeCase(ft, "probe", bad)
		}()
		<-done
		if !ft.Failed() {
			t.Errorf("assertSnakeCase accepted %s", bad)
		}
	}
}

const jsonBook = `apiVersion: drbook/v1
kind: Runbook
name: json-contract
inputs:
  word: {type: string, prompt: A word}
steps:
  - id: hello
    run: shell
    on: node1
    timeout: 30s
    with: {command: 'echo hello {{ inputs.word }}; echo out=yes'}
    outputs: [out]
  - id: later
    run: shell
    on: node1
    when: 'false'
    with: {command: 'true'}
`

// TestJSONContract runs every command with a JSON form that needs no lab
// and checks its output against the contract; every command without one
// must refuse -o json with exit 2.
func TestJSONContract(t *testing.T) {
	l := newLocalLab(t)
	book := l.write(t, "book.yaml", jsonBook)
	answers := l.write(t, "answers.yaml", "inputs:\n  word: world\n")

	run := drbook(t, nil, "--db", l.db, "run", book, "-i", l.inv, "--answers", answers, "--headless", "-o", "json")
	if run.code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", run.code, run.stdout, run.stderr)
	}
	assertSnakeCase(t, "run stream", run.stdout)
	var names []string
	var id string
	var lastSeq int64
	var streamed []string // seq:type:hash of the recorded lines
	for _, line := range strings.Split(strings.TrimSpace(run.stdout), "\n") {
		var ev struct {
			Event string `json:"event"`
			Time  string `json:"time"`
			RunID string `json:"run_id"`
			Seq   int64  `json:"seq"`
			Hash  string `json:"hash"`
			Data  struct {
				DurationMS *int64 `json:"duration_ms"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(ev.Time, "Z") {
			t.Errorf("%s: time %q is not RFC 3339 UTC", ev.Event, ev.Time)
		}
		if ev.Event == string(state.EvStepFinished) && ev.Data.DurationMS == nil {
			t.Errorf("step.finished without data.duration_ms: %s", line)
		}
		// The record's events carry their place in the chain; the
		// in-memory ones are named apart from them.
		switch ev.Event {
		case jsonapi.EvStepPending, jsonapi.EvOutputLine, jsonapi.EvOperatorWaiting, jsonapi.EvNotice:
			if ev.Seq != 0 || ev.Hash != "" {
				t.Errorf("in-memory event %s has a seq or hash: %s", ev.Event, line)
			}
		default:
			if ev.Seq <= lastSeq || len(ev.Hash) != 64 {
				t.Errorf("recorded event %s: seq %d after %d, hash %q", ev.Event, ev.Seq, lastSeq, ev.Hash)
			}
			lastSeq = ev.Seq
			streamed = append(streamed, fmt.Sprintf("%d:%s:%s", ev.Seq, ev.Event, ev.Hash))
		}
		if ev.RunID != "" {
			id = ev.RunID
		}
		names = append(names, ev.Event)
	}
	want := []string{"run.created", "answer", "step.pending", "step.started", "output.line", "step.finished", "step.decision", "run.finished"}
	for _, w := range want {
		found := false
		for _, n := range names {
			found = found || n == w
		}
		if !found {
			t.Errorf("the stream has no %s event: %v", w, names)
		}
	}
	if strings.Contains(run.stdout, "engine.") || strings.Contains(run.stdout, "StepStarted") {
		t.Errorf("the stream names events by Go type:\n%s", run.stdout)
	}
	// The stream is the record, event for event: the replay of the run
	// lists the same events with the same hashes.
	var replayed jsonapi.Replay
	if err := json.Unmarshal([]byte(drbook(t, nil, "--db", l.db, "replay", id, "-o", "json").stdout), &replayed); err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for _, ev := range replayed.Events {
		recorded = append(recorded, fmt.Sprintf("%d:%s:%s", ev.Seq, ev.Type, ev.Hash))
	}
	if strings.Join(streamed, "\n") != strings.Join(recorded, "\n") {
		t.Errorf("the stream's recorded events are not the record's:\n--- stream\n%s\n--- record\n%s", strings.Join(streamed, "\n"), strings.Join(recorded, "\n"))
	}

	docs := []struct {
		name string
		args []string
	}{
		{"runs", []string{"--db", l.db, "runs", "-o", "json"}},
		{"plan", []string{"--db", l.db, "plan", book, "-i", l.inv, "--answers", answers, "-o", "json"}},
		{"runbooks", []string{"--db", l.db, "runbooks", "-o", "json"}},
		{"replay", []string{"--db", l.db, "replay", id, "--verify", "-o", "json"}},
		{"replay --format json", []string{"--db", l.db, "replay", id, "--format", "json"}},
		{"lint", []string{"lint", book, "-i", l.inv, "-o", "json"}},
		{"lint with problems", []string{"lint", l.write(t, "bad.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: bad\nsteps:\n  - id: x\n    run: nosuchkind\n"), "-o", "json"}},
		{"plugins list", []string{"plugins", "list", "--plugin-dir", t.TempDir(), "-o", "json"}},
		{"lab status", []string{"lab", "status", "--dir", filepath.Join(t.TempDir(), "nolab"), "-o", "json"}},
	}
	for _, d := range docs {
		r := drbook(t, nil, d.args...)
		if d.name == "lab status" {
			// No lab there: an error, but never a Go-named document.
			if r.code == 0 {
				assertSnakeCase(t, d.name, r.stdout)
			}
			continue
		}
		if d.name != "lint with problems" && r.code != 0 {
			t.Errorf("%s: exit %d\n%s", d.name, r.code, r.stderr)
			continue
		}
		assertSnakeCase(t, d.name, r.stdout)
	}

	// runs: durations in ms, times in UTC.
	var runs jsonapi.RunList
	if err := json.Unmarshal([]byte(drbook(t, nil, "--db", l.db, "runs", "-o", "json").stdout), &runs); err != nil || len(runs.Runs) != 1 {
		t.Fatalf("runs: %v %+v", err, runs)
	}
	if r := runs.Runs[0]; r.ID != id || r.DurationMS == nil || !strings.HasSuffix(r.CreatedAt, "Z") || !strings.HasSuffix(r.FinishedAt, "Z") {
		t.Errorf("runs row: %+v", r)
	}
	var plan jsonapi.Plan
	if err := json.Unmarshal([]byte(drbook(t, nil, "plan", book, "-i", l.inv, "--answers", answers, "-o", "json").stdout), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Steps) != 2 || plan.Steps[0].TimeoutMS == nil || *plan.Steps[0].TimeoutMS != 30000 {
		t.Errorf("plan: %+v", plan.Steps)
	}

	refused := [][]string{
		{"--db", l.db, "abort", id},
		{"schema", "runbook"},
		{"trust", "-i", l.inv},
		{"lab", "down", "--dir", t.TempDir()},
		{"lab", "disaster", "--dir", t.TempDir(), "--kind", "node-loss"},
		{"demo", "--headless", "--dir", t.TempDir()},
		{"--db", l.db, "run", book, "-i", l.inv}, // the TUI
		{"--db", l.db, "replay", id, "--tui"},    // the TUI
		{"--db", l.db},                           // the TUI
	}
	for _, args := range refused {
		r := drbook(t, nil, append(args, "-o", "json")...)
		if r.code != 2 || !strings.Contains(r.stderr, "JSON output") {
			t.Errorf("drbook %v -o json: exit %d (want 2, refused)\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
}

// TestLabJSON: lab up and lab status print the contract's documents.
func TestLabJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	t.Cleanup(func() {
		drbook(t, nil, "lab", "down", "--dir", dir)
		if pids := agentProcesses(t, dir); len(pids) > 0 {
			t.Errorf("lab down left processes: %v", pids)
		}
	})
	up := drbook(t, nil, "lab", "up", "--dir", dir, "--nodes", "1", "--no-cluster", "-o", "json")
	if up.code != 0 {
		t.Fatalf("lab up: exit %d\n%s\n%s", up.code, up.stdout, up.stderr)
	}
	assertSnakeCase(t, "lab up", up.stdout)
	var doc jsonapi.LabUp
	if err := json.Unmarshal([]byte(up.stdout), &doc); err != nil || len(doc.Nodes) != 1 || doc.Nodes[0].PID <= 0 || doc.Inventory == "" {
		t.Fatalf("lab up: %v %+v", err, doc)
	}
	st := drbook(t, nil, "lab", "status", "--dir", dir, "-o", "json")
	if st.code != 0 {
		t.Fatalf("lab status: exit %d\n%s", st.code, st.stderr)
	}
	assertSnakeCase(t, "lab status", st.stdout)
	var status jsonapi.LabStatus
	if err := json.Unmarshal([]byte(st.stdout), &status); err != nil || len(status.Nodes) != 1 || !status.Nodes[0].Alive {
		t.Errorf("lab status: %v %+v", err, status)
	}
}
