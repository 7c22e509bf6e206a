package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
)

// Test hooks of the fault matrix (FAULTS.md). They are read from the
// environment only, do nothing when unset, and exist so that the tests can
// crash the runner at an exact checkpoint boundary and skew its wall clock;
// no operator-facing flag exposes them.
const (
	// envFaultCrash is "<event-type>:<step-id>:<before|after>[:<target>]":
	// the runner SIGKILLs itself right before or right after appending the
	// first matching event (e.g. step.finished:restore:before).
	envFaultCrash = "DRBOOK_FAULT_CRASH"
	// envFaultClock is "<step-id>:<offset>" (e.g. slow:+26h): from the first
	// event of that step on, every recorded event time is shifted by offset,
	// as if the runner's wall clock jumped there (an NTP step, a skewed VM).
	envFaultClock = "DRBOOK_FAULT_CLOCK"
)

// faultStore wraps the checkpoint store with the hooks above when they are
// set, and returns db itself otherwise.
func faultStore(db *state.DB) engine.Store {
	crash, clock := os.Getenv(envFaultCrash), os.Getenv(envFaultClock)
	if crash == "" && clock == "" {
		return db
	}
	fs := &faultyStore{DB: db}
	if crash != "" {
		f := strings.Split(crash, ":")
		if len(f) < 3 || (f[2] != "before" && f[2] != "after") {
			fmt.Fprintf(os.Stderr, "drbook: ignoring %s=%q: want <event-type>:<step-id>:<before|after>[:<target>]\n", envFaultCrash, crash)
		} else {
			fs.crashType, fs.crashStep, fs.crashWhen = state.EventType(f[0]), f[1], f[2]
			if len(f) > 3 {
				fs.crashTarget = f[3]
			}
		}
	}
	if clock != "" {
		step, off, ok := strings.Cut(clock, ":")
		d, err := time.ParseDuration(strings.TrimPrefix(off, "+"))
		if !ok || err != nil {
			fmt.Fprintf(os.Stderr, "drbook: ignoring %s=%q: want <step-id>:<offset>\n", envFaultClock, clock)
		} else {
			fs.skewStep, fs.skew = step, d
		}
	}
	return fs
}

// faultyStore is a state.DB whose Append obeys the fault hooks.
type faultyStore struct {
	*state.DB
	crashType                         state.EventType
	crashStep, crashWhen, crashTarget string
	skewStep                          string
	skew                              time.Duration
	skewOn                            atomic.Bool // set from the first event of skewStep on; targets run in parallel
}

// Append appends ev, crashing the process before or after it if ev matches
// the crash point, and shifting its time once the skew is on.
func (s *faultyStore) Append(ctx context.Context, ev state.Event) (state.Event, error) {
	hit := s.crashType != "" && ev.Type == s.crashType && ev.StepID == s.crashStep &&
		(s.crashTarget == "" || ev.Target == s.crashTarget)
	if hit && s.crashWhen == "before" {
		killSelf()
	}
	if s.skewStep != "" && ev.StepID == s.skewStep {
		s.skewOn.Store(true)
	}
	if s.skewOn.Load() {
		if ev.Time.IsZero() {
			ev.Time = time.Now()
		}
		ev.Time = ev.Time.Add(s.skew)
	}
	out, err := s.DB.Append(ctx, ev)
	if hit && s.crashWhen == "after" && err == nil {
		killSelf()
	}
	return out, err
}

// killSelf ends the process as kill -9 would: no deferred call, no flush.
func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
