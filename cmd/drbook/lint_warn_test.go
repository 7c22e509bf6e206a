package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestLintWarnings: a runbook with warnings only is valid (exit 0), and each
// warning is printed as file:line:col: warning: message, or with severity
// "warning" in JSON.
func TestLintWarnings(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/runbooks/warnings/*.yaml")
	if len(files) == 0 {
		t.Fatal("no warning runbooks")
	}
	for _, f := range files {
		r := drbook(t, nil, "lint", f, "-i", "../../testdata/inventories/three.yaml")
		if r.code != 0 {
			t.Errorf("%s: exit %d, want 0 (warnings only)\n%s", f, r.code, r.stdout)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-1], "ok: 1 file(s) valid, ") {
			t.Errorf("%s: output:\n%s", f, r.stdout)
			continue
		}
		for _, line := range lines[:len(lines)-1] {
			if !strings.HasPrefix(line, f+":") || !strings.Contains(line, ": warning: ") {
				t.Errorf("%s: not file:line:col: warning: %q", f, line)
			}
		}
		j := drbook(t, nil, "lint", f, "-i", "../../testdata/inventories/three.yaml", "--output", "json")
		var out struct {
			OK       bool `json:"ok"`
			Problems []struct {
				Severity string `json:"severity"`
			} `json:"problems"`
		}
		if err := json.Unmarshal([]byte(j.stdout), &out); err != nil {
			t.Fatalf("%s: json: %v\n%s", f, err, j.stdout)
		}
		if !out.OK || j.code != 0 || len(out.Problems) == 0 {
			t.Errorf("%s: json ok=%v exit %d problems %d", f, out.OK, j.code, len(out.Problems))
		}
		for _, p := range out.Problems {
			if p.Severity != "warning" {
				t.Errorf("%s: severity %q", f, p.Severity)
			}
		}
	}
}
