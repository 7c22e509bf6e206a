package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
)

// TestMisbehavingPluginsFailOnlyTheirStep: a plugin that panics, hangs past
// the step timeout or exits mid-step fails that step with a clear message;
// the run stops cleanly, its record verifies, the plugin process is gone,
// and resuming re-runs the step on a fresh plugin process to the end.
func TestMisbehavingPluginsFailOnlyTheirStep(t *testing.T) {
	tests := []struct {
		name, plugin, kind string
		timeout            string
		wantErr            string
		killed             bool // the process must be gone after the step
	}{
		{"panic in kind", "panic", "panic.inkind", "", "plugin step kind panicked: boom", false},
		{"panic in goroutine", "panic", "panic.goroutine", "", "plugin process exited during the step: panic: boom in a goroutine (exit status 2)", true},
		{"hang past timeout", "hang", "hang.forever", "timeout: 1s", "did not end the step in time and was killed", true},
		{"exit mid-step", "crash", "crash.exit", "", "plugin process exited during the step: crash fixture: exiting with status 7 (exit status 7)", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, reg, ps := load(t, tc.plugin)
			inv := localInventory(t, t.TempDir(), 1)
			f := newFixture(t, reg, inv, localDial)
			marker := filepath.Join(f.dir, "marker")
			rb := header + fmt.Sprintf(`steps:
  - id: before
    run: shell
    on: node1
    with: {command: 'echo x >> "$NODE_DIR/before"'}
  - id: bad
    run: %s
    on: node1
    %s
    with: {marker: %q}
  - id: after
    run: shell
    on: node1
    with: {command: 'echo x >> "$NODE_DIR/after"'}
`, tc.kind, tc.timeout, marker)
			pid := ps[0].PID()
			if pid == 0 {
				t.Fatal("plugin not running after load")
			}
			out, err := engine.Start(context.Background(), f.config(t, rb), nil)
			if !errors.Is(err, engine.ErrStepFailed) {
				t.Fatalf("run: %v, want a failed step\n%s", err, f.rec.lines())
			}
			xs := f.execs(t, out.RunID)
			bad := xs["bad"]
			if bad.Status != state.StatusFailed || !strings.Contains(bad.Error, tc.wantErr) {
				t.Errorf("bad step: %s %q, want failed with %q", bad.Status, bad.Error, tc.wantErr)
			}
			if xs["before"].Status != state.StatusSucceeded {
				t.Errorf("before: %s", xs["before"].Status)
			}
			if _, ran := xs["after"]; ran {
				t.Error("the step after the failure ran")
			}
			if tc.killed && pidAlive(pid) {
				t.Errorf("plugin process %d still alive after the step", pid)
			}
			if rep, err := f.db.Verify(context.Background(), out.RunID); err != nil || !rep.OK {
				t.Errorf("verify: %+v %v", rep, err)
			}
			// Resume: the failed step runs again (the marker makes it
			// behave), on a new process when the old one died.
			res, err := engine.Resume(context.Background(), f.config(t, rb), out.RunID, engine.ResumeOptions{})
			if err != nil || res.Status != state.StatusSucceeded {
				t.Fatalf("resume: %v %s\n%s", err, res.Status, f.rec.lines())
			}
			xs = f.execs(t, out.RunID)
			if xs["bad"].Status != state.StatusSucceeded || !strings.Contains(xs["bad"].Log, "fine this time") {
				t.Errorf("bad after resume: %s %q", xs["bad"].Status, xs["bad"].Log)
			}
			if xs["after"].Status != state.StatusSucceeded {
				t.Errorf("after: %s", xs["after"].Status)
			}
			if tc.killed && ps[0].PID() == pid {
				t.Errorf("plugin was not restarted (pid %d)", pid)
			}
		})
	}
	waitNoPluginProcs(t, binDir)
}
