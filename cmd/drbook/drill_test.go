package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/runbooks/rehearsal"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// drillSSH starts a real OpenSSH sshd and writes an inventory of one node
// n1 on it, and a work directory its login user can write to.
func drillSSH(t *testing.T) (inv, workDir string) {
	t.Helper()
	srv := sshtest.StartOpenSSH(t)
	inv = filepath.Join(t.TempDir(), "inventory.yaml")
	body := fmt.Sprintf("apiVersion: drbook/v1\nkind: Inventory\nname: drill\nssh:\n  user: %s\n  identity_file: %s\n  known_hosts: %s\nnodes:\n  - name: n1\n    host: %s\n    port: %d\n",
		srv.User, srv.IdentityFile, srv.KnownHostsFile, srv.Host, srv.Port)
	if err := os.WriteFile(inv, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	workDir = filepath.Join(srv.Dir, "drill")
	if err := os.Mkdir(workDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(workDir, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	return inv, workDir
}

// TestDrillCounterFile runs a drill of a system drbook does not ship (the
// counter file service of testdata/drills/counter) through rehearse
// --drill, over real OpenSSH: the RPO must be exactly the 7 records written
// after the restore point, the data after the recovery must equal the
// restore point (count and digest), the three report files must agree, and
// nothing of the drill may be left running or on disk.
func TestDrillCounterFile(t *testing.T) {
	inv, work := drillSSH(t)
	db := filepath.Join(t.TempDir(), "drbook.db")
	reports := filepath.Join(t.TempDir(), "report")
	r := drbook(t, nil, "rehearse", "--drill", "../../testdata/drills/counter/drill.yaml", "-i", inv,
		"--dir", work, "--db", db, "--report-dir", reports, "--ports", "30000-30999", "--output", "json")
	if r.code != 0 {
		t.Fatalf("rehearse exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("%s", r.stderr)
	rep := rehearsalReport(t, r.stdout, reports)
	t.Logf("RTO %s (machine %s, operator %s), RPO %d %s", rep.RTO, rep.Machine, rep.Human, rep.RPOKeys, rep.Unit)
	if rep.KeysAtBackup != 50 || rep.KeysAfterBackup != 7 || rep.KeysBefore != 57 || rep.KeysAfter != 50 {
		t.Errorf("counts: %d at the restore point, %d after it, %d before the disaster, %d after the recovery; want 50, 7, 57, 50",
			rep.KeysAtBackup, rep.KeysAfterBackup, rep.KeysBefore, rep.KeysAfter)
	}
	if rep.RPOKeys != 7 || rep.KeysLost != 7 {
		t.Errorf("RPO %d (lost %d), want exactly 7", rep.RPOKeys, rep.KeysLost)
	}
	if rep.DigestAfter == "" || rep.DigestAfter != rep.DigestAtBackup || rep.DigestBefore == rep.DigestAtBackup {
		t.Errorf("digests: restore point %q, before %q, after %q", rep.DigestAtBackup, rep.DigestBefore, rep.DigestAfter)
	}
	if rto := float64(rep.RTO) / 1e9; rto <= 0 || rto > 60 || !splitAddsUp(rep) {
		t.Errorf("RTO %v (machine %v + operator %v)", rep.RTO, rep.Machine, rep.Human)
	}
	if rep.RTOResult != rehearsal.RTOMet || rep.RTOMargin <= 0 || rep.RTOMargin != rep.RTOBudget-rep.RTO {
		t.Errorf("RTO %s against budget %s: result %q, margin %s; want met with the difference to spare", rep.RTO, rep.RTOBudget, rep.RTOResult, rep.RTOMargin)
	}
	if rep.Drill != "counter-file-loss" || rep.Runbook != "counter-restore" || rep.Verdict != "" || rep.Unit != "items" {
		t.Errorf("report: drill %q runbook %q unit %q verdict %q", rep.Drill, rep.Runbook, rep.Unit, rep.Verdict)
	}
	var stepNames []string
	for _, s := range rep.Steps {
		stepNames = append(stepNames, s.Step)
	}
	for _, want := range []string{"disaster: kill the service", "disaster: delete the data", "check-copy", "restore", "start", "verify: health"} {
		if !containsStr(stepNames, want) {
			t.Errorf("timeline lacks %q: %v", want, stepNames)
		}
	}
	if len(rep.DisasterNodes) != 1 || rep.DisasterNodes[0] != "n1" {
		t.Errorf("nodes hit %v, want [n1]", rep.DisasterNodes)
	}
	var printed struct {
		RunID   string `json:"run_id"`
		RPOKeys int    `json:"rpo_keys"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &printed); err != nil || printed.RunID != rep.RunID || printed.RPOKeys != 7 {
		t.Errorf("the printed JSON disagrees with report.json: %v %+v\n%s", err, printed, r.stdout)
	}
	md, _ := os.ReadFile(filepath.Join(reports, "report.md"))
	if !strings.Contains(string(md), "| RPO (items lost) | 7 |") || !strings.Contains(string(md), rep.RTO.String()) {
		t.Errorf("report.md disagrees with the JSON:\n%s", md)
	}
	svg, _ := os.ReadFile(filepath.Join(reports, "timeline.svg"))
	if strings.Count(string(svg), "<rect") != len(rep.Steps) {
		t.Errorf("timeline.svg has %d bars for %d steps", strings.Count(string(svg), "<rect"), len(rep.Steps))
	}
	replay := drbook(t, nil, "replay", rep.RunID, "--db", db, "--format", "markdown", "--verify")
	if replay.code != 0 || !strings.Contains(replay.stdout, "Drill `counter-file-loss`") {
		t.Errorf("replay lacks the drill report (exit %d)\n%s", replay.code, replay.stdout)
	}
	// drbook runbooks lists the rehearsed runbook though it is not shipped.
	list := drbook(t, nil, "runbooks", "--db", db)
	found := false
	for _, line := range strings.Split(list.stdout, "\n") {
		if strings.HasPrefix(line, "counter-restore (") && strings.Contains(line, "restore.yaml)") && strings.Contains(line, "succeeded, drill passed") {
			found = true
		}
	}
	if !found {
		t.Errorf("drbook runbooks does not show the rehearsal of counter-restore:\n%s\n%s", list.stdout, list.stderr)
	}
	if pids := agentProcesses(t, work); len(pids) > 0 {
		t.Errorf("drill processes left: %v", pids)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work directory left behind: %v", err)
	}
}

// readReport reads the report.json a rehearsal wrote into dir.
func readReport(t *testing.T, dir, stdout string) rehearsal.Report {
	t.Helper()
	var rep rehearsal.Report
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("report.json: %v\n%s", err, stdout)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report.json: %v\n%s", err, b)
	}
	return rep
}

// TestDrillSetupFails: a drill whose setup starts a process and then fails
// still runs its cleanup, which stops the process; a drill whose cleanup
// forgets the process is reported as having left it running.
func TestDrillSetupFails(t *testing.T) {
	const drillTmpl = `apiVersion: drbook/v1
kind: Drill
name: setup-fails
runbook: ` + "%s" + `
ports: 2
setup:
  - name: start a service
    on: n1
    run: |
      nohup sh -c 'while :; do sleep 1; done' "svc-$DRILL_DIR" >/dev/null 2>&1 &
      echo $! > "$DRILL_DIR/svc.pid"
      echo "$DRILL_PORT_0 $DRILL_PORT_1" > "$DRILL_DIR/ports"
  - name: then fail
    run: echo "cannot go on" >&2; exit 3
answers:
  inputs: {node: n1, backup: /b, data_dir: /d, run_dir: /r}
count: {run: echo count=0 digest=none}
restore_point: [touch "$DRILL_DIR/never"]
disaster: [touch "$DRILL_DIR/never"]
cleanup:
  - name: record the cleanup
    run: cp "$DRILL_DIR/ports" "%s"
%s
`
	runbook, _ := filepath.Abs("../../testdata/drills/counter/restore.yaml")
	tests := []struct {
		name     string
		stop     bool
		wantLeft bool
	}{
		{"cleanup stops the service", true, false},
		{"cleanup forgets the service", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, work := drillSSH(t)
			marker := filepath.Join(t.TempDir(), "cleanup-ran")
			stop := ""
			if tc.stop {
				stop = "  - {on: n1, run: kill \"$(cat \"$DRILL_DIR/svc.pid\")\"}"
			}
			file := filepath.Join(t.TempDir(), "drill.yaml")
			if err := os.WriteFile(file, []byte(fmt.Sprintf(drillTmpl, runbook, marker, stop)), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sshtest.KillMarked("svc-" + work) })
			r := drbook(t, nil, "rehearse", "--drill", file, "-i", inv, "--dir", work,
				"--db", filepath.Join(t.TempDir(), "db"), "--ports", "31000-31099")
			if r.code != 1 || !strings.Contains(r.stderr, "setup: then fail") || !strings.Contains(r.stderr, "cannot go on") {
				t.Errorf("exit %d, want 1 naming the failed setup command\n%s", r.code, r.stderr)
			}
			ports, err := os.ReadFile(marker)
			if err != nil {
				t.Fatalf("the cleanup did not run: %v\n%s", err, r.stderr)
			}
			for _, f := range strings.Fields(string(ports)) {
				if p, err := strconv.Atoi(f); err != nil || p < 31000 || p > 31099 {
					t.Errorf("port %q outside --ports 31000-31099", f)
				}
			}
			left := sshtest.PIDsWithArg("svc-" + work)
			if tc.wantLeft {
				if len(left) == 0 || !strings.Contains(r.stderr, "left running") {
					t.Errorf("a process left running is not reported (left %v)\n%s", left, r.stderr)
				}
				return
			}
			if len(left) > 0 {
				t.Errorf("processes left running: %v", left)
			}
			if _, err := os.Stat(work); !os.IsNotExist(err) {
				t.Errorf("work directory left behind: %v", err)
			}
		})
	}
}

// TestDrillLint: a broken drill is reported at file:line:col, every problem
// at once; the shipped drills and the example lint clean.
func TestDrillLint(t *testing.T) {
	r := drbook(t, nil, "lint", "../../testdata/drills/broken/bad.yaml")
	if r.code == 0 {
		t.Fatalf("lint of a broken drill passed\n%s", r.stdout)
	}
	for _, want := range []string{
		"bad.yaml:5:26: ports: port range \"30000-20000\"",
		"bad.yaml:11:14: drill.restore_point[0].timeout: \"soon\" is not a duration",
		"bad.yaml:13:10: ${DRILL_PORT_3}",
		"bad.yaml:15:11: drill.verify.expect: \"everything\" is not one of restore_point, latest",
		"bad.yaml:17:5: unknown field \"rn\" in drill.cleanup[0] (did you mean \"run\"?)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("lint output lacks %q:\n%s", want, r.stdout)
		}
	}
	// With -i, the drill's on: nodes are checked against the inventory.
	inv := filepath.Join(t.TempDir(), "inv.yaml")
	if err := os.WriteFile(inv, []byte("apiVersion: drbook/v1\nkind: Inventory\nnodes:\n  - {name: n9, host: 127.0.0.1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := drbook(t, nil, "lint", "../../testdata/drills/counter/drill.yaml", "-i", inv)
	if nodes.code == 0 || !strings.Contains(nodes.stdout, "drill.yaml:16:9: setup[0]: no node or group \"n1\" in inventory") {
		t.Errorf("lint -i does not check the drill's nodes (exit %d):\n%s", nodes.code, nodes.stdout)
	}
	ok := drbook(t, nil, "lint", "../../testdata/drills/counter/drill.yaml")
	all := drbook(t, nil, "lint")
	if ok.code != 0 || all.code != 0 {
		t.Errorf("lint of valid drills failed:\n%s\n%s", ok.stdout, all.stdout)
	}
}

// TestAllocPorts: ports come from the range, a busy port is skipped, and a
// range without enough free ports is refused.
func TestAllocPorts(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bp := busy.Addr().(*net.TCPAddr).Port
	hi := min(bp+50, 65535)
	got, err := allocPorts(bp, hi, 3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range got {
		if p == bp || p < bp || p > hi || seen[p] {
			t.Errorf("port %d: busy, repeated or outside %d-%d", p, bp, hi)
		}
		seen[p] = true
	}
	if _, err := allocPorts(bp, bp, 1); !errors.Is(err, errNoFreePorts) {
		t.Errorf("a busy one-port range: %v, want errNoFreePorts", err)
	}
}

// TestDrillInterrupted: SIGINT during the setup stops the drill, its cleanup
// still runs, nothing of the drill is left running, and drbook exits 130.
func TestDrillInterrupted(t *testing.T) {
	mark := t.TempDir()
	work := filepath.Join(t.TempDir(), "work")
	file := filepath.Join(t.TempDir(), "drill.yaml")
	runbook, _ := filepath.Abs("../../testdata/drills/counter/restore.yaml")
	drill := `apiVersion: drbook/v1
kind: Drill
name: interrupted
runbook: ` + runbook + `
setup:
  - run: touch "$MARK/setup-started"; sh -c 'sleep 60; :' "drill-$DRILL_DIR"
answers:
  inputs: {node: n1, backup: /b, data_dir: /d, run_dir: /r}
count: {run: echo count=0 digest=none}
restore_point: [true]
disaster: [true]
cleanup:
  - run: touch "$MARK/cleanup-ran"
`
	if err := os.WriteFile(file, []byte(drill), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(drbookBin, "rehearse", "--drill", file, "--dir", work, "--db", filepath.Join(t.TempDir(), "db"))
	cmd.Env = append(os.Environ(), "MARK="+mark, "NO_COLOR=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(mark, "setup-started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the setup never started\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("drbook did not stop after SIGINT\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Errorf("exit %d, want %d\n%s", code, exitInterrupted, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(mark, "cleanup-ran")); err != nil {
		t.Errorf("the cleanup did not run: %v\n%s", err, stderr.String())
	}
	if pids := agentProcesses(t, work); len(pids) > 0 {
		t.Errorf("drill processes left: %v", pids)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work directory left behind: %v", err)
	}
}

func TestParseCount(t *testing.T) {
	tests := []struct {
		out    string
		want   drillCount
		wantOK bool
	}{
		{"count=57 digest=8ef19f5c\n", drillCount{57, "8ef19f5c"}, true},
		{"connecting...\n  count=0   digest=none  \nbye\n", drillCount{0, "none"}, true},
		{"count=12345678901234 digest=a\n", drillCount{12345678901234, "a"}, true},
		{"count=-1 digest=x\n", drillCount{}, false},
		{"count=3\n", drillCount{}, false},
		{"the count=3 digest=x is\n", drillCount{}, false},
		{"", drillCount{}, false},
	}
	for _, tc := range tests {
		got, err := parseCount(tc.out)
		if (err == nil) != tc.wantOK || got != tc.want {
			t.Errorf("parseCount(%q) = %+v, %v", tc.out, got, err)
		}
		if err != nil && !errors.Is(err, errDrillCount) {
			t.Errorf("parseCount(%q): %v is not errDrillCount", tc.out, err)
		}
	}
}

// TestDrillVerdicts: the counter drill changed so that it must fail — an
// RTO budget no recovery meets, or expect: latest when 7 records are lost —
// runs the recovery, then fails (exit 1) with the verdict in its report.
func TestDrillVerdicts(t *testing.T) {
	src, err := os.ReadFile("../../testdata/drills/counter/drill.yaml")
	if err != nil {
		t.Fatal(err)
	}
	runbook, _ := filepath.Abs("../../testdata/drills/counter/restore.yaml")
	base := strings.Replace(string(src), "runbook: restore.yaml", "runbook: "+runbook, 1)
	tests := []struct {
		name, from, to, verdict string
	}{
		{"over the RTO budget", "rto_budget: 60s", "rto_budget: 1ms", "is over the budget of 1ms"},
		{"data lost that must not be", "expect: restore_point", "expect: latest", "count=50 digest="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.from) {
				t.Fatalf("the example drill lacks %q", tc.from)
			}
			file := filepath.Join(t.TempDir(), "drill.yaml")
			if err := os.WriteFile(file, []byte(strings.Replace(base, tc.from, tc.to, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			inv, work := drillSSH(t)
			reports := filepath.Join(t.TempDir(), "report")
			db := filepath.Join(t.TempDir(), "db")
			r := drbook(t, nil, "rehearse", "--drill", file, "-i", inv, "--dir", work,
				"--db", db, "--report-dir", reports, "--output", "json")
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
			}
			rep := readReport(t, reports, r.stdout)
			if !strings.Contains(rep.Verdict, tc.verdict) || rep.RPOKeys != 7 {
				t.Errorf("verdict %q (RPO %d), want it to say %q", rep.Verdict, rep.RPOKeys, tc.verdict)
			}
			if tc.to == "rto_budget: 1ms" {
				// Missed, by the RTO less the budget, and the crossing is
				// in the record (a note of kind rto.crossed) and in -o json.
				if rep.RTOResult != rehearsal.RTOMissed || rep.RTOMargin >= 0 || -rep.RTOMargin != rep.RTO-rep.RTOBudget {
					t.Errorf("RTO result %q margin %s, want missed by %s", rep.RTOResult, rep.RTOMargin, rep.RTO-rep.RTOBudget)
				}
				if !strings.Contains(r.stdout, `"rto_result": "missed"`) || !strings.Contains(r.stdout, `"rto_margin_ms": -`) {
					t.Errorf("rehearse -o json lacks the missed budget:\n%s", r.stdout)
				}
				replay := drbook(t, nil, "replay", rep.RunID, "--db", db, "--format", "json")
				if !strings.Contains(replay.stdout, `"kind":"rto.crossed"`) && !strings.Contains(replay.stdout, `"kind": "rto.crossed"`) {
					t.Errorf("the record holds no rto.crossed note:\n%.2000s", replay.stdout)
				}
			}
			if md, _ := os.ReadFile(filepath.Join(reports, "report.md")); !strings.Contains(string(md), "**FAILED: ") {
				t.Errorf("report.md does not say FAILED:\n%s", md)
			}
			// drbook runbooks shows the drill failed, though the runbook's run succeeded.
			var list jsonapi.RunbookList
			out := drbook(t, nil, "runbooks", "--db", db, "--output", "json")
			if err := json.Unmarshal([]byte(out.stdout), &list); err != nil {
				t.Fatalf("runbooks JSON: %v\n%s", err, out.stdout)
			}
			found := false
			for _, i := range list.Runbooks {
				if i.Name == "counter-restore" {
					found = true
					if i.LastResult != "succeeded" || i.LastDrillResult != "failed" || !strings.Contains(i.LastDrillVerdict, tc.verdict) {
						t.Errorf("runbooks shows %+v", i)
					}
				}
			}
			if !found {
				t.Errorf("runbooks does not list counter-restore:\n%s", out.stdout)
			}
			if pids := agentProcesses(t, work); len(pids) > 0 {
				t.Errorf("drill processes left: %v", pids)
			}
		})
	}
}
