package export

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/drbook/drbook/state"
)

var update = flag.Bool("update", false, "rewrite golden files")

const secretPlain = "correct-horse-battery-staple-4711"

// recorded is a run written through the state API, read back from the DB.
type recorded struct {
	run    state.Run
	events []state.Event
	execs  []state.Exec
	rep    *state.VerifyReport
	sealed []string
	path   string
}

// record writes a realistic rehearsal run with retries, an interruption, a
// resume, a skip, secrets and a note, then reads it back.
func record(t *testing.T) recorded {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "drbook.db")
	db, err := state.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	run := state.Run{
		ID: "r20260301-100000-c0de", RunbookName: "total-cluster-recovery", RunbookTitle: "Rebuild the key store from a backup",
		RunbookPath: "library:total-cluster-recovery", RunbookSHA256: strings.Repeat("1f", 32), RunbookSource: []byte("kind: Runbook\n"),
		InventoryPath: "lab/inventory.yaml", InventorySHA256: strings.Repeat("2e", 32), Mode: state.ModeRehearsal,
		CreatedAt: t0, Host: "lab-laptop", PID: 4242, User: "alice", Labels: map[string]string{"drill": "Q1 | total loss"},
	}
	if err := db.CreateRun(ctx, &run); err != nil {
		t.Fatal(err)
	}
	var sealed []string
	seal := func() string {
		s, err := db.Seal(ctx, run.ID, secretPlain)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, s)
		return s
	}
	at := t0
	add := func(d time.Duration, typ state.EventType, step, target string, attempt int, p any) {
		t.Helper()
		at = at.Add(d)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Append(ctx, state.Event{RunID: run.ID, Time: at, Type: typ, StepID: step, Target: target, Attempt: attempt, Data: b}); err != nil {
			t.Fatal(err)
		}
	}
	s := time.Second
	add(2*s, state.EvAnswer, "", "", 0, state.Answer{Name: "seed", Value: "n1"})
	add(1*s, state.EvAnswer, "", "", 0, state.Answer{Name: "backup", Value: "/var/backups/kv-0301.bak"})
	add(3*s, state.EvAnswer, "", "", 0, state.Answer{Name: "backup_key", Value: seal(), Secret: true})
	add(1*s, state.EvOperatorWait, "bootstrap", "n1", 1, state.OperatorWait{Kind: state.WaitConfirm, Prompt: "Type n1 to bootstrap", Response: "n1", By: "alice", DurationMS: 12500})
	add(0, state.EvStepStarted, "bootstrap", "n1", 1, state.StepStarted{Title: "Create a single-node cluster on the seed", Kind: "agent.bootstrap", Danger: true})
	add(4*s, state.EvStepFinished, "bootstrap", "n1", 1, state.StepFinished{Status: state.StatusSucceeded, Outputs: map[string]string{"cluster_id": "c-7f3a"}, Log: "bootstrapped c-7f3a\n", DurationMS: 4000})
	add(1*s, state.EvStepStarted, "restore", "n1", 1, state.StepStarted{Title: "Restore the backup", Kind: "agent.restore"})
	add(2*s, state.EvStepFinished, "restore", "n1", 1, state.StepFinished{Status: state.StatusFailed, ExitCode: 3, Error: "backup: wrong passphrase", Log: "restore: key check failed\n", DurationMS: 2000})
	add(1*s, state.EvOperatorWait, "restore", "n1", 1, state.OperatorWait{Kind: state.WaitFailure, Prompt: "restore failed: retry, skip or abort?", Response: "retry", By: "alice", DurationMS: 30000})
	add(0, state.EvStepDecision, "restore", "n1", 1, state.StepDecision{Decision: state.DecisionRetry, Reason: "re-entered the passphrase", By: "alice"})
	add(1*s, state.EvAnswer, "", "", 0, state.Answer{Name: "backup_key", Value: seal(), Secret: true})
	add(1*s, state.EvStepStarted, "restore", "n1", 2, state.StepStarted{Title: "Restore the backup", Kind: "agent.restore"})
	add(5*s, state.EvStepFinished, "restore", "n1", 2, state.StepFinished{Status: state.StatusSucceeded, Outputs: map[string]string{"keys": "1200"}, DurationMS: 5000})
	add(1*s, state.EvStepStarted, "token", "n1", 1, state.StepStarted{Title: "Create a join token", Kind: "agent.token-create"})
	add(1*s, state.EvStepFinished, "token", "n1", 1, state.StepFinished{Status: state.StatusSucceeded, Outputs: map[string]string{"token": seal(), "expires": "24h"}, SecretOutputs: []string{"token"}, DurationMS: 1000})
	add(1*s, state.EvStepStarted, "join", "n2", 1, state.StepStarted{Title: "Join n2", Kind: "agent.join"})
	// The runner is killed here; another runner resumes.
	add(90*s, state.EvRunResumed, "", "", 0, state.RunResumed{Host: "lab-laptop", PID: 5151, User: "alice", RunbookSHA256: strings.Repeat("1f", 32)})
	add(0, state.EvStepDecision, "join", "n2", 1, state.StepDecision{Decision: state.DecisionInterrupted, Reason: "runner died", By: "drbook"})
	add(1*s, state.EvStepStarted, "join", "n2", 2, state.StepStarted{Title: "Join n2", Kind: "agent.join"})
	add(3*s, state.EvStepFinished, "join", "n2", 2, state.StepFinished{Status: state.StatusSucceeded, DurationMS: 3000})
	add(1*s, state.EvStepDecision, "join", "n3", 1, state.StepDecision{Decision: state.DecisionSkip, Reason: "n3 | already a member", By: "alice"})
	add(2*s, state.EvNote, "", "", 0, state.Note{Text: "## Rehearsal report\n\nRTO 2m54s (target 15m): **met**.\nRPO: 0 keys lost | 1200 restored.\nToken used: " + sealed[0] + " (sealed).\n", Data: map[string]string{"rto": "2m54s", "secret_ref": sealed[0]}})
	add(0, state.EvRunFinished, "", "", 0, state.RunFinished{Status: state.StatusSucceeded, MachineMS: 15000, HumanMS: 42500})

	rec := recorded{sealed: sealed, path: path}
	if rec.run, err = db.GetRun(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if rec.events, err = db.Events(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if rec.execs, err = db.Execs(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := db.Verify(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	rec.rep = &rep
	return rec
}

func TestGolden(t *testing.T) {
	rec := record(t)
	renderers := []struct {
		name string
		fn   func(rec recorded, w *bytes.Buffer) error
	}{
		{"text.golden", func(r recorded, w *bytes.Buffer) error { return Text(w, r.run, r.events, r.execs, r.rep) }},
		{"json.golden", func(r recorded, w *bytes.Buffer) error { return JSON(w, r.run, r.events, r.execs, r.rep) }},
		{"markdown.golden", func(r recorded, w *bytes.Buffer) error { return Markdown(w, r.run, r.events, r.execs, r.rep) }},
	}
	for _, r := range renderers {
		t.Run(r.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := r.fn(rec, &buf); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			// Sealed values use random nonces, so the hashes of the events
			// holding them (and of every later event) change from run to
			// run: name hashes by seq instead.
			for _, ev := range rec.events {
				out = strings.ReplaceAll(out, ev.Hash, fmt.Sprintf("<hash of %d>", ev.Seq))
			}
			out = strings.ReplaceAll(out, rec.run.HeadHash[:12], "<head>")
			if strings.Contains(out, secretPlain) {
				t.Fatal("secret in clear in the export")
			}
			for _, s := range rec.sealed {
				if strings.Contains(out, s) {
					t.Fatal("sealed value in the export; want the mask")
				}
			}
			if !strings.Contains(out, Mask) {
				t.Fatal("no mask in the export, yet the run has secrets")
			}
			golden := filepath.Join("testdata", r.name)
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if out != string(want) {
				t.Fatalf("%s differs from golden (run with -update if intended):\n%s", r.name, out)
			}
		})
	}
}

func TestJSONDocument(t *testing.T) {
	rec := record(t)
	var buf bytes.Buffer
	if err := JSON(&buf, rec.run, rec.events, rec.execs, rec.rep); err != nil {
		t.Fatal(err)
	}
	var doc Document
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Run.ID != rec.run.ID || len(doc.Events) != len(rec.events) || len(doc.Steps) != len(rec.execs) ||
		doc.Verify == nil || !doc.Verify.OK || doc.Timing.HumanMS != 42500 || doc.Timing.Source != "run.finished" {
		t.Fatalf("document = %+v", doc)
	}
	var restore2 *StepDoc
	for i := range doc.Steps {
		if doc.Steps[i].StepID == "restore" && doc.Steps[i].Attempt == 2 {
			restore2 = &doc.Steps[i]
		}
	}
	if restore2 == nil || restore2.DurationMS != 5000 || restore2.Status != state.StatusSucceeded {
		t.Fatalf("restore attempt 2 = %+v", restore2)
	}
	for _, s := range doc.Steps {
		if s.StepID == "token" && s.Outputs["token"] != Mask {
			t.Fatalf("token output = %q, want mask", s.Outputs["token"])
		}
	}
}

func TestBrokenChainReported(t *testing.T) {
	rec := record(t)
	raw, err := sql.Open("sqlite3", rec.path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE events SET target = 'n9' WHERE run_id = ? AND seq = 8`, rec.run.ID); err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(context.Background(), rec.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := db.Verify(context.Background(), rec.run.ID)
	if err == nil {
		t.Fatal("tampered run verifies")
	}
	checks := []struct {
		name string
		fn   func(*bytes.Buffer) error
		want string
	}{
		{"text", func(w *bytes.Buffer) error { return Text(w, rec.run, rec.events, rec.execs, &rep) }, "Verification: FAILED: event 8: hash mismatch"},
		{"markdown", func(w *bytes.Buffer) error { return Markdown(w, rec.run, rec.events, rec.execs, &rep) }, "**FAILED**: event 8: hash mismatch (first bad event: 8"},
		{"json", func(w *bytes.Buffer) error { return JSON(w, rec.run, rec.events, rec.execs, &rep) }, `"first_bad_seq": 8`},
		{"text unverified", func(w *bytes.Buffer) error { return Text(w, rec.run, rec.events, rec.execs, nil) }, "Verification: not verified"},
	}
	for _, c := range checks {
		var buf bytes.Buffer
		if err := c.fn(&buf); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), c.want) {
			t.Errorf("%s export lacks %q:\n%s", c.name, c.want, buf.String())
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteErrors(t *testing.T) {
	rec := record(t)
	for name, fn := range map[string]func() error{
		"text":     func() error { return Text(failWriter{}, rec.run, rec.events, rec.execs, rec.rep) },
		"json":     func() error { return JSON(failWriter{}, rec.run, rec.events, rec.execs, rec.rep) },
		"markdown": func() error { return Markdown(failWriter{}, rec.run, rec.events, rec.execs, rec.rep) },
	} {
		if err := fn(); err == nil {
			t.Errorf("%s: no error from a failing writer", name)
		}
	}
}
