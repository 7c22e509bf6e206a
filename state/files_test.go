package state

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRecordedFileRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content []byte
		raw     bool
	}{
		{"utf8", []byte("apiVersion: drbook/v1\nkind: Runbook\n# é\n"), false},
		{"invalid utf8", []byte("name: x\n\xff\xfe\x00 tail\n"), true},
		{"empty", []byte{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewRecordedFile("dir/f.yaml", tc.content)
			b, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			var back RecordedFile
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.Bytes(), tc.content) || (back.Raw != nil) != tc.raw || back.Path != "dir/f.yaml" {
				t.Fatalf("round trip: %q raw=%v, want %q raw=%v", back.Bytes(), back.Raw != nil, tc.content, tc.raw)
			}
			if err := back.check("runbook"); err != nil {
				t.Fatal(err)
			}
			back.Text += "x"
			back.Raw = append(back.Raw, 'x')
			if back.check("runbook") == nil {
				t.Fatal("a changed content passes its sha256 check")
			}
		})
	}
	if NewRecordedFile("x", nil) != nil {
		t.Fatal("no content must record no file")
	}
}

// TestFilesFromRecord: the record holds the runbook and inventory a run
// started with, replaced by those a resume recorded, and Verify covers them.
func TestFilesFromRecord(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	r := Run{RunbookName: "x", RunbookPath: "rb.yaml", RunbookSHA256: digestOf("rb v1"), RunbookSource: []byte("rb v1"),
		InventoryPath: "inv.yaml", InventorySHA256: digestOf("inv v1"), InventorySource: []byte("inv v1"),
		Mode: ModeHeadless, WorkDir: "/srv/dr", StepAnswers: map[string]string{"ticket": "INC-1"}}
	if err := db.CreateRun(ctx, &r); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Files(evs)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Runbook.Bytes()) != "rb v1" || string(f.Inventory.Bytes()) != "inv v1" || f.WorkDir != "/srv/dr" ||
		f.StepAnswers["ticket"] != "INC-1" || f.RunbookSHA256 != digestOf("rb v1") || f.Inventory.Path != "inv.yaml" {
		t.Fatalf("Files at start = %+v", f)
	}
	appendEvent(t, db, r.ID, EvRunResumed, "", "", 0, RunResumed{AcceptChanged: true, RunbookSHA256: digestOf("rb v2"),
		Runbook: NewRecordedFile("/other/rb.yaml", []byte("rb v2")), WorkDir: "/other"})
	evs, _ = db.Events(ctx, r.ID)
	if f, err = Files(evs); err != nil {
		t.Fatal(err)
	}
	if string(f.Runbook.Bytes()) != "rb v2" || string(f.Inventory.Bytes()) != "inv v1" || f.WorkDir != "/other" || f.RunbookSHA256 != digestOf("rb v2") {
		t.Fatalf("Files after an accepted change = %+v", f)
	}
	if _, err := db.Verify(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
}

// TestVerifySourceDigest: a recorded file whose content does not match its
// sha256 fails verification even when the event hash is consistent.
func TestVerifySourceDigest(t *testing.T) {
	for _, tc := range []struct {
		name string
		file *RecordedFile
		ok   bool
	}{
		{"matching", NewRecordedFile("rb.yaml", []byte("steps: []")), true},
		{"content changed, hash recomputed", &RecordedFile{Path: "rb.yaml", SHA256: digestOf("steps: []"), Text: "steps: [evil]"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, _ := json.Marshal(RunCreated{RunbookName: "x", Runbook: tc.file})
			ev := Event{RunID: "r1", Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Type: EvRunCreated, Data: data, PrevHash: GenesisHash("r1")}
			ev.Hash = EventHash(ev)
			rows := []rawEvent{{RunID: "r1", Seq: "1", Time: formatTime(ev.Time), Type: string(ev.Type), Attempt: "0", Data: data, PrevHash: ev.PrevHash, Hash: ev.Hash}}
			rep := verifyChain("r1", rows, 1, ev.Hash)
			if rep.OK != tc.ok || (!tc.ok && !strings.Contains(rep.Reason, "does not match its sha256")) {
				t.Fatalf("verify = %+v, want ok %v", rep, tc.ok)
			}
		})
	}
}

// TestStepOutputProjection: step.output chunks append to a running
// execution's log in order; step.finished replaces them; a skip decision
// with outputs projects them.
func TestStepOutputProjection(t *testing.T) {
	db, _ := openTest(t)
	r := newRun(t, db)
	appendEvent(t, db, r.ID, EvStepStarted, "add", "n1", 1, StepStarted{Kind: "shell"})
	appendEvent(t, db, r.ID, EvStepOutput, "add", "n1", 1, NewStepOutput(0, []byte("new_id=42\n")))
	appendEvent(t, db, r.ID, EvStepOutput, "add", "n1", 1, NewStepOutput(3, []byte("out of order\n"))) // ignored
	appendEvent(t, db, r.ID, EvStepOutput, "add", "n1", 1, NewStepOutput(10, []byte("bin \xff\n")))
	logOf := func() Exec {
		xs, err := db.Execs(context.Background(), r.ID)
		if err != nil || len(xs) != 1 {
			t.Fatalf("execs %v %v", xs, err)
		}
		return xs[0]
	}
	if got := logOf().Log; got != "new_id=42\nbin \xff\n" {
		t.Fatalf("log so far = %q", got)
	}
	appendEvent(t, db, r.ID, EvStepDecision, "add", "n1", 1, StepDecision{Decision: DecisionInterrupted, By: "engine"})
	appendEvent(t, db, r.ID, EvStepDecision, "add", "n1", 1, StepDecision{Decision: DecisionSkip, By: "alice", Reason: "it ran",
		Outputs: map[string]string{"new_id": "42"}})
	x := logOf()
	if x.Status != StatusSkipped || x.Outputs["new_id"] != "42" || x.Log != "new_id=42\nbin \xff\n" {
		t.Fatalf("after skip with outputs: %+v", x)
	}
	if _, err := db.Verify(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
}

func digestOf(s string) string { return NewRecordedFile("", []byte(s)).SHA256 }
