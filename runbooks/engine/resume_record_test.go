package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// interruptAt starts src and cancels the run once step "s" printed its
// first line; it returns the run id.
func interruptAt(t *testing.T, f *fixture, src string) string {
	t.Helper()
	cfg := f.config(t, src, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Observer = func(ev runlog.Event) {
		if o, ok := ev.(runlog.OutputLine); ok && o.StepID == "s" {
			go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		}
	}
	out, err := engine.Start(ctx, cfg, nil)
	if !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("first run: %v", err)
	}
	return out.RunID
}

const skipSrc = header + `steps:
  - id: first
    run: shell
    on: node1
    with: {command: 'echo x >> "$NODE_DIR/first"'}
  - id: s
    run: shell
    on: node1
    with: {command: 'echo x >> "$NODE_DIR/n"; echo "minted token=tok-partial-1"; sleep 30'}
    outputs: [{name: tok, secret: true}, id]
  - id: last
    run: shell
    on: node1
    with:
      command: 'printf "%s %s\n" "$TOK" "{{ steps.s.outputs.id }}" > "$NODE_DIR/got"'
      env: {TOK: "{{ steps.s.outputs.tok }}"}
`

// TestSkipWithSetOutputs: an interrupted step whose outputs a later step
// uses is skipped with the outputs given; the secret one is sealed (never in
// the database in clear); the partial output of the interrupted execution is
// in its recorded log.
func TestSkipWithSetOutputs(t *testing.T) {
	f := newFixture(t, 1)
	id := interruptAt(t, f, skipSrc)
	const secret = "hunter2-given-by-hand"
	opts := engine.ResumeOptions{Skip: []string{"s"}, SkipReason: "token minted, read from the node",
		SetOutputs: map[string]map[string]string{"s": {"tok": secret, "id": "10564617825209086826"}}}
	if _, err := engine.Resume(context.Background(), f.config(t, skipSrc, nil), id, opts); err != nil {
		t.Fatalf("resume: %v\n%s", err, f.rec.lines())
	}
	got, err := os.ReadFile(filepath.Join(f.dir, "node1", "got"))
	if err != nil || string(got) != secret+" 10564617825209086826\n" {
		t.Fatalf("last step got %q (%v)", got, err)
	}
	if n := f.count(t, "node1", "n"); n != 1 {
		t.Errorf("skipped step ran %d times, want 1", n)
	}
	execs, err := f.db.Execs(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var skipped *state.Exec
	for i := range execs {
		if execs[i].StepID == "s" {
			skipped = &execs[i]
		}
	}
	if skipped == nil || skipped.Status != state.StatusSkipped || !strings.Contains(skipped.Log, "minted token=tok-partial-1") ||
		skipped.Outputs["id"] != "10564617825209086826" || skipped.Outputs["tok"] == secret || len(skipped.SecretOutputs) != 1 {
		t.Fatalf("skipped execution = %+v", skipped)
	}
	// The decision holds the given secret sealed (its key is shredded now
	// that the run succeeded).
	evs, _ := f.db.Events(context.Background(), id)
	sealed := false
	for _, ev := range evs {
		var d state.StepDecision
		if ev.Type == state.EvStepDecision && ev.Decode(&d) == nil && d.Decision == state.DecisionSkip {
			sealed = state.IsSealed(d.Outputs["tok"]) && d.By != "" && d.Reason == opts.SkipReason
		}
	}
	if !sealed {
		t.Error("the skip decision does not hold the secret output sealed with who and why")
	}
	if rep, err := f.db.Verify(context.Background(), id); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	f.db.Close()
	for _, suffix := range []string{"", "-wal"} {
		b, _ := os.ReadFile(filepath.Join(f.dir, "db", "drbook.db"+suffix))
		if strings.Contains(string(b), secret) {
			t.Errorf("the secret output given by hand is in the database%s in clear", suffix)
		}
	}
}

// TestResumeOptionErrors: --redo, --skip and --set-output that cannot apply
// are refused with ErrBadResumeOption, and nothing is recorded.
func TestResumeOptionErrors(t *testing.T) {
	f := newFixture(t, 1)
	id := interruptAt(t, f, skipSrc)
	before, err := f.db.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts engine.ResumeOptions
		want string
	}{
		{"unknown --redo", engine.ResumeOptions{Redo: []string{"nope"}}, `the runbook has no step "nope"`},
		{"--skip of a succeeded step", engine.ResumeOptions{Skip: []string{"first"}, SkipReason: "x"}, "step first is succeeded, not interrupted or failed"},
		{"--redo of a step not started", engine.ResumeOptions{Redo: []string{"last"}}, "step last is not started"},
		{"both", engine.ResumeOptions{Redo: []string{"s"}, Skip: []string{"s"}, SkipReason: "x"}, "both --redo and --skip"},
		{"skip without outputs", engine.ResumeOptions{Skip: []string{"s"}, SkipReason: "x"}, "--set-output s.tok=VALUE --set-output s.id=VALUE"},
		{"skip with one output", engine.ResumeOptions{Skip: []string{"s"}, SkipReason: "x", SetOutputs: map[string]map[string]string{"s": {"id": "1"}}}, "its outputs tok"},
		{"unknown output", engine.ResumeOptions{Skip: []string{"s"}, SkipReason: "x", SetOutputs: map[string]map[string]string{"s": {"id": "1", "tok": "t", "typo": "1"}}}, `declares no output "typo"`},
		{"outputs without --skip", engine.ResumeOptions{SetOutputs: map[string]map[string]string{"s": {"id": "1"}}}, "only be given for a step skipped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := engine.Resume(context.Background(), f.config(t, skipSrc, nil), id, tc.opts)
			if !errors.Is(err, engine.ErrBadResumeOption) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("resume: %v, want ErrBadResumeOption with %q", err, tc.want)
			}
			after, err := f.db.Events(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("%d events recorded by a refused resume", len(after)-len(before))
			}
		})
	}
}

