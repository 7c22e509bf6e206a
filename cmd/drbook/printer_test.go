package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const resumeBook = `apiVersion: drbook/v1
kind: Runbook
name: printer-resume
steps:
  - id: first
    run: shell
    on: node1
    with: {command: 'echo first output'}
  - id: broken
    run: shell
    on: node1
    with: {command: 'echo about to fail; exit 3'}
  - id: guarded
    run: shell
    on: node1
    when: 'false'
    with: {command: 'true'}
  - id: last
    run: shell
    on: node1
    with: {command: 'echo last output'}
`

// TestPrinterFoldsTheRecordOnResume: the headless printer of a resume
// folds the record the engine hands over first, says what it already
// settled, and prints none of that history again — in text and in the
// JSON stream, which starts at the resume's own run.resumed event.
func TestPrinterFoldsTheRecordOnResume(t *testing.T) {
	l := newLocalLab(t)
	book := l.write(t, "book.yaml", resumeBook)
	first := drbook(t, nil, "--db", l.db, "run", book, "-i", l.inv, "--headless", "--yes")
	if first.code != 1 {
		t.Fatalf("run: exit %d, want 1 (a step failed)\n%s\n%s", first.code, first.stdout, first.stderr)
	}
	for _, want := range []string{"run r", "(4 steps)", "▶ first (shell) on node1", "│ node1: first output", "✓ first on node1 succeeded",
		"✗ broken on node1 failed", "command failed with exit status 3", "failed r"} {
		if !strings.Contains(first.stdout, want) {
			t.Errorf("run output lacks %q:\n%s", want, first.stdout)
		}
	}
	id := strings.Fields(strings.TrimPrefix(first.stdout, "run "))[0]
	id = strings.TrimSuffix(id, ":")

	res := drbook(t, nil, "--db", l.db, "resume", id, "--skip", "broken", "--reason", "fixed by hand", "--yes")
	if res.code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"resume " + id + ": printer-resume (4 steps)", "✓ first already succeeded (from the record)",
		"broken on node1: skip — fixed by hand", "- guarded skipped: guard when: is false", "│ node1: last output", "✓ last on node1 succeeded", "succeeded " + id} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("resume output lacks %q:\n%s", want, res.stdout)
		}
	}
	for _, history := range []string{"first output", "about to fail", "✗ broken"} {
		if strings.Contains(res.stdout, history) {
			t.Errorf("resume output repeats the record's history (%q):\n%s", history, res.stdout)
		}
	}
	if strings.Index(res.stdout, "resume ") != 0 {
		t.Errorf("resume output does not start with its resume line:\n%s", res.stdout)
	}
}

// TestPrinterJSONStreamOfResume: the JSON stream of a resume starts at its
// run.resumed event and goes on from the record's last seq.
func TestPrinterJSONStreamOfResume(t *testing.T) {
	l := newLocalLab(t)
	book := l.write(t, "book.yaml", resumeBook)
	first := drbook(t, nil, "--db", l.db, "run", book, "-i", l.inv, "--headless", "--yes", "-o", "json")
	lines := strings.Split(strings.TrimSpace(first.stdout), "\n")
	var last struct {
		RunID string `json:"run_id"`
		Seq   int64  `json:"seq"`
		Event string `json:"event"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Event != "run.finished" {
		t.Fatalf("last line of the run: %v %+v\n%s", err, last, first.stdout)
	}
	res := drbook(t, nil, "--db", l.db, "resume", last.RunID, "--skip", "broken", "--reason", "fixed by hand", "--yes", "-o", "json")
	if res.code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var head struct {
		Event string `json:"event"`
		Seq   int64  `json:"seq"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(res.stdout, "\n", 2)[0]), &head); err != nil {
		t.Fatal(err)
	}
	if head.Event != "run.resumed" || head.Seq != last.Seq+1 {
		t.Errorf("the resume's stream starts with %s seq %d, want run.resumed seq %d:\n%s", head.Event, head.Seq, last.Seq+1, res.stdout)
	}
}
