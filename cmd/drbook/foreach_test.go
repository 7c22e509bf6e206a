package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/steps/transport/sshtest"
)

// foreachRunbook iterates over a group of five nodes and over a nodes
// input run on one node, builds an --initial-cluster string from the
// group's vars, and retries a step until its output holds.
const foreachRunbook = `apiVersion: drbook/v1
kind: Runbook
name: e2e-foreach
inputs:
  seed: {type: node, prompt: Seed}
  joiners: {type: nodes, prompt: Joiners, distinct_from: [seed]}
steps:
  - id: cluster
    title: Build the initial cluster
    run: shell
    on: "{{ inputs.seed }}"
    with:
      command: 'echo initial={{ groups.all | format("{name}=http://{api}") | join(",") | quote }}'
    outputs: [initial]
  - id: add
    title: Start each member, one at a time
    run: shell
    for_each: all
    serial: 1
    with:
      command: 'echo x >> "$NODE_DIR/add.count"; echo "start {{ item.name }} at {{ item.api }} with {{ steps.cluster.outputs.initial }}"; echo id={{ item }}-id'
    outputs: [id]
  - id: announce
    title: Announce each joiner from the seed
    run: shell
    for_each: "{{ inputs.joiners }}"
    on: "{{ inputs.seed }}"
    serial: 1
    with:
      command: 'echo x >> "$NODE_DIR/announce-{{ item }}.count"; touch "$NODE_DIR/announced-{{ item }}"; echo "announce {{ item }} ({{ item.api }}) on {{ target.name }}"; echo member={{ item }}@{{ target.name }}'
    check: 'test -f "$NODE_DIR/announced-{{ item }}" && echo member={{ item }}@{{ target.name }}'
    outputs: [member]
  - id: health
    title: Wait for health
    run: shell
    on: "{{ inputs.seed }}"
    until: outputs.healthy == "yes"
    retries: 6
    retry_delay: 100ms
    with:
      command: 'echo x >> "$NODE_DIR/health.count"; n=$(wc -l < "$NODE_DIR/health.count"); if [ "$n" -ge 3 ]; then echo healthy=yes; else echo healthy=no; fi'
    outputs: [healthy]
  - id: report
    run: shell
    on: "{{ inputs.seed }}"
    with:
      command: 'echo "node4 said {{ steps.add.items.node4.outputs.id }}; node3 joined as {{ steps.announce.items.node3.outputs.member }}"'
`

