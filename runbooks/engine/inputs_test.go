package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// inputsRunbook: a danger step that uses label and node, a guarded step
// whose guard reads skip_extra, then a restore that uses backup and the
// secret key. Restore fails unless backup names an existing file and the
// key is right.
const inputsRunbook = header + `inputs:
  node: {type: node, prompt: node}
  label: {type: string, prompt: label}
  skip_extra: {type: bool, prompt: skip, default: true}
  backup: {type: string, prompt: backup}
  key: {type: secret, prompt: key}
steps:
  - id: wipe
    run: shell
    on: "{{ inputs.node }}"
    danger: true
    with: {command: 'echo x >> "$NODE_DIR/wipe"; echo wiped {{ inputs.label }}'}
  - id: extra
    run: shell
    on: "{{ inputs.node }}"
    when: "{{ not inputs.skip_extra }}"
    with: {command: 'echo x >> "$NODE_DIR/extra"'}
  - id: restore
    run: shell
    on: "{{ inputs.node }}"
    with:
      command: 'echo x >> "$NODE_DIR/restore"; test "$(printf %s "$KEY" | sha256sum | cut -c1-16)" = 09e6db50d377e429 && test -f "$NODE_DIR/{{ inputs.backup }}" && echo restored'
      env: {KEY: "{{ inputs.key }}"}
`

func answersOf(t *testing.T, kv map[string]any) *runbooks.Answers {
	t.Helper()
	a := &runbooks.Answers{File: "fixed.yaml", Inputs: map[string]runbooks.Answer{}, Steps: map[string]runbooks.Answer{}}
	for k, v := range kv {
		a.Inputs[k] = runbooks.Answer{Value: v, Pos: runbooks.Pos{Line: 1, Col: 1}}
	}
	return a
}

func TestResumeChangesUnusedInputs(t *testing.T) {
	f := newFixture(t, 2)
	if err := os.WriteFile(filepath.Join(f.dir, "node1", "good.bak"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	first := map[string]runbooks.Value{
		"node": {V: "node1"}, "label": {V: "primary"}, "skip_extra": {V: true},
		"backup": {V: "bad.bak"}, "key": {V: "wrong-key-0", Secret: true},
	}
	out, err := engine.Start(context.Background(), f.config(t, inputsRunbook, nil), first)
	if !errors.Is(err, engine.ErrStepFailed) {
		t.Fatalf("first run: %v, want restore to fail", err)
	}
	resume := func(opts engine.ResumeOptions) error {
		_, err := engine.Resume(context.Background(), f.config(t, inputsRunbook, nil), out.RunID, opts)
		return err
	}
	eventsBefore := func() int {
		evs, err := f.db.Events(context.Background(), out.RunID)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	n0 := eventsBefore()

	refusals := []struct {
		name    string
		answers map[string]any
		reason  string
		want    error
		texts   []string
	}{
		{"used by the danger step", map[string]any{"label": "secondary", "backup": "good.bak"}, "typo", engine.ErrInputUsed,
			[]string{`input "label" was used by step wipe (succeeded)`}},
		{"target of the danger step", map[string]any{"node": "node2", "backup": "good.bak"}, "typo", engine.ErrInputUsed,
			[]string{`input "node" was used by step wipe (succeeded)`}},
		{"unchanged target, changes without a reason", map[string]any{"node": "node1", "backup": "good.bak", "key": "right-key-1"}, "", engine.ErrReasonNeeded,
			[]string{"backup, key", "--reason"}},
		{"read by a guard", map[string]any{"skip_extra": false}, "typo", engine.ErrInputUsed,
			[]string{`input "skip_extra" was used by step extra (its guard when:)`}},
		{"no reason", map[string]any{"backup": "good.bak"}, " ", engine.ErrReasonNeeded, []string{"backup"}},
		{"bad answer", map[string]any{"node": "node9"}, "typo", runbooks.ErrInvalid, []string{"node9"}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			err := resume(engine.ResumeOptions{Answers: answersOf(t, tc.answers), InputReason: tc.reason})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			for _, want := range tc.texts {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), "right-key-1") {
				t.Errorf("secret in the error: %v", err)
			}
			if n := eventsBefore(); n != n0 {
				t.Errorf("a refused resume recorded %d events", n-n0)
			}
		})
	}
	if got := f.count(t, "node1", "restore"); got != 1 {
		t.Fatalf("restore ran %d times before the fix", got)
	}

	// The fix: backup and the secret key change (the same node and label
	// are given again, unchanged); the run goes on with the new values.
	fixed := answersOf(t, map[string]any{"node": "node1", "label": "primary", "backup": "good.bak", "key": "right-key-1"})
	if err := resume(engine.ResumeOptions{Answers: fixed, InputReason: "backup name mistyped"}); err != nil {
		t.Fatalf("resume with the fix: %v\n%s", err, f.rec.lines())
	}
	for step, want := range map[string]int{"wipe": 1, "extra": 0, "restore": 2} {
		if got := f.count(t, "node1", step); got != want {
			t.Errorf("%s ran %d times, want %d", step, got, want)
		}
	}
	var notices []string
	for _, ev := range f.rec.events {
		if n, ok := ev.(runlog.Notice); ok {
			notices = append(notices, n.Text)
		}
	}
	shown := strings.Join(notices, "\n")
	for _, want := range []string{`input backup changed by ` + engine.Operator() + ` from "bad.bak" to "good.bak": backup name mistyped`, "input key changed by " + engine.Operator() + " (secret, compared by hash)"} {
		if !strings.Contains(shown, want) {
			t.Errorf("notices lack %q:\n%s", want, shown)
		}
	}
	if strings.Contains(shown, "right-key-1") || strings.Contains(shown, "wrong-key-0") {
		t.Errorf("secret shown in a notice:\n%s", shown)
	}
	evs, err := f.db.Events(context.Background(), out.RunID)
	if err != nil {
		t.Fatal(err)
	}
	changed := map[string]state.Answer{}
	for _, ev := range evs {
		if ev.Type == state.EvAnswer {
			var a state.Answer
			if err := ev.Decode(&a); err != nil {
				t.Fatal(err)
			}
			if a.Changed {
				changed[a.Name] = a
			}
		}
		if strings.Contains(string(ev.Data), "right-key-1") || strings.Contains(string(ev.Data), "wrong-key-0") {
			t.Errorf("secret in clear in event %d (%s)", ev.Seq, ev.Type)
		}
	}
	if len(changed) != 2 {
		t.Fatalf("changed answers %v, want backup and key", changed)
	}
	if a := changed["backup"]; a.Value != `"good.bak"` || a.By != engine.Operator() || a.Reason != "backup name mistyped" {
		t.Errorf("backup change recorded as %+v", a)
	}
	if a := changed["key"]; !a.Secret || !state.IsSealed(a.Value) {
		t.Errorf("secret change not sealed: %+v", a)
	}
	// Giving the recorded values again is no change and needs no reason.
	if _, err := engine.Resume(context.Background(), f.config(t, inputsRunbook, nil), out.RunID, engine.ResumeOptions{Answers: fixed}); !errors.Is(err, engine.ErrRunFinished) {
		t.Errorf("resume of the finished run: %v", err)
	}
	if rep, err := f.db.Verify(context.Background(), out.RunID); err != nil || !rep.OK {
		t.Errorf("verify: %+v %v", rep, err)
	}
}
