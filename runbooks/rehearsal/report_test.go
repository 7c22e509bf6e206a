package rehearsal

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// sample is a drill's report with every field set.
func sample(unit string) *Report {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	return &Report{
		RunID: "r20261129-120000-abcd", Drill: "counter-file-loss", Runbook: "counter-restore", Scenario: "data-loss", Nodes: 1,
		Status: "succeeded", Started: t0, Unit: unit, Expect: "restore_point",
		KeysAtBackup: 50, KeysAfterBackup: 7, KeysBefore: 57, KeysAfter: 50, KeysLost: 7,
		DigestAtBackup: "26f4", DigestBefore: "8ef1", DigestAfter: "26f4",
		BackupAt: t0, LastWriteAt: t0.Add(time.Second), DisasterAt: t0.Add(2 * time.Second), RecoveredAt: t0.Add(5 * time.Second),
		DisasterNodes: []string{"n1"},
		RTO:           Duration(3 * time.Second), Machine: Duration(2500 * time.Millisecond), Human: Duration(500 * time.Millisecond),
		RTOBudget: Duration(time.Minute), RPOKeys: 7, RPOWindow: Duration(time.Second),
		Steps: []StepTiming{
			{Step: "disaster: delete the data", Target: "n1", Attempt: 1, Status: "succeeded", Start: 0, Length: Duration(100 * time.Millisecond)},
			{Step: "restore", Target: "n1", Attempt: 1, Status: "succeeded", Start: Duration(time.Second), Length: Duration(time.Second)},
			{Step: "verify: health", Attempt: 2, Status: "failed", Start: Duration(2 * time.Second), Length: Duration(time.Second)},
		},
	}
}

// TestReportGolden: the Markdown and SVG renderings of a report are stable
// (golden files under testdata/; go test ./runbooks/rehearsal -update).
func TestReportGolden(t *testing.T) {
	for _, tc := range []struct{ name, unit string }{{"items", "items"}, {"keys", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			r := sample(tc.unit)
			var md, svg bytes.Buffer
			if err := r.Markdown(&md); err != nil {
				t.Fatal(err)
			}
			if err := r.SVG(&svg); err != nil {
				t.Fatal(err)
			}
			for file, got := range map[string][]byte{"report-" + tc.name + ".md": md.Bytes(), "timeline-" + tc.name + ".svg": svg.Bytes()} {
				path := filepath.Join("testdata", file)
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (go test ./runbooks/rehearsal -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the golden file:\n%s", file, got)
				}
			}
			unit := tc.unit
			if unit == "" {
				unit = "keys"
			}
			if !strings.Contains(md.String(), "| RPO ("+unit+" lost) | 7 |") || strings.Count(svg.String(), "<rect") != len(r.Steps) {
				t.Errorf("report does not show the RPO in %s or a bar per step", unit)
			}
		})
	}
}

// TestReportJSONRoundTrip: the JSON report reads back equal, durations in
// seconds with millisecond precision.
func TestReportJSONRoundTrip(t *testing.T) {
	r := sample("rows")
	var b bytes.Buffer
	if err := r.JSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"rto": 3.000`) || !strings.Contains(b.String(), `"unit": "rows"`) || !strings.Contains(b.String(), `"digest_after_recovery": "26f4"`) {
		t.Errorf("JSON lacks fields:\n%s", b.String())
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.RTO != r.RTO || back.RPOKeys != 7 || back.Drill != r.Drill || back.RTOBudget != r.RTOBudget || len(back.Steps) != 3 {
		t.Errorf("round trip: %+v", back)
	}
}

// TestReportRTOBudget: the report says met or missed against the budget,
// by how much, with the machine and operator split; without a budget it
// says neither.
func TestReportRTOBudget(t *testing.T) {
	cases := []struct {
		name          string
		budget, rto   time.Duration
		result        string
		marginMS      int64
		summary, inMD string
	}{
		{"met", time.Minute, 3 * time.Second, RTOMet, 57000, "met, 57s to spare (RTO 3s: machine 2.5s, operator 500ms)", "| RTO budget | 1m0s: met, 57s to spare"},
		{"missed", 2 * time.Second, 3 * time.Second, RTOMissed, -1000, "MISSED by 1s (RTO 3s: machine 2.5s, operator 500ms)", "| RTO budget | 2s: MISSED by 1s"},
		{"exactly", 3 * time.Second, 3 * time.Second, RTOMet, 0, "met, 0s to spare", "met, 0s to spare"},
		{"none", 0, 3 * time.Second, "", 0, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := sample("")
			r.RTOBudget, r.RTO = Duration(c.budget), Duration(c.rto)
			r.Machine, r.Human = Duration(c.rto-500*time.Millisecond), Duration(500*time.Millisecond)
			r.SettleRTO()
			if r.RTOResult != c.result || time.Duration(r.RTOMargin).Milliseconds() != c.marginMS {
				t.Errorf("result %q margin %s, want %q %dms", r.RTOResult, r.RTOMargin, c.result, c.marginMS)
			}
			if !strings.HasPrefix(r.RTOSummary(), c.summary) || (c.summary == "" && r.RTOSummary() != "") {
				t.Errorf("summary %q, want %q", r.RTOSummary(), c.summary)
			}
			var md bytes.Buffer
			if err := r.Markdown(&md); err != nil {
				t.Fatal(err)
			}
			if c.inMD != "" && !strings.Contains(md.String(), c.inMD) {
				t.Errorf("Markdown lacks %q:\n%s", c.inMD, md.String())
			}
			if c.inMD == "" && strings.Contains(md.String(), "RTO budget") {
				t.Errorf("Markdown shows a budget without one")
			}
		})
	}
}