// TestForEachKilledAfterThreeItemsResumesTheRest runs a for_each step over
// a group of five nodes over real OpenSSH, kills the runner right after the
// third item's checkpoint, and resumes: only the remaining two items run.
// The --initial-cluster-style string is built from the group's vars, the
// per-item outputs reach a later step, and until: retries until its output
// holds.
func TestForEachKilledAfterThreeItemsResumesTheRest(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 5)
	rb := l.write(t, "foreach.yaml", foreachRunbook)
	ans := l.write(t, "answers.yaml", "inputs:\n  seed: node1\n  joiners: [node2, node3]\n")

	if lint := drbook(t, nil, "lint", rb, "-i", l.inv); lint.code != 0 {
		t.Fatalf("lint: exit %d\n%s%s", lint.code, lint.stdout, lint.stderr)
	}
	r := drbook(t, []string{envFaultCrash + "=step.finished:add:after:node3"}, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db)
	if r.code != -1 {
		t.Fatalf("runner exit %d, want killed (-1)\n%s%s", r.code, r.stdout, r.stderr)
	}
	wantInitial := "node1=http://127.0.0.1:7001,node2=http://127.0.0.1:7002,node3=http://127.0.0.1:7003,node4=http://127.0.0.1:7004,node5=http://127.0.0.1:7005"
	if !strings.Contains(r.stdout, "start node1 at 127.0.0.1:7001 with "+wantInitial) {
		t.Errorf("the first item did not get the initial cluster string:\n%s", r.stdout)
	}
	for i, want := range []int{1, 1, 1, 0, 0} {
		node := "node" + string(rune('1'+i))
		if got := l.counter(t, node, "add"); got != want {
			t.Errorf("before resume: add ran %d times on %s, want %d", got, node, want)
		}
	}
	id := onlyRunID(t, l.db)

	res := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
	if res.code != 0 {
		t.Fatalf("resume: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	for i := range 5 {
		node := "node" + string(rune('1'+i))
		if got := l.counter(t, node, "add"); got != 1 {
			t.Errorf("after resume: add ran %d times on %s, want 1 (no item runs twice)", got, node)
		}
	}
	for _, item := range []string{"node1", "node2", "node3"} {
		if strings.Contains(res.stdout, "start "+item+" ") {
			t.Errorf("resume ran item %s again:\n%s", item, res.stdout)
		}
	}
	for _, want := range []string{
		"start node4 at 127.0.0.1:7004 with " + wantInitial,
		"start node5 at 127.0.0.1:7005",
		"announce (shell) for each of node2, node3 on node1",
		"add (shell) for each of node1, node2, node3, node4, node5\n",
		"announce node2 (127.0.0.1:7002) on node1",
		"announce node3 (127.0.0.1:7003) on node1",
		"node4 said node4-id; node3 joined as node3@node1",
		`outputs: healthy="no"`,
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("resume output lacks %q:\n%s", want, res.stdout)
		}
	}
	// Items not nodes-of-the-step run on the seed, once each.
	for _, item := range []string{"node2", "node3"} {
		if got := l.counter(t, "node1", "announce-"+item); got != 1 {
			t.Errorf("announce %s ran %d times on node1, want 1", item, got)
		}
	}
	if got := l.counter(t, "node1", "health"); got != 3 {
		t.Errorf("health ran %d times, want 3 (until: holds on the third attempt)", got)
	}
	if rep := drbook(t, nil, "replay", id, "--verify", "--db", l.db); rep.code != 0 {
		t.Fatalf("replay --verify: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
	} else if !strings.Contains(rep.stdout, "node5") {
		t.Errorf("replay does not show the item node5:\n%s", rep.stdout)
	}
}

// TestForEachItemInterruptedDecidedByCheck kills the runner right after an
// item's start checkpoint (its command not run yet) on a step whose items
// run on the seed: resume runs the item's check: on the seed with that
// item, sees it did not take effect, and runs that item once; the item
// already done is not run again.
func TestForEachItemInterruptedDecidedByCheck(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 5)
	rb := l.write(t, "foreach.yaml", foreachRunbook)
	ans := l.write(t, "answers.yaml", "inputs:\n  seed: node1\n  joiners: [node2, node3]\n")
	r := drbook(t, []string{envFaultCrash + "=step.started:announce:after:node3"}, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db)
	if r.code != -1 {
		t.Fatalf("runner exit %d, want killed (-1)\n%s%s", r.code, r.stdout, r.stderr)
	}
	id := onlyRunID(t, l.db)
	res := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
	if res.code != 0 {
		t.Fatalf("resume: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "check did not pass") {
		t.Errorf("resume did not decide the interrupted item by its check:\n%s", res.stdout)
	}
	for item, want := range map[string]int{"node2": 1, "node3": 1} {
		if got := l.counter(t, "node1", "announce-"+item); got != want {
			t.Errorf("announce %s ran %d times on node1, want %d", item, got, want)
		}
	}
	for i := range 5 {
		if got := l.counter(t, "node"+string(rune('1'+i)), "add"); got != 1 {
			t.Errorf("add ran %d times on node%d, want 1", got, i+1)
		}
	}
	if !strings.Contains(res.stdout, "node3 joined as node3@node1") {
		t.Errorf("the re-run item's output did not reach the later step:\n%s", res.stdout)
	}
}

