package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/runbooks/rehearsal"
)

// rehearsalReport checks the JSON document `rehearse -o json` printed
// (docs/json.md: schema, snake_case) against the report.json written in
// reportDir, and returns the written report, which has every field.
func rehearsalReport(t *testing.T, stdout, reportDir string) rehearsal.Report {
	t.Helper()
	var doc jsonapi.Rehearsal
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || doc.Schema != jsonapi.Schema {
		t.Fatalf("rehearse JSON: %v\n%s", err, stdout)
	}
	assertSnakeCase(t, "rehearse", stdout)
	b, err := os.ReadFile(filepath.Join(reportDir, "report.json")) // #nosec G304 -- the report this test asked for
	if err != nil {
		t.Fatal(err)
	}
	var rep rehearsal.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	// report.json keeps seconds with millisecond precision; the JSON
	// contract whole milliseconds: they agree within rounding.
	if doc.RunID != rep.RunID || doc.RPOKeys != rep.RPOKeys || doc.KeysLost != rep.KeysLost || doc.Drill != rep.Drill ||
		(time.Duration(rep.RTO)-time.Duration(doc.RTOMS)*time.Millisecond).Abs() > 2*time.Millisecond {
		t.Errorf("printed report disagrees with report.json:\n%s\n%s", stdout, b)
	}
	return rep
}

// splitAddsUp: machine time plus operator time is the RTO, within the
// millisecond rounding of report.json (each is rounded on its own).
func splitAddsUp(rep rehearsal.Report) bool {
	return (time.Duration(rep.Machine+rep.Human) - time.Duration(rep.RTO)).Abs() <= 2*time.Millisecond
}
