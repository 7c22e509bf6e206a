package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbook/drbook/steps/transport/sshtest"
)

// wrongInputRunbook: a danger step on the node, then a restore that fails
// while the backup input names a file that is not there.
const wrongInputRunbook = `apiVersion: drbook/v1
kind: Runbook
name: e2e-wrong-input
title: A wrong input found after a danger step
inputs:
  node: {type: node, prompt: Node to rebuild}
  backup: {type: string, prompt: Backup file on the node}
steps:
  - id: wipe
    title: Wipe the node
    run: shell
    on: "{{ inputs.node }}"
    danger: true
    with: {command: 'echo x >> "$NODE_DIR/wipe.count"; echo wiped'}
  - id: restore
    title: Restore the backup
    run: shell
    on: "{{ inputs.node }}"
    with: {command: 'echo x >> "$NODE_DIR/restore.count"; test -f "$NODE_DIR/{{ inputs.backup }}" && echo restored from {{ inputs.backup }}'}
`

// TestResumeWithCorrectedAnswer: a run whose restore fails on a mistyped
// backup name, after a danger step, is finished by resume --answers with
// the right name; changing the node, which the danger step used, is refused
// naming that step.
func TestResumeWithCorrectedAnswer(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 2)
	if err := os.WriteFile(filepath.Join(l.srv.Dir, "node1", "full.bak"), []byte("backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	rb := l.write(t, "rebuild.yaml", wrongInputRunbook)
	wrong := l.write(t, "answers.yaml", "inputs:\n  node: node1\n  backup: ful.bak\n")
	r := drbook(t, nil, "run", rb, "-i", l.inv, "--answers", wrong, "--headless", "--yes", "--db", l.db)
	if r.code != 1 {
		t.Fatalf("run with the wrong backup: exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	id := runID(t, r.stdout)

	// Without the correction the resume loops on the same failure.
	same := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
	if same.code != 1 || l.counter(t, "node1", "restore") != 2 {
		t.Fatalf("plain resume: exit %d, restore ran %d times\n%s%s", same.code, l.counter(t, "node1", "restore"), same.stdout, same.stderr)
	}

	otherNode := l.write(t, "other.yaml", "inputs:\n  node: node2\n  backup: full.bak\n")
	refused := drbook(t, nil, "resume", id, "--answers", otherNode, "--reason", "wrong node", "--yes", "--db", l.db)
	if refused.code != exitUsage || !strings.Contains(refused.stderr, `input "node" was used by step wipe (succeeded)`) {
		t.Fatalf("changing a used input: exit %d, want %d naming step wipe\n%s%s", refused.code, exitUsage, refused.stdout, refused.stderr)
	}

	fixed := l.write(t, "fixed.yaml", "inputs:\n  node: node1\n  backup: full.bak\n")
	noReason := drbook(t, nil, "resume", id, "--answers", fixed, "--yes", "--db", l.db)
	if noReason.code != exitUsage || !strings.Contains(noReason.stderr, "--reason") {
		t.Fatalf("change without --reason: exit %d, want %d\n%s%s", noReason.code, exitUsage, noReason.stdout, noReason.stderr)
	}
	if n := l.counter(t, "node1", "restore"); n != 2 {
		t.Fatalf("a refused resume ran restore (%d runs)", n)
	}

	ok := drbook(t, nil, "resume", id, "--answers", fixed, "--reason", "backup name mistyped", "--yes", "--db", l.db)
	if ok.code != 0 {
		t.Fatalf("resume with the corrected answer: exit %d\n%s%s", ok.code, ok.stdout, ok.stderr)
	}
	for _, want := range []string{`input backup changed by`, `from "ful.bak" to "full.bak": backup name mistyped`, "restored from full.bak"} {
		if !strings.Contains(ok.stdout, want) {
			t.Errorf("resume output lacks %q:\n%s", want, ok.stdout)
		}
	}
	for step, want := range map[string]int{"wipe": 1, "restore": 3} {
		if got := l.counter(t, "node1", step); got != want {
			t.Errorf("%s ran %d times on node1, want %d", step, got, want)
		}
	}
	if n := l.counter(t, "node2", "wipe"); n != 0 {
		t.Errorf("the refused node change ran wipe on node2")
	}
	rep := drbook(t, nil, "replay", id, "--verify", "--db", l.db)
	if rep.code != 0 || !strings.Contains(rep.stdout, "backup = \"full.bak\" (changed on resume by") {
		t.Fatalf("replay --verify: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
}
