package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
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
// live: every recorded event as engine.Recorded (the screen folds them with
// runlog, as it does live, so statuses, times and durations are the
// record's), with the announcements a live run also gets (steps pending and
// started, output lines, notices). Step and run outcomes are the fold's.
func replayEvents(r Replay) []engine.Event {
	run := r.Run
	view := runlog.Fold(r.Events)
	rb := replayRunbook(r)
	var ids []string
	seen := map[string]bool{}
	if rb != nil {
		for _, s := range rb.Steps {
			ids = append(ids, s.ID)
			seen[s.ID] = true
		}
	}
	targets := map[string][]string{}
	for _, x := range view.Execs {
		if !x.Ran {
			continue
		}
		if !seen[x.StepID] {
			seen[x.StepID] = true
			ids = append(ids, x.StepID)
		}
		if !slices.Contains(targets[x.StepID], x.Target) {
			targets[x.StepID] = append(targets[x.StepID], x.Target)
		}
	}
	h := view.Header
	out := []engine.Event{engine.RunStarted{
		RunID: run.ID, Runbook: h.RunbookName, Title: h.RunbookTitle,
		Inventory: h.InventoryPath, Time: h.Created, Steps: ids,
	}}
	if out[0].(engine.RunStarted).Title == "" && rb != nil {
		rs := out[0].(engine.RunStarted)
		rs.Title = rb.Title
		out[0] = rs
	}
	// The RTO budget: the one a recorded crossing names (a drill's
	// override included), else the runbook's rto:, counted from the run's
	// creation.
	if rs := out[0].(engine.RunStarted); rb != nil && rb.RTO > 0 {
		rs.RTO, rs.RTOSince = rb.RTO.D(), h.Created
		out[0] = rs
	}
	for _, ev := range r.Events {
		var n state.Note
		if ev.Type != state.EvNote || ev.Decode(&n) != nil || n.Data["kind"] != engine.NoteRTOCrossed {
			continue
		}
		if ms, err := strconv.ParseInt(n.Data["budget_ms"], 10, 64); err == nil && ms > 0 {
			rs := out[0].(engine.RunStarted)
			rs.RTO, rs.RTOSince = time.Duration(ms)*time.Millisecond, h.Created
			out[0] = rs
		}
	}
	pending := map[string]bool{}
	for _, ev := range r.Events {
		out = append(out, engine.Recorded{Event: ev})
		switch ev.Type {
		case state.EvRunResumed:
			var p state.RunResumed
			_ = ev.Decode(&p)
			out = append(out, engine.Notice{Text: fmt.Sprintf("resumed by %s on %s", p.User, p.Host), Time: ev.Time})
		case state.EvStepStarted:
			var p state.StepStarted
			_ = ev.Decode(&p)
			if !pending[ev.StepID] {
				pending[ev.StepID] = true
				out = append(out, engine.StepPending{StepID: ev.StepID, Title: p.Title, Kind: p.Kind, Targets: targets[ev.StepID], Danger: p.Danger, Time: ev.Time})
			}
			out = append(out, engine.StepStarted{StepID: ev.StepID, Target: ev.Target, Attempt: ev.Attempt, Summary: p.Summary, Time: ev.Time})
		case state.EvStepFinished:
			var p state.StepFinished
			_ = ev.Decode(&p)
			for _, line := range strings.Split(strings.TrimRight(p.Log, "\n"), "\n") {
				if line != "" {
					out = append(out, engine.OutputLine{StepID: ev.StepID, Target: ev.Target, Line: line, Time: ev.Time})
				}
			}
			out = append(out, engine.StepFinished{StepID: ev.StepID, Target: ev.Target, Attempt: ev.Attempt, Status: p.Status,
				ExitCode: p.ExitCode, Err: p.Error, Duration: time.Duration(p.DurationMS) * time.Millisecond, Outputs: p.Outputs, Time: ev.Time})
		}
	}
	for _, s := range view.Steps {
		if s.Status != state.StatusPending {
			out = append(out, engine.StepDone{StepID: s.ID, Status: s.Status, Reason: s.Reason, Time: s.End})
		}
	}
	return append(out, engine.RunFinished{RunID: run.ID, Status: h.Status, Err: h.Error,
		Machine: time.Duration(h.MachineMS) * time.Millisecond, Human: time.Duration(h.HumanMS) * time.Millisecond, Time: h.LastTime})
}

// verifyText is the header's chain status.
func verifyText(r Replay) (string, bool) {
	if r.VerifyErr != nil {
		return clean(r.VerifyErr.Error()), false
	}
	if r.Verify.OK {
		return fmt.Sprintf("(%d events)", r.Verify.Events), true
	}
	return fmt.Sprintf("at seq %d: %s", r.Verify.FirstBadSeq, clean(r.Verify.Reason)), false
}
