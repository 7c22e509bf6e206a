package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
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

// replayEvents turns a run's record into the engine events the run screen
// renders, so a replay looks exactly like the live run did.
func replayEvents(r Replay) []engine.Event {
	run := r.Run
	rb := recordedRunbook(run)
	var ids []string
	seen := map[string]bool{}
	if rb != nil {
		for _, s := range rb.Steps {
			ids = append(ids, s.ID)
			seen[s.ID] = true
		}
	}
	targets := map[string][]string{}
	for _, ev := range r.Events {
		if ev.Type != state.EvStepStarted {
			continue
		}
		if !seen[ev.StepID] {
			seen[ev.StepID] = true
			ids = append(ids, ev.StepID)
		}
		if !contains(targets[ev.StepID], ev.Target) {
			targets[ev.StepID] = append(targets[ev.StepID], ev.Target)
		}
	}
	out := []engine.Event{engine.RunStarted{
		RunID: run.ID, Runbook: run.RunbookName, Title: run.RunbookTitle,
		Inventory: run.InventoryPath, Time: run.CreatedAt, Steps: ids,
	}}
	pending := map[string]bool{}
	last := map[string]map[string]state.Status{}
	lastTime := map[string]time.Time{}
	skipped := map[string]string{}
	var finished *engine.RunFinished
	for _, ev := range r.Events {
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
			if last[ev.StepID] == nil {
				last[ev.StepID] = map[string]state.Status{}
			}
			last[ev.StepID][ev.Target] = p.Status
			lastTime[ev.StepID] = ev.Time
		case state.EvStepDecision:
			var p state.StepDecision
			_ = ev.Decode(&p)
			text := "decision: " + p.Decision
			if p.Reason != "" {
				text += " — " + p.Reason
			}
			if p.By != "" {
				text += " (by " + p.By + ")"
			}
			out = append(out, engine.Notice{StepID: ev.StepID, Target: ev.Target, Text: text, Time: ev.Time})
			if p.Decision == state.DecisionSkip {
				skipped[ev.StepID] = p.Reason
				lastTime[ev.StepID] = ev.Time
			}
		case state.EvOperatorWait:
			var p state.OperatorWait
			_ = ev.Decode(&p)
			text := fmt.Sprintf("operator %s answered %q", p.Kind, p.Response)
			if p.By != "" {
				text += " (by " + p.By + ")"
			}
			text += fmt.Sprintf(" after %s", shortDur(time.Duration(p.DurationMS)*time.Millisecond))
			out = append(out, engine.Notice{StepID: ev.StepID, Text: text, Time: ev.Time})
		case state.EvRunFinished:
			var p state.RunFinished
			_ = ev.Decode(&p)
			finished = &engine.RunFinished{RunID: run.ID, Status: p.Status, Err: p.Error,
				Machine: time.Duration(p.MachineMS) * time.Millisecond, Human: time.Duration(p.HumanMS) * time.Millisecond, Time: ev.Time}
		}
	}
	for _, id := range ids {
		st, ok := stepStatus(last[id])
		if reason, sk := skipped[id]; sk {
			out = append(out, engine.StepDone{StepID: id, Status: state.StatusSkipped, Reason: reason, Time: lastTime[id]})
			continue
		}
		if ok {
			out = append(out, engine.StepDone{StepID: id, Status: st, Time: lastTime[id]})
		}
	}
	if finished == nil {
		end := run.UpdatedAt
		finished = &engine.RunFinished{RunID: run.ID, Status: run.Status, Time: end}
	}
	return append(out, *finished)
}

// stepStatus is the settled status of a step from its targets' last
// executions: failed if any failed, running/interrupted if any did not end.
func stepStatus(byTarget map[string]state.Status) (state.Status, bool) {
	if len(byTarget) == 0 {
		return "", false
	}
	st := state.StatusSucceeded
	for _, s := range byTarget {
		switch s {
		case state.StatusFailed:
			return state.StatusFailed, true
		case state.StatusInterrupted, state.StatusRunning:
			st = state.StatusInterrupted
		}
	}
	return st, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
