package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var exitRE = regexp.MustCompile(`DRBOOK-EXIT=(\d+)`)

// TestTUIExitCodes: Ctrl-C anywhere in the TUI before a run starts — in the
// input form, in the picker — exits 130 (interrupted, as documented) and
// records nothing; leaving with q exits 0.
func TestTUIExitCodes(t *testing.T) {
	tests := []struct {
		name string
		// steps: keys to send once the screen shows the text.
		steps    [][2]string
		wantExit string
	}{
		{"ctrl+c in the input form", [][2]string{{"pick a runbook", "Down Enter"}, {"Node to wipe", "C-c"}}, "130"},
		{"ctrl+c in the picker", [][2]string{{"pick a runbook", "C-c"}}, "130"},
		{"q in the picker", [][2]string{{"pick a runbook", "q"}}, "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, db := workdir(t, "broken.yaml", "drill.yaml")
			inv := abs(t, "../testdata/inventory.yaml")
			cmd := fmt.Sprintf("cd %s && env NO_COLOR=1 TERM=xterm-256color %s --db %s -i %s --dir runbooks; echo DRBOOK-EXIT=$?; sleep 60",
				dir, drbookBin, db, inv)
			tm := startTmux(t, 100, 30, cmd)
			for _, st := range tc.steps {
				tm.waitFor(st[0])
				tm.keys(strings.Fields(st[1])...)
			}
			exited := tm.waitFor("DRBOOK-EXIT=")
			if m := exitRE.FindStringSubmatch(exited); m == nil || m[1] != tc.wantExit {
				t.Fatalf("want exit %s:\n%s", tc.wantExit, exited)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, drbookBin, "--db", db, "runs", "-o", "json").Output()
			if err != nil {
				t.Fatalf("drbook runs: %v", err)
			}
			var doc struct {
				Runs []map[string]any `json:"runs"`
			}
			if err := json.Unmarshal(out, &doc); err != nil || len(doc.Runs) != 0 {
				t.Errorf("nothing should be recorded before a run starts: %s %v", out, err)
			}
		})
	}
}