// TestAcceptedChangeIsRecorded: after a resume accepted a changed runbook,
// the record holds the new one, so resuming again with it is no change.
func TestAcceptedChangeIsRecorded(t *testing.T) {
	f := newFixture(t, 1)
	src := header + "steps:\n  - id: a\n    run: shell\n    on: node1\n    with: {command: 'exit 1'}\n"
	out, err := engine.Start(context.Background(), f.config(t, src, nil), nil)
	if !errors.Is(err, engine.ErrStepFailed) {
		t.Fatal(err)
	}
	changed := strings.Replace(src, "exit 1", "exit 2", 1)
	if _, err := engine.Resume(context.Background(), f.config(t, changed, nil), out.RunID, engine.ResumeOptions{AcceptChanged: true}); !errors.Is(err, engine.ErrStepFailed) {
		t.Fatalf("accepted resume: %v", err)
	}
	if _, err := engine.Resume(context.Background(), f.config(t, changed, nil), out.RunID, engine.ResumeOptions{}); !errors.Is(err, engine.ErrStepFailed) {
		t.Fatalf("resume with the recorded (changed) runbook: %v, want the step to fail again, not a refusal", err)
	}
	_, err = engine.Resume(context.Background(), f.config(t, src, nil), out.RunID, engine.ResumeOptions{})
	if !errors.Is(err, engine.ErrRunbookChanged) {
		t.Fatalf("resume with the original runbook after the change: %v, want ErrRunbookChanged", err)
	}
	run, _ := f.db.GetRun(context.Background(), out.RunID)
	evs, _ := f.db.Events(context.Background(), out.RunID)
	files, err := engine.RecordedFiles(run, evs)
	if err != nil || string(files.Runbook.Bytes()) != changed {
		t.Fatalf("recorded runbook = %q (%v)", files.Runbook.Bytes(), err)
	}
}

// TestStepAnswersRecorded: the literal answers to non-secret input steps are
// kept in the record (for a resume without the answers file); secret ones
// and {env:} references are not.
func TestStepAnswersRecorded(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `steps:
  - id: ticket
    run: input
    with: {prompt: Ticket}
  - id: pw
    run: input
    with: {prompt: Password, type: secret}
  - id: from-env
    run: input
    with: {prompt: Region}
`
	t.Setenv("DRBOOK_TEST_REGION", "eu-1")
	answers, err := runbooks.ParseAnswers("answers.yaml", []byte("steps:\n  ticket: INC-7\n  pw: s3cret-answer\n  from-env: {env: DRBOOK_TEST_REGION}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.config(t, src, &engine.Headless{Yes: true, Answers: answers})
	cfg.Answers = answers
	out, err := engine.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	run, _ := f.db.GetRun(context.Background(), out.RunID)
	evs, _ := f.db.Events(context.Background(), out.RunID)
	files, err := engine.RecordedFiles(run, evs)
	if err != nil {
		t.Fatal(err)
	}
	execs, _ := f.db.Execs(context.Background(), out.RunID)
	for _, x := range execs {
		if x.StepID == "from-env" && x.Outputs["value"] != "eu-1" {
			t.Errorf("input step answered {env: DRBOOK_TEST_REGION} got %q, want eu-1", x.Outputs["value"])
		}
	}
	if len(files.StepAnswers) != 1 || files.StepAnswers["ticket"] != "INC-7" {
		t.Fatalf("recorded step answers = %v, want only ticket", files.StepAnswers)
	}
	if wd, _ := os.Getwd(); files.WorkDir != wd || files.Runbook == nil || string(files.Runbook.Bytes()) != src || files.Inventory == nil {
		t.Fatalf("recorded files = %+v", files)
	}
}

// TestUnwedgeOldSkip: a record where an earlier drbook skipped a step
// without the outputs a later step uses (that step then fails on every
// resume) is got past with --skip STEP --set-output.
func TestUnwedgeOldSkip(t *testing.T) {
	f := newFixture(t, 1)
	id := interruptAt(t, f, skipSrc)
	// As drbook did before --set-output: the skip recorded alone.
	if _, err := f.db.Append(context.Background(), state.Event{RunID: id, Type: state.EvStepDecision, StepID: "s", Target: "node1", Attempt: 1,
		Data: []byte(`{"decision":"skip","reason":"done by hand","by":"old"}`)}); err != nil {
		t.Fatal(err)
	}
	_, err := engine.Resume(context.Background(), f.config(t, skipSrc, nil), id, engine.ResumeOptions{})
	execs, _ := f.db.Execs(context.Background(), id)
	if !errors.Is(err, engine.ErrStepFailed) || len(execs) == 0 || !strings.Contains(execs[len(execs)-1].Error, "produced no output") {
		t.Fatalf("wedged resume: %v, want the last step to fail for want of the output (%+v)", err, execs)
	}
	opts := engine.ResumeOptions{Skip: []string{"s"}, SkipReason: "values read from the node",
		SetOutputs: map[string]map[string]string{"s": {"tok": "t0k", "id": "7"}}}
	if _, err := engine.Resume(context.Background(), f.config(t, skipSrc, nil), id, opts); err != nil {
		t.Fatalf("resume with the outputs: %v\n%s", err, f.rec.lines())
	}
	if got, _ := os.ReadFile(filepath.Join(f.dir, "node1", "got")); string(got) != "t0k 7\n" {
		t.Fatalf("last step got %q", got)
	}
	if n := f.count(t, "node1", "n"); n != 1 {
		t.Errorf("skipped step ran %d times, want 1", n)
	}
}
