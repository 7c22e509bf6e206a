package tui

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

// rssChildEnv makes the test binary a child that feeds output through the
// program and prints its peak RSS (see TestMain).
const rssChildEnv = "DRBOOK_TUI_RSS_CHILD_MB"

// rssWatchdogKB kills a child whose RSS passes 1 GiB, so a regression fails
// the measurement instead of exhausting the machine.
const rssWatchdogKB = 1 << 20

func TestMain(m *testing.M) {
	if mb := os.Getenv(rssChildEnv); mb != "" {
		n, err := strconv.Atoi(mb)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := rssChild(n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// rssChild runs the real program (model, bridge, renderer to nowhere) on a
// run whose one step prints mb megabytes of output, as the engine's
// observer would, then prints its peak RSS and the last line on screen.
func rssChild(mb int) error {
	const lineLen = 100
	lines := mb << 20 / lineLen
	pad := strings.Repeat("x", lineLen-40)
	var b *Bridge
	finished := make(chan struct{})
	start := func(ctx context.Context, rb *runbooks.Runbook, _ map[string]runbooks.Value, observe func(runlog.Event), _ steps.Operator) (engine.Outcome, error) {
		defer close(finished)
		c := &chain{runID: "r-rss"}
		observe(c.created(rb.Name, rb.Title, "", time.Now()))
		observe(runlog.StepPending{StepID: "big", Title: "Print a lot", Kind: "shell", Targets: []string{"node1"}, Time: time.Now()})
		observe(c.started("big", "node1", 1, "Print a lot", "cat big", time.Now()))
		for i := range lines {
			observe(runlog.OutputLine{StepID: "big", Target: "node1", Stderr: i%100 == 0, Line: fmt.Sprintf("line %09d %s", i, pad), Time: time.Now()})
		}
		// Let the screen drain what the bridge holds before the run ends.
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			b.mu.Lock()
			n := len(b.pending)
			b.mu.Unlock()
			if n == 0 {
				break
			}
		}
		observe(c.finished("big", "node1", 1, state.StatusSucceeded, 0, "", 0, time.Now()))
		observe(c.runFinished(state.StatusSucceeded, "", time.Now()))
		return engine.Outcome{RunID: "r-rss", Status: state.StatusSucceeded}, nil
	}
	rb := &runbooks.Runbook{Name: "rss", Title: "Output memory", Steps: []runbooks.Step{{ID: "big", Title: "Print a lot", Run: "shell"}}}
	m := New(context.Background(), Options{Runbook: &PickerItem{Path: "rss.yaml", Runbook: rb}, Start: start, User: "bench", NoTick: true})
	b = m.bridge
	p := tea.NewProgram(m, tea.WithInput(nil), tea.WithOutput(io.Discard), tea.WithWindowSize(120, 40), tea.WithoutSignals())
	go func() {
		<-finished
		time.Sleep(300 * time.Millisecond)
		p.Quit()
	}()
	if _, err := p.Run(); err != nil {
		return err
	}
	last := ""
	for _, l := range strings.Split(m.run.View(), "\n") {
		if strings.HasPrefix(l, "line ") {
			last = l
		}
	}
	hwm, err := procStatusKB(os.Getpid(), "VmHWM")
	if err != nil {
		return err
	}
	fmt.Printf("peak_rss_kb=%d\nlast=%s\n", hwm, strings.Fields(last + " _ _")[1])
	return nil
}

// procStatusKB reads a "kB" field of /proc/PID/status.
func procStatusKB(pid int, field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// measureRSS runs the child on mb megabytes of output under a watchdog and
// returns its peak RSS in kB and the last output line it showed.
func measureRSS(t testing.TB, mb int) (peakKB int, last string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", rssChildEnv, mb))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out.String())
			}
			for _, l := range strings.Split(out.String(), "\n") {
				if v, ok := strings.CutPrefix(l, "peak_rss_kb="); ok {
					peakKB, _ = strconv.Atoi(v)
				}
				if v, ok := strings.CutPrefix(l, "last="); ok {
					last = v
				}
			}
			if peakKB == 0 {
				t.Fatalf("child printed no peak RSS:\n%s", out.String())
			}
			return peakKB, last
		case <-tick.C:
			if kb, err := procStatusKB(cmd.Process.Pid, "VmRSS"); err == nil && kb > rssWatchdogKB {
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("child passed %d MB of RSS: killed", rssWatchdogKB>>10)
			}
		}
	}
}

// TestTUIOutputMemoryBounded feeds 60 MB of output through the program: the
// screen keeps a bounded tail, so the process stays far below what keeping
// every line costs (before the bound, 150 MB of output took 493 MB).
func TestTUIOutputMemoryBounded(t *testing.T) {
	const mb = 60
	peak, last := measureRSS(t, mb)
	t.Logf("%d MB of output: peak RSS %d MB", mb, peak>>10)
	want := fmt.Sprintf("%09d", (mb<<20/100)-1)
	if last != want {
		t.Errorf("the screen's last line is %q, want line %s: output was lost at the end", last, want)
	}
	if peak>>10 > 120 {
		t.Errorf("peak RSS %d MB with %d MB of output, want at most 120 MB", peak>>10, mb)
	}
}

// BenchmarkTUIOutputRSS150MB measures the peak RSS of the program while 150
// MB of output goes through the bridge and the run screen (one child
// process per iteration, under a 1 GiB watchdog). Target: at most 150 MB.
func BenchmarkTUIOutputRSS150MB(b *testing.B) {
	for b.Loop() {
		start := time.Now()
		peak, _ := measureRSS(b, 150)
		b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
		b.ReportMetric(150/time.Since(start).Seconds(), "output-MB/s")
	}
}
