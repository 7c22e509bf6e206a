package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/steps/transport/sshtest"
)

// bigRunbook: a JSON output holding a uint64 (an etcd member id) and 2^70
// feeds the commands of later steps and their guards; one of them runs
// only after the runner was killed and the run resumed, so its values come
// from the record. inputs.n is an int past 2^53, restored from the record too.
const bigRunbook = `apiVersion: drbook/v1
kind: Runbook
name: e2e-bignum
title: Member ids stay exact
inputs:
  seed: {type: node, prompt: Node}
  n: {type: int, prompt: A big integer}
steps:
  - id: member
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo "{\"ID\": 10564617825209086826, \"big\": 1180591620717411303424}"'}
    outputs: [ID, big]
  - id: before
    run: shell
    on: "{{ inputs.seed }}"
    when: steps.member.outputs.ID == 10564617825209086826 and steps.member.outputs.ID != 10564617825209086827
    with: {command: 'echo "{{ steps.member.outputs.ID }} {{ steps.member.outputs.big }} {{ inputs.n }}" > "$NODE_DIR/before.ids"'}
  - id: gate
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo gate started; i=0; while [ ! -f "$NODE_DIR/gate.open" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; test -f "$NODE_DIR/gate.open"'}
    check: 'test -f "$NODE_DIR/gate.open"'
  - id: after
    run: shell
    on: "{{ inputs.seed }}"
    when: steps.member.outputs.big > 1180591620717411303423 and steps.member.outputs.ID < 10564617825209086827
    with: {command: 'echo "{{ steps.member.outputs.ID }} {{ steps.member.outputs.big }} {{ inputs.n }}" > "$NODE_DIR/after.ids"'}
`

// TestBigNumbersEndToEnd: a uint64 JSON output reaches the next step's
// command digit for digit over real OpenSSH, and again after a kill and a
// resume, restored from the record.
func TestBigNumbersEndToEnd(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 1)
	rb := l.write(t, "bignum.yaml", bigRunbook)
	ans := l.write(t, "answers.yaml", "inputs:\n  seed: node1\n  n: 9007199254740993\n")
	const want = "10564617825209086826 1180591620717411303424 9007199254740993\n"
	node := filepath.Join(l.srv.Dir, "node1")

	cmd := exec.Command(drbookBin, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	t.Cleanup(func() { timer.Stop(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	id, seen := "", ""
	for sc.Scan() {
		line := sc.Text()
		seen += line + "\n"
		if id == "" && strings.HasPrefix(line, "run ") {
			id = strings.TrimSuffix(strings.Fields(line)[1], ":")
		}
		if strings.Contains(line, "gate started") {
			break
		}
	}
	if id == "" || !strings.Contains(seen, "gate started") {
		t.Fatalf("the run never reached the gate step:\n%s", seen)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if got := readFile(t, filepath.Join(node, "before.ids")); got != want {
		t.Errorf("first run: the next step got %q, want %q", got, want)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if err := os.WriteFile(filepath.Join(node, "gate.open"), nil, 0o666); err != nil {
		t.Fatal(err)
	}

	r := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
	if r.code != 0 {
		t.Fatalf("resume exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := readFile(t, filepath.Join(node, "after.ids")); got != want {
		t.Errorf("after resume: the step got %q, want %q (values restored from the record)\n%s", got, want, r.stdout)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
