package main

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/drbook/drbook/steps/transport/sshtest"
)

const oneRecordRunbook = `apiVersion: drbook/v1
kind: Runbook
name: one-record
title: The record is the truth
inputs:
  seed: {type: node, prompt: Seed node}
steps:
  - id: hello
    title: Say hello
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo hello from {{ target.name }}; echo to stderr >&2'}
  - id: broken
    title: Fail on purpose
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo about to fail; exit 3'}
`

// recordedFailure runs oneRecordRunbook to its failure and returns the lab
// and the run id.
func recordedFailure(t *testing.T) (*sshLab, string) {
	t.Helper()
	l := newLab(t, sshtest.StartOpenSSH(t), 1)
	rb := l.write(t, "one.yaml", oneRecordRunbook)
	ans := l.write(t, "answers.yaml", "inputs:\n  seed: node1\n")
	r := drbook(t, nil, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db)
	if r.code != exitFailed {
		t.Fatalf("run: exit %d, want %d\n%s%s", r.code, exitFailed, r.stdout, r.stderr)
	}
	return l, runID(t, r.stdout)
}

func sqlExec(t *testing.T, path, query string, args ...any) int64 {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	n, _ := res.RowsAffected()
	return n
}

// TestReplayReadsOnlyTheChain: forging the runs, execs and answers rows (the
// caches the hash chain does not cover) changes nothing replay or runs show,
// in any format, and --verify still reports OK for what the chain holds.
func TestReplayReadsOnlyTheChain(t *testing.T) {
	l, id := recordedFailure(t)
	formats := [][]string{{"replay", id, "--verify"}, {"replay", id, "--format", "markdown", "--verify"},
		{"replay", id, "--format", "json", "--verify"}, {"runs"}, {"runs", "-o", "json"}, {"runs", "--unfinished"}}
	before := make([]string, len(formats))
	for i, f := range formats {
		r := drbook(t, nil, append(f, "--db", l.db)...)
		if r.code != 0 {
			t.Fatalf("replay %v: exit %d\n%s%s", f, r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stderr, "differ") {
			t.Errorf("%v reports differing caches before any edit:\n%s", f, r.stderr)
		}
		before[i] = r.stdout
	}
	// The text replay shows each execution's command and its output.
	for _, want := range []string{"$ echo hello from node1", "hello from node1", "! to stderr", "about to fail", "output of failed broken@node1#1 (1 line(s)):"} {
		if !strings.Contains(before[0], want) {
			t.Errorf("replay text lacks %q:\n%s", want, before[0])
		}
	}
	if !strings.Contains(before[1], "## Commands and output") || !strings.Contains(before[1], "about to fail") {
		t.Errorf("markdown replay lacks commands and output:\n%s", before[1])
	}
	for table, q := range map[string]string{
		"runs": `UPDATE runs SET user = 'alice', host = 'trusted-host', pid = 1, status = 'succeeded',
			runbook_title = 'forged', runbook_name = 'forged', labels = '{"forged":"yes"}' WHERE id = ?`,
		"execs":   `UPDATE execs SET status = 'succeeded', exit_code = 0, error = '', log = 'forged log' WHERE run_id = ?`,
		"answers": `UPDATE answers SET value = '"forged"' WHERE run_id = ?`,
	} {
		if n := sqlExec(t, l.db, q, id); n == 0 {
			t.Fatalf("forging %s changed no row", table)
		}
	}
	if !strings.Contains(before[5], id) || !strings.Contains(before[3], "failed") {
		t.Errorf("runs does not list the failed run %s as resumable:\n%s\n%s", id, before[3], before[5])
	}
	for i, f := range formats {
		r := drbook(t, nil, append(f, "--db", l.db)...)
		if r.code != 0 {
			t.Fatalf("replay %v of forged caches: exit %d\n%s%s", f, r.code, r.stdout, r.stderr)
		}
		if r.stdout != before[i] {
			t.Errorf("replay %v changed when only the caches were edited:\n--- before\n%s\n--- after\n%s", f, before[i], r.stdout)
		}
		if strings.Contains(strings.Join(f, " "), "--verify") &&
			(!strings.Contains(r.stderr, "differ from the hash chain") || !strings.Contains(r.stderr, `runs.host is "trusted-host"`) ||
				!strings.Contains(r.stderr, "execs: broken@node1#1 is succeeded (exit 0), the chain says failed (exit 3)") ||
				!strings.Contains(r.stderr, "answers: seed differs")) {
			t.Errorf("replay %v does not report the forged caches:\n%s", f, r.stderr)
		}
		for _, forged := range []string{"trusted-host", "forged"} {
			if strings.Contains(r.stdout, forged) {
				t.Errorf("replay %v shows the forged %q", f, forged)
			}
		}
	}
}

// TestEditedEventRefused: one event edited in the chain (the failed step
// made to look succeeded) makes replay --verify, resume and abort all exit 5
// naming its seq; resume runs nothing.
func TestEditedEventRefused(t *testing.T) {
	l, id := recordedFailure(t)
	n := sqlExec(t, l.db, `UPDATE events SET data = CAST(replace(CAST(data AS TEXT), '"status":"failed"', '"status":"succeeded"') AS BLOB)
		WHERE run_id = ? AND type = 'step.finished' AND step_id = 'broken'`, id)
	if n != 1 {
		t.Fatalf("edited %d events, want 1", n)
	}
	db, err := sql.Open("sqlite3", l.db)
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	err = db.QueryRow(`SELECT seq FROM events WHERE run_id = ? AND type = 'step.finished' AND step_id = 'broken'`, id).Scan(&seq)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := "event " + itoa(seq)
	rep := drbook(t, nil, "replay", id, "--verify", "--db", l.db)
	if rep.code != exitUnverified || !strings.Contains(rep.stdout+rep.stderr, want) {
		t.Errorf("replay --verify: exit %d, want %d naming %q\n%s%s", rep.code, exitUnverified, want, rep.stdout, rep.stderr)
	}
	res := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
	if res.code != exitUnverified || !strings.Contains(res.stderr, want) {
		t.Errorf("resume: exit %d, want %d naming %q\n%s%s", res.code, exitUnverified, want, res.stdout, res.stderr)
	}
	if strings.Contains(res.stdout, "about to fail") || strings.Contains(res.stdout, "hello") {
		t.Errorf("resume of a broken record ran steps:\n%s", res.stdout)
	}
	// Nor is it signed off by an abort.
	ab := drbook(t, nil, "abort", id, "--reason", "done by hand", "--db", l.db)
	if ab.code != exitUnverified || !strings.Contains(ab.stderr, want) {
		t.Errorf("abort: exit %d, want %d naming %q\n%s%s", ab.code, exitUnverified, want, ab.stdout, ab.stderr)
	}
}
