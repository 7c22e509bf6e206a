package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTUIRTOBudget drives the real binary in tmux at 80x24 with NO_COLOR
// through a run with a 10 s RTO budget whose one step takes 12 s: the
// header first shows the time left, then "LOW … left" in the last 20 %,
// then "OVER +…" — states told apart in words, without colour — and the
// crossing is listed on the screen; every line fits 80 columns.
func TestTUIRTOBudget(t *testing.T) {
	dir := t.TempDir()
	rb := filepath.Join(dir, "slow.yaml")
	src := "apiVersion: drbook/v1\nkind: Runbook\nname: slow-recovery\ntitle: Slow recovery\nrto: 10s\n" +
		"steps:\n  - id: restore\n    title: Restore slowly\n    run: shell\n    on: node1\n    with: {command: 'sleep 12'}\n"
	if err := os.WriteFile(rb, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := abs(t, "../testdata/inventory.yaml")
	cmd := fmt.Sprintf("cd %s && env NO_COLOR=1 TERM=xterm-256color XDG_CONFIG_HOME=%s %s --db %s run %s -i %s; echo DRBOOK-EXIT=$?; sleep 60",
		dir, dir, drbookBin, filepath.Join(dir, "drbook.db"), rb, inv)
	tm := startTmux(t, 80, 24, cmd)
	// A runbook without inputs starts at once.
	header := func(s string) string { return strings.SplitN(s, "\n", 2)[0] }
	ok := tm.waitUntil("the time left", func(s string) bool {
		h := header(s)
		return strings.Contains(h, "of 00:10 ·") && strings.Contains(h, "left") && !strings.Contains(h, "LOW")
	})
	low := tm.waitUntil("the LOW warning", func(s string) bool { return strings.Contains(header(s), "· LOW 00:0") })
	over := tm.waitUntil("the OVER alarm", func(s string) bool { return strings.Contains(header(s), "· OVER +00:0") })
	crossed := tm.waitFor("OVER RTO budget 00:10")
	done := tm.waitFor("run succeeded")
	for name, s := range map[string]string{"ok": ok, "low": low, "over": over, "crossed": crossed, "done": done} {
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		if len(lines) > 24 {
			t.Errorf("%s: %d lines on a 24-line terminal", name, len(lines))
		}
		for _, l := range lines {
			if n := len([]rune(l)); n > 80 {
				t.Errorf("%s: line wider than 80 columns (%d): %q", name, n, l)
			}
		}
	}
	if !strings.Contains(header(done), "OVER +") {
		t.Errorf("the finished run's header does not keep the alarm: %q", header(done))
	}
	t.Logf("header states:\n%s\n%s\n%s", header(ok), header(low), header(over))
	tm.keys("q")
	if exited := tm.waitFor("DRBOOK-EXIT="); !strings.Contains(exited, "DRBOOK-EXIT=0") {
		t.Errorf("drbook did not exit 0:\n%s", exited)
	}
}