// TestForEachLint: for_each must be a list and may not read a secret; item
// is only defined with for_each; map and format take node names.
func TestForEachLint(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 2)
	src := `apiVersion: drbook/v1
kind: Runbook
name: bad-foreach
inputs:
  seed: {type: node, prompt: Seed}
  pass: {type: secret, prompt: Pass}
steps:
  - id: scalar
    run: shell
    for_each: "{{ inputs.seed }}"
    with: {command: 'echo {{ item }}'}
  - id: secret
    run: shell
    on: node1
    for_each: "{{ inputs.pass | map(\"name\") }}"
    with: {command: 'echo {{ item }}'}
  - id: nogroup
    run: shell
    for_each: alll
    with: {command: 'echo hi'}
  - id: noitem
    run: shell
    on: node1
    with: {command: 'echo {{ item.name }} {{ groups.al | join(",") }}'}
  - id: badmap
    run: shell
    on: node1
    until: outputs.ok == "yes"
    with: {command: 'echo {{ (inputs.seed == "x") | map("host") }}'}
  - id: typo
    run: shell
    for_each: all
    with: {command: 'echo {{ item.apii }} {{ groups.all | format("{name}=http://{apii}") | join(",") }}'}
`
	rb := l.write(t, "bad.yaml", src)
	r := drbook(t, nil, "lint", rb, "-i", l.inv)
	if r.code == 0 {
		t.Fatalf("lint accepted a bad runbook:\n%s", r.stdout)
	}
	out := r.stdout + r.stderr
	for _, want := range []string{
		`bad.yaml:10:15: step "scalar": for_each: must be a list`,
		`step "secret": for_each: secret inputs.pass would name executions`,
		`step "nogroup": for_each: unknown group "alll" (did you mean "all"?)`,
		"`item` is only defined in a step with for_each:",
		`unknown group "al"`,
		`step "badmap": until: the step has no output "ok"`,
		`step "badmap": with.command: template: wrong type: map takes node names`,
		`step "typo": item.apii: node "node2" of group "all" (the for_each items) has no field or var "apii"`,
		`step "typo": groups.all | format: node "node1" has no field or var "apii"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lint output lacks %q:\n%s", want, out)
		}
	}
	_ = os.Remove(filepath.Join(l.dir, "bad.yaml"))
}

// TestDetachServiceRunbook starts a service from a runbook over real
// OpenSSH with shell detach: the step returns once the service is ready,
// far inside its timeout; the service outlives the run; a later step reads
// its pid; the test stops it by that pid.
func TestDetachServiceRunbook(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 1)
	rb := l.write(t, "service.yaml", `apiVersion: drbook/v1
kind: Runbook
name: e2e-service
steps:
  - id: start
    run: shell
    on: node1
    timeout: 1m
    with:
      command: 'echo service up on {{ target.name }}; sleep 1; touch "$NODE_DIR/svc.ready"; exec sleep 300'
      detach: {log: '{{ target.env.NODE_DIR }}/svc.log', ready: 'test -f "$NODE_DIR/svc.ready"', interval: 100ms}
    outputs: [pid]
  - id: after
    run: shell
    on: node1
    with: {command: 'kill -0 {{ steps.start.outputs.pid }} && echo still running {{ steps.start.outputs.pid }}'}
`)
	if lint := drbook(t, nil, "lint", rb, "-i", l.inv); lint.code != 0 {
		t.Fatalf("lint: exit %d\n%s%s", lint.code, lint.stdout, lint.stderr)
	}
	t0 := time.Now()
	r := drbook(t, nil, "run", rb, "-i", l.inv, "--headless", "--yes", "--db", l.db)
	took := time.Since(t0)
	if r.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var pid int
	for _, line := range strings.Split(r.stdout, "\n") {
		if _, v, ok := strings.Cut(line, "still running "); ok {
			pid, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if pid <= 0 {
		t.Fatalf("no pid in the run's output:\n%s", r.stdout)
	}
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	if took > 30*time.Second {
		t.Errorf("the run took %s: the detached step waited for the service", took)
	}
	if syscall.Kill(pid, 0) != nil {
		t.Fatalf("service %d did not outlive the run", pid)
	}
	b, _ := os.ReadFile(filepath.Join(l.srv.Dir, "node1", "svc.log"))
	if !strings.Contains(string(b), "service up on node1") {
		t.Errorf("svc.log = %q, want the service's output", b)
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("service %d still running after TERM to its process group", pid)
	}
}
