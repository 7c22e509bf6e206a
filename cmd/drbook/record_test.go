package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// drbookIn runs drbook in directory dir.
func drbookIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, drbookBin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), env...), "NO_COLOR=1")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("drbook %v: %v", args, err)
	}
	return r
}

// killDuring starts a headless run in dir, waits until it printed line and
// the record holds that step's output so far (a step.output checkpoint), and
// kills the runner with SIGKILL. It returns the run id.
func killDuring(t *testing.T, dir, db string, env []string, line, stepID string, args ...string) string {
	t.Helper()
	cmd := exec.Command(drbookBin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), env...), "NO_COLOR=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(stdout)
	id, seen := "", false
	for sc.Scan() {
		l := sc.Text()
		if id == "" && strings.HasPrefix(l, "run ") {
			id = strings.TrimSuffix(strings.Fields(l)[1], ":")
		}
		if strings.Contains(l, line) {
			seen = true
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if id == "" || !seen {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the run never printed %q (run %q)\n%s", line, id, stderr.String())
	}
	sdb, err := sql.Open("sqlite3", db+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := sdb.QueryRow(`SELECT count(*) FROM events WHERE run_id = ? AND type = 'step.output' AND step_id = ?`, id, stepID).Scan(&n)
		if err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("no step.output of %s recorded within 30s (err %v)", stepID, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	return id
}

// TestResumeFromElsewhere: a run started with relative paths and killed
// mid-step resumes from another directory after its runbook, inventory and
// answers files were moved away: the record holds them.
func TestResumeFromElsewhere(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	work := filepath.Join(l.dir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		t.Fatal(err)
	}
	inv, err := os.ReadFile(l.inv)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"recovery.yaml": recoveryRunbook, "inventory.yaml": string(inv), "answers.yaml": answers("node1"),
	} {
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(l.srv.Dir, "node1", "slow.secs"), []byte("30\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	env := []string{"E2E_PASSPHRASE=" + secretValue}
	id := killDuring(t, work, l.db, env, "slow started", "slow",
		"run", "recovery.yaml", "-i", "inventory.yaml", "--answers", "answers.yaml", "--headless", "--yes", "--db", l.db)
	if err := os.Rename(work, filepath.Join(l.dir, "moved-away")); err != nil {
		t.Fatal(err)
	}
	slowDone(t, l)

	elsewhere := t.TempDir()
	r := drbookIn(t, elsewhere, env, "resume", id, "--yes", "--db", l.db)
	if r.code != 0 {
		t.Fatalf("resume from another directory: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for node, want := range map[string]map[string]int{
		"node1": {"prepare": 1, "token": 1, "restore": 1, "slow": 2, "verify": 1},
		"node2": {"prepare": 1, "join": 1},
	} {
		for step, n := range want {
			if got := l.counter(t, node, step); got != n {
				t.Errorf("%s ran %d times on %s, want %d", step, got, node, n)
			}
		}
	}
	rep := drbookIn(t, elsewhere, nil, "replay", id, "--verify", "--db", l.db)
	if rep.code != 0 {
		t.Fatalf("replay --verify: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
	if !strings.Contains(rep.stdout, "output of interrupted slow@node1#1") || !strings.Contains(rep.stdout, "    slow started") {
		t.Errorf("replay does not show the output the killed execution printed:\n%s", rep.stdout)
	}
	// The export carries the recorded runbook and the partial output.
	js := drbookIn(t, elsewhere, nil, "replay", id, "--format", "json", "--db", l.db)
	if js.code != 0 {
		t.Fatalf("replay json: exit %d\n%s", js.code, js.stderr)
	}
	var doc struct {
		Events []struct {
			Type    string          `json:"type"`
			StepID  string          `json:"step_id"`
			Attempt int             `json:"attempt"`
			Data    json.RawMessage `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	var partial, source bool
	for _, ev := range doc.Events {
		var d struct {
			Log     string `json:"log"`
			Runbook struct {
				Path, Text string
			} `json:"runbook"`
		}
		_ = json.Unmarshal(ev.Data, &d)
		if ev.Type == "step.output" && ev.StepID == "slow" && ev.Attempt == 1 && strings.Contains(d.Log, "slow started") {
			partial = true
		}
		if ev.Type == "run.created" && d.Runbook.Path == "recovery.yaml" && d.Runbook.Text == recoveryRunbook {
			source = true
		}
	}
	if !partial || !source {
		t.Errorf("json export: partial output recorded %v, runbook source recorded %v", partial, source)
	}
	assertNoSecret(t, "json export", []byte(js.stdout))
}

// TestResumeOverrideRecorded: -i and --runbook still override the recorded
// files; a changed file is refused without --accept-changed, and with it the
// change is shown and recorded, and verified with the chain.
func TestResumeOverrideRecorded(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 3)
	cmd, id := startUntilSlow(t, l)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	slowDone(t, l)
	changed := l.write(t, "recovery2.yaml", strings.Replace(recoveryRunbook, "echo prepared {{ target.name }}", "echo prepared again {{ target.name }}", 1))
	r := drbook(t, []string{"E2E_PASSPHRASE=" + secretValue}, "resume", id, "--runbook", changed, "--yes", "--db", l.db)
	if r.code != exitNeedsPerson || !strings.Contains(r.stderr, "~ step prepare changed") {
		t.Fatalf("changed runbook: exit %d, want %d with the changed step named\n%s%s", r.code, exitNeedsPerson, r.stdout, r.stderr)
	}
	r = drbook(t, []string{"E2E_PASSPHRASE=" + secretValue}, "resume", id, "--runbook", changed, "--accept-changed", "--yes", "--db", l.db)
	if r.code != 0 || !strings.Contains(r.stdout, "~ step prepare changed") {
		t.Fatalf("--accept-changed: exit %d (the change must be shown)\n%s%s", r.code, r.stdout, r.stderr)
	}
	rep := drbook(t, nil, "replay", id, "--verify", "--db", l.db)
	if rep.code != 0 || !strings.Contains(rep.stdout, "goes on with runbook "+changed) {
		t.Fatalf("replay: exit %d, change not recorded\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
}

const setOutputRunbook = `apiVersion: drbook/v1
kind: Runbook
name: set-output
inputs:
  seed: {type: node, prompt: Seed node}
steps:
  - id: prepare
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo prepared'}
  - id: add-member
    title: Add a member (prints its id, then takes long)
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo x >> "$NODE_DIR/add.count"; echo new_id=10564617825209086826; echo adding; sleep 60'}
    outputs: [new_id]
  - id: use
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo "member id is {{ steps.add-member.outputs.new_id }}"'}
`

// TestSkipInterruptedWithOutputs: an interrupted step with outputs and no
// check: is skipped with --set-output and the run finishes; --redo and
// --skip of an unknown or not interrupted step are usage errors; a skip
// without the outputs later steps use is refused and says how to give them.
func TestSkipInterruptedWithOutputs(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 1)
	rb := l.write(t, "set-output.yaml", setOutputRunbook)
	ans := l.write(t, "answers.yaml", "inputs:\n  seed: node1\n")
	if r := drbook(t, nil, "lint", rb); !strings.Contains(r.stdout+r.stderr, `warning: step "add-member": later steps use its outputs (new_id) and it has no check:`) {
		t.Errorf("lint does not warn about the outputs of a step without check:\n%s%s", r.stdout, r.stderr)
	}
	id := killDuring(t, l.dir, l.db, nil, "adding", "add-member",
		"run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db)

	r := drbook(t, nil, "resume", id, "--yes", "--db", l.db)
	if r.code != exitNeedsPerson || !strings.Contains(r.stderr, "--set-output add-member.new_id=VALUE") {
		t.Errorf("resume without a decision: exit %d, want %d naming --set-output\n%s%s", r.code, exitNeedsPerson, r.stdout, r.stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--redo", "no-such-step"}, `the runbook has no step "no-such-step"`},
		{[]string{"--skip", "prepare", "--reason", "x"}, "step prepare is succeeded, not interrupted or failed"},
		{[]string{"--redo", "use"}, "step use is not started"},
		{[]string{"--skip", "add-member", "--reason", "it ran"}, "give them with --set-output add-member.new_id=VALUE"},
		{[]string{"--skip", "add-member", "--reason", "it ran", "--set-output", "add-member.typo=1"}, `step add-member declares no output "typo"`},
		{[]string{"--set-output", "add-member.new_id=1"}, "only be given for a step skipped in the same resume"},
		{[]string{"--set-output", "add-member"}, "want STEP.KEY=VALUE"},
	} {
		r := drbook(t, nil, append([]string{"resume", id, "--yes", "--db", l.db}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("resume %v: exit %d, want %d with %q\n%s%s", tc.args, r.code, exitUsage, tc.want, r.stdout, r.stderr)
		}
	}
	if got := l.counter(t, "node1", "add"); got != 1 {
		t.Fatalf("add-member ran %d times, want 1 (refused resumes must run nothing)", got)
	}
	r = drbook(t, nil, "resume", id, "--yes", "--db", l.db, "--skip", "add-member", "--reason", "member was added (id in the log)",
		"--set-output", "add-member.new_id=10564617825209086826")
	if r.code != 0 {
		t.Fatalf("resume --skip --set-output: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "member id is 10564617825209086826") {
		t.Errorf("the next step did not get the given output:\n%s", r.stdout)
	}
	if got := l.counter(t, "node1", "add"); got != 1 {
		t.Errorf("add-member ran %d times, want 1", got)
	}
	rep := drbook(t, nil, "replay", id, "--verify", "--db", l.db)
	if rep.code != 0 {
		t.Fatalf("replay --verify: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
	for _, want := range []string{"skip: member was added (id in the log)", "outputs set: new_id", "output of skipped add-member@node1#1", "    new_id=10564617825209086826"} {
		if !strings.Contains(rep.stdout, want) {
			t.Errorf("replay lacks %q:\n%s", want, rep.stdout)
		}
	}
	md := drbook(t, nil, "replay", id, "--format", "markdown", "--db", l.db)
	for _, want := range []string{"before it stopped:", "\nnew_id=10564617825209086826\n", "(outputs set: new_id)"} {
		if !strings.Contains(md.stdout, want) {
			t.Errorf("markdown export lacks %q:\n%s", want, md.stdout)
		}
	}
}

// TestResumeOldRecord: a record made before drbook kept the files resumes
// from the recorded paths; from elsewhere, the error names -i and --runbook,
// and with them the run goes on.
func TestResumeOldRecord(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "drbook.db")
	rbSrc := "apiVersion: drbook/v1\nkind: Runbook\nname: old\nsteps:\n  - id: hello\n    run: shell\n    on: node1\n    with: {command: 'echo hello from the old record'}\n"
	invSrc := "apiVersion: drbook/v1\nkind: Inventory\nnodes:\n  - name: node1\n    transport: local\n"
	rbPath, invPath := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "inv.yaml")
	for p, c := range map[string]string{rbPath: rbSrc, invPath: invSrc} {
		if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	st, err := state.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	// As an old drbook recorded it: relative paths and digests, no sources.
	run := &state.Run{RunbookName: "old", RunbookPath: "old.yaml", RunbookSHA256: sha256hex(rbSrc),
		InventoryPath: "inv.yaml", InventorySHA256: sha256hex(invSrc), Mode: state.ModeHeadless, Status: state.StatusInterrupted}
	if err := st.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	st.Close()
	elsewhere := t.TempDir()
	r := drbookIn(t, elsewhere, nil, "resume", run.ID, "--yes", "--db", db)
	if r.code == 0 || !strings.Contains(r.stderr, "give it with -i PATH") {
		t.Errorf("old record without -i: exit %d, want the -i hint\n%s", r.code, r.stderr)
	}
	r = drbookIn(t, elsewhere, nil, "resume", run.ID, "--yes", "--db", db, "-i", invPath)
	if r.code == 0 || !strings.Contains(r.stderr, "give it with --runbook PATH") {
		t.Errorf("old record without --runbook: exit %d, want the --runbook hint\n%s", r.code, r.stderr)
	}
	r = drbookIn(t, elsewhere, nil, "resume", run.ID, "--yes", "--db", db, "-i", invPath, "--runbook", rbPath)
	if r.code != 0 || !strings.Contains(r.stdout, "hello from the old record") {
		t.Errorf("old record with --runbook and -i: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// From the directory it started in, the recorded paths still work.
	run2 := *run
	run2.ID = ""
	st, err = state.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRun(ctx, &run2); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if r := drbookIn(t, dir, nil, "resume", run2.ID, "--yes", "--db", db); r.code != 0 {
		t.Errorf("old record from its directory: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
