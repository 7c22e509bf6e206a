package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks/rehearsal"
)

// TestRehearse runs each shipped agent drill (library:agent-*) with
// rehearse --drill on a throw-away lab, and once the old way (--scenario).
// total-loss with 100,000 keys must recover (the 15 s objective is measured
// by rehearse and reported, not asserted: a loaded CI machine is no benchmark;
// the bound below only catches a hang) and lose exactly the keys written after the backup; quorum-loss and node-loss lose nothing. The
// Markdown, JSON and SVG reports must exist and agree, the lab's ports must
// come from --ports, no lab process may be left, and `drbook runbooks` must
// show the rehearsal.
func TestRehearse(t *testing.T) {
	tests := []struct {
		scenario, runbook string
		keys              int
		maxRTO            float64
		args              []string
		keep              bool // --keep: check the kept lab's ports, then take it down
	}{
		{"total-loss", "total-cluster-recovery", 100000, 120, []string{"--drill", "library:agent-total-loss"}, false},
		{"quorum-loss", "quorum-lost-recovery", 10000, 120, []string{"--drill", "library:agent-quorum-loss"}, false},
		{"node-loss", "replace-failed-node", 10000, 120, []string{"--drill", "library:agent-node-loss"}, false},
		{"node-loss", "replace-failed-node", 3000, 120, []string{"replace-failed-node", "--scenario", "node-loss"}, true},
	}
	db := filepath.Join(t.TempDir(), "drbook.db")
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			reports := filepath.Join(t.TempDir(), "report")
			labDir := filepath.Join(t.TempDir(), "lab")
			// The lab finds drbook-agent beside drbook.
			args := append([]string{"rehearse"}, tc.args...)
			args = append(args, "--keys", strconv.Itoa(tc.keys), "--ports", "30000-30999",
				"--db", db, "--report-dir", reports, "--dir", labDir, "--output", "json")
			if tc.keep {
				args = append(args, "--keep")
			}
			r := drbook(t, nil, args...)
			if tc.keep {
				keptLabPorts(t, labDir, r.stderr)
			}
			if r.code != 0 {
				t.Fatalf("rehearse exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "ports from 30000-30999") {
				t.Errorf("the lab did not use --ports:\n%s", r.stderr)
			}
			var rep rehearsal.Report
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("report JSON: %v\n%s", err, r.stdout)
			}
			rto := float64(rep.RTO) / 1e9
			if rto <= 0 || rto > tc.maxRTO {
				t.Errorf("RTO %.3fs, want ≤ %.0fs", rto, tc.maxRTO)
			}
			wantLost := 0
			if tc.scenario == "total-loss" {
				wantLost = rep.KeysAfterBackup
				if wantLost == 0 {
					t.Error("no keys written after the backup: RPO is trivially zero")
				}
			}
			if want := "agent-" + tc.scenario; rep.Drill != want || rep.Runbook != tc.runbook {
				t.Errorf("report names drill %q runbook %q, want %q %q", rep.Drill, rep.Runbook, want, tc.runbook)
			}
			if rep.RPOKeys != wantLost || rep.KeysLost != wantLost {
				t.Errorf("RPO %d keys (lost %d), want exactly %d", rep.RPOKeys, rep.KeysLost, wantLost)
			}
			if rep.KeysAtBackup != tc.keys || rep.KeysAfter != rep.KeysBefore-wantLost {
				t.Errorf("keys: %d at backup, %d before, %d after", rep.KeysAtBackup, rep.KeysBefore, rep.KeysAfter)
			}
			// The three files exist and agree with what was printed.
			var onDisk rehearsal.Report
			b, err := os.ReadFile(filepath.Join(reports, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &onDisk); err != nil || onDisk.RunID != rep.RunID || onDisk.RPOKeys != rep.RPOKeys || onDisk.RTO != rep.RTO {
				t.Errorf("report.json disagrees: %v %+v", err, onDisk)
			}
			md, _ := os.ReadFile(filepath.Join(reports, "report.md"))
			svg, _ := os.ReadFile(filepath.Join(reports, "timeline.svg"))
			if !strings.Contains(string(md), rep.RTO.String()) || !strings.Contains(string(md), "| RPO (keys lost) | "+strconv.Itoa(rep.RPOKeys)+" |") {
				t.Errorf("report.md disagrees with the JSON:\n%s", md)
			}
			if !strings.Contains(string(svg), "<svg") || strings.Count(string(svg), "<rect") != len(rep.Steps) || len(rep.Steps) == 0 {
				t.Errorf("timeline.svg has %d bars for %d steps", strings.Count(string(svg), "<rect"), len(rep.Steps))
			}
			// The record holds the report and verifies.
			replay := drbook(t, nil, "replay", rep.RunID, "--db", db, "--format", "markdown", "--verify")
			if replay.code != 0 || !strings.Contains(replay.stdout, "# DR rehearsal: "+tc.runbook) {
				t.Errorf("replay --format markdown lacks the report (exit %d)\n%s", replay.code, replay.stdout)
			}
			// Nothing of the lab is left.
			if pids := agentProcesses(t, labDir); len(pids) > 0 {
				t.Errorf("lab processes left: %v", pids)
			}
			if _, err := os.Stat(labDir); !os.IsNotExist(err) {
				t.Errorf("lab directory left behind: %v", err)
			}
		})
	}
	list := drbook(t, nil, "runbooks", "--db", db)
	for _, tc := range tests {
		for _, line := range strings.Split(list.stdout, "\n") {
			if strings.HasPrefix(line, tc.runbook+" ") && (strings.Contains(line, "never") || !strings.Contains(line, "succeeded")) {
				t.Errorf("drbook runbooks does not show the rehearsal of %s:\n%s", tc.runbook, list.stdout)
			}
		}
	}
}

// keptLabPorts checks that a lab kept by --keep listens only on ports of
// --ports 30000-30999, then takes it down.
func keptLabPorts(t *testing.T, labDir, stderr string) {
	t.Helper()
	labJSON, err := os.ReadFile(filepath.Join(labDir, "lab.json"))
	if err != nil {
		t.Fatalf("lab.json: %v\n%s", err, stderr)
	}
	ports := regexp.MustCompile(`127\.0\.0\.1:([0-9]+)`).FindAllStringSubmatch(string(labJSON), -1)
	if len(ports) == 0 {
		t.Errorf("no ports in lab.json:\n%s", labJSON)
	}
	for _, m := range ports {
		if p, _ := strconv.Atoi(m[1]); p < 30000 || p > 30999 {
			t.Errorf("lab port %d outside --ports 30000-30999", p)
		}
	}
	if down := drbook(t, nil, "lab", "down", "--dir", labDir); down.code != 0 {
		t.Errorf("lab down: %s", down.stderr)
	}
	_ = os.RemoveAll(labDir)
}

// agentProcesses lists live processes whose command line mentions dir.
func agentProcesses(t *testing.T, dir string) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmd), dir) {
			stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
			out = append(out, pid)
		}
	}
	return out
}
