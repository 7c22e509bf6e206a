package tui

import (
	"time"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// chain builds the events a run's record holds, for fixtures: seq numbers
// in order and payloads as the engine writes them, handed over as the
// engine hands them to its observers.
type chain struct {
	runID string
	seq   int64
}

func (c *chain) ev(typ state.EventType, step, target string, attempt int, payload any, t time.Time) runlog.Recorded {
	ev, err := state.NewEvent(c.runID, typ, payload)
	if err != nil {
		panic(err)
	}
	c.seq++
	ev.Seq, ev.StepID, ev.Target, ev.Attempt, ev.Time = c.seq, step, target, attempt, t
	return runlog.Recorded{Event: ev}
}

func (c *chain) created(name, title, inventory string, t time.Time) runlog.Recorded {
	p := state.RunCreated{RunbookName: name, RunbookTitle: title, Mode: state.ModeInteractive}
	if inventory != "" {
		p.Inventory = &state.RecordedFile{Path: inventory}
	}
	return c.ev(state.EvRunCreated, "", "", 0, p, t)
}

func (c *chain) started(step, target string, attempt int, title, summary string, t time.Time) runlog.Recorded {
	return c.ev(state.EvStepStarted, step, target, attempt, state.StepStarted{Title: title, Kind: "shell", Summary: summary}, t)
}

func (c *chain) finished(step, target string, attempt int, status state.Status, exit int, errText string, d time.Duration, t time.Time) runlog.Recorded {
	return c.ev(state.EvStepFinished, step, target, attempt, state.StepFinished{Status: status, ExitCode: exit, Error: errText, DurationMS: d.Milliseconds()}, t)
}

func (c *chain) runFinished(status state.Status, errText string, t time.Time) runlog.Recorded {
	return c.ev(state.EvRunFinished, "", "", 0, state.RunFinished{Status: status, Error: errText}, t)
}
