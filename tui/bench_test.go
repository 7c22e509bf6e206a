package tui

import (
	"fmt"
	"testing"
	"time"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// bigRun returns a run screen of a 500-step run, 499 steps done (every
// tenth fanned out to 3 targets), the last one running with 10,000 lines of
// output.
func bigRun(b *testing.B, w, h int) *RunView {
	b.Helper()
	c := NewCommon(fixedNow)
	v := NewRunView(c, nil)
	v.SetSize(w, h)
	ids := make([]string, 500)
	for i := range ids {
		ids[i] = fmt.Sprintf("step-%03d", i)
	}
	rec := &chain{runID: "r1"}
	v.Handle(rec.created("big", "Five hundred steps", "", at(0)))
	for i, id := range ids {
		targets := []string{"node1"}
		if i%10 == 0 {
			targets = []string{"node1", "node2", "node3"}
		}
		v.Handle(runlog.StepPending{StepID: id, Title: "Step number " + id, Kind: "shell", Targets: targets, Danger: i%50 == 0, Time: at(i)})
		for _, t := range targets {
			v.Handle(rec.started(id, t, 1, "Step number "+id, "run "+id, at(i)))
			v.Handle(runlog.OutputLine{StepID: id, Target: t, Line: "ok", Time: at(i)})
			if i < len(ids)-1 {
				v.Handle(rec.finished(id, t, 1, state.StatusSucceeded, 0, "", time.Millisecond, at(i)))
			}
		}
	}
	last := ids[len(ids)-1]
	for i := range 10000 {
		v.Handle(runlog.OutputLine{StepID: last, Target: "node1", Line: fmt.Sprintf("line %05d of a long-running restore: copied %d chunks of the snapshot to the new leader", i, i*7), Stderr: i%100 == 0, Time: at(i)})
	}

	_ = v.View()
	return v
}

// BenchmarkRunScreenRender renders one frame of the run screen of a
// 500-step run with 10,000 output lines: "streaming" with one new line per
// frame (the live case), "idle" with none. Target: ≤ 16 ms per frame.
func BenchmarkRunScreenRender(b *testing.B) {
	for _, sz := range sizes {
		b.Run(fmt.Sprintf("streaming/%dx%d", sz.w, sz.h), func(b *testing.B) {
			v := bigRun(b, sz.w, sz.h)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				v.Handle(runlog.OutputLine{StepID: "step-499", Target: "node1", Line: fmt.Sprintf("more output %d", i)})

				_ = v.View()
			}
		})
		b.Run(fmt.Sprintf("idle/%dx%d", sz.w, sz.h), func(b *testing.B) {
			v := bigRun(b, sz.w, sz.h)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_ = v.View()
			}
		})
	}
}
