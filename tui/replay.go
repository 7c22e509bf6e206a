package tui

import (
	"fmt"
	"strings"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/evidence"
	"github.com/drbook/drbook/state/runlog"
)

// Replay is a recorded run to show read-only: its row, its events and the
// result of verifying its hash chain.
type Replay struct {
	Run    state.Run
	Events []state.Event
	Verify state.VerifyReport
	// VerifyErr is set when verification could not run.
	VerifyErr error
	// Signatures is the check of the run's signatures (nil: not checked),
	// shown with the verification: who signed, or "unsigned".
	Signatures *evidence.Report
}

// recordedRunbook parses the runbook source kept with the run, for step
// titles and order; nil if it no longer parses.
func recordedRunbook(run state.Run) *runbooks.Runbook {
	if len(run.RunbookSource) == 0 {
		return nil
	}
	rb, err := runbooks.ParseRunbook(run.RunbookPath, run.RunbookSource)
	if err != nil {
		return nil
	}
	return rb
}

// replayRunbook parses the runbook the record's chain holds (the latest,
// after any change a resume accepted), for step titles and order; nil if
// the record holds none (older records) or it no longer parses.
func replayRunbook(r Replay) *runbooks.Runbook {
	files, err := state.Files(r.Events)
	if err != nil || files.Runbook == nil {
		return nil
	}
	rb, err := runbooks.ParseRunbook(files.Runbook.Path, files.Runbook.Bytes())
	if err != nil {
		return nil
	}
	return rb
}

// replayEvents turns a run's record into the events the run screen takes
// live: every recorded event as runlog.Recorded (the screen folds them with
// runlog, as it does live, so statuses, times and durations are the
// record's), each execution's recorded output as the output lines a live
// run shows: the lines of its step.output checkpoints as they were
// recorded, and the rest of its log before its step.finished.
func replayEvents(r Replay) []runlog.Event {
	type key struct {
		step, target string
		attempt      int
	}
	shown := map[key]int{} // bytes of each execution's log already shown
	out := make([]runlog.Event, 0, len(r.Events))
	lines := func(ev state.Event, log []byte) {
		for _, line := range strings.Split(strings.TrimRight(string(log), "\n"), "\n") {
			stderr := strings.HasPrefix(line, "! ")
			if stderr {
				line = strings.TrimPrefix(line, "! ")
			}
			if line != "" {
				out = append(out, runlog.OutputLine{StepID: ev.StepID, Target: ev.Target, Stderr: stderr, Line: line, Time: ev.Time})
			}
		}
	}
	for _, ev := range r.Events {
		k := key{ev.StepID, ev.Target, ev.Attempt}
		switch ev.Type {
		case state.EvStepStarted:
			delete(shown, k)
		case state.EvStepOutput:
			var p state.StepOutput
			if ev.Decode(&p) == nil && p.Offset == int64(shown[k]) {
				lines(ev, p.Bytes())
				shown[k] += len(p.Bytes())
			}
		case state.EvStepFinished:
			var p state.StepFinished
			if ev.Decode(&p) == nil {
				log := p.LogBytes()
				if n := shown[k]; n <= len(log) {
					log = log[n:]
				}
				lines(ev, log)
			}
		}
		out = append(out, runlog.Recorded{Event: ev})
	}
	return out
}

// verifyText is the header's verification status, whole: "chain verified
// ✓ …" when the chain, its signatures and approvals verify; "CHAIN BROKEN ✗
// …" when the chain itself does not; "NOT VERIFIED ✗ …" when the chain is
// intact but its signatures or approvals are not.
func verifyText(r Replay) (string, bool) {
	if r.VerifyErr != nil {
		if r.Verify.OK {
			return clean("NOT VERIFIED ✗ " + r.VerifyErr.Error()), false
		}
		return clean("CHAIN BROKEN ✗ " + r.VerifyErr.Error()), false
	}
	if !r.Verify.OK {
		return fmt.Sprintf("CHAIN BROKEN ✗ at seq %d: %s", r.Verify.FirstBadSeq, clean(r.Verify.Reason)), false
	}
	if s := r.Signatures; s != nil {
		switch s.Status {
		case evidence.StatusSigned:
			return clean(fmt.Sprintf("chain verified ✓ (%d events) signed by %s", r.Verify.Events, strings.Join(s.ShortSigners(), "; "))), true
		case evidence.StatusUnsigned:
			return fmt.Sprintf("chain verified ✓ (%d events) UNSIGNED", r.Verify.Events), true
		case evidence.StatusPartial:
			return clean(fmt.Sprintf("NOT VERIFIED ✗ (%d events, chain intact) signatures do not cover the end: %s", r.Verify.Events, s.Reason)), false
		default:
			return clean(fmt.Sprintf("NOT VERIFIED ✗ (%d events, chain intact) signatures: %s", r.Verify.Events, s.Reason)), false
		}
	}
	return fmt.Sprintf("chain verified ✓ (%d events)", r.Verify.Events), true
}
