package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/runbooks/library"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/approvals"
	"github.com/drbook/drbook/state/evidence"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/tui"
)

// interactiveRequest is what the TUI is asked to open: a runbook to run, a
// run to resume or replay, or (all empty) the unfinished runs and the picker
// over the runbooks in Dir.
type interactiveRequest struct {
	Runbook, Inventory, Answers string
	ResumeID, ReplayID          string
	// ResumeOpts are the standing decisions of `resume --tui` (--accept-changed,
	// --redo, --skip --reason).
	ResumeOpts engine.ResumeOptions
	// Dir holds the runbook files the picker offers.
	Dir string
	// Allowed, for a replay, checks the signers against an allowed-signers
	// file (nil: signatures are checked, signers not).
	Allowed *opsig.AllowedSigners
	// Sign holds --sign-key and --require-signing (nil: defaults).
	Sign *signing
}

// runInteractive opens the terminal UI. The TUI renders the engine's events
// and answers its operator requests; runs are started here with the same
// Config the headless path builds, so both produce the same record.
func runInteractive(cmd *cobra.Command, a *app, req interactiveRequest) error {
	ctx := cmd.Context()
	if !isTerminal(os.Stdin) || !isTerminal(os.Stdout) {
		return errNoTerminal
	}
	db, err := a.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	defer a.flushNotify() // before the database closes
	reg := newRegistry()
	opts := tui.Options{User: engine.Operator(), Record: tui.ChainRecord{Source: db}}
	if req.ReplayID == "" {
		// A run or resume signs its record: the key is found (or its
		// absence noticed, or refused with --require-signing) before
		// the screen opens; the TUI shows "recorded unsigned".
		sign := req.Sign
		if sign == nil {
			sign = &signing{}
		}
		inv, err := loadInventory(req.Inventory)
		if err != nil {
			return err
		}
		if inv == nil && req.ResumeID != "" {
			inv = recordedInventory(ctx, db, req.ResumeID)
		}
		if err := a.prepareSigning(ctx, sign, inv, nil); err != nil {
			return err
		}
		defer a.closeSigner()
	}

	switch {
	case req.ReplayID != "":
		rep, err := loadReplay(ctx, db, req.ReplayID, req.Allowed)
		if err != nil {
			return err
		}
		opts.Replay = rep
	case req.ResumeID != "":
		run, err := db.GetRun(ctx, req.ResumeID)
		if err != nil {
			return err
		}
		opts.ResumeRun = &run
	default:
		inv, err := loadInventory(req.Inventory)
		if err != nil {
			return err
		}
		answers, err := loadAnswers(req.Answers)
		if err != nil {
			return err
		}
		opts.Inventory, opts.Answers = inv, answers
		if req.Runbook != "" {
			rb, err := a.loadRunbook(req.Runbook, reg, inv)
			if err != nil {
				return err
			}
			opts.Runbook = &tui.PickerItem{Path: req.Runbook, Runbook: rb}
		} else {
			opts.PickerTitle = "shipped library"
			if req.Dir != "" {
				if opts.Items, err = pickerItems(req.Dir, reg, inv, a.pluginDirs()); err != nil {
					return err
				}
				opts.PickerTitle = req.Dir + " + shipped library"
			}
			opts.Items = append(opts.Items, libraryItems(reg, inv, a.pluginDirs())...)
			unfinished, err := chainRuns(ctx, db, state.RunFilter{
				Status: []state.Status{state.StatusRunning, state.StatusInterrupted, state.StatusFailed}, Limit: 20,
			})
			if err != nil {
				return err
			}
			opts.Unfinished = unfinished
		}
		opts.Start = func(ctx context.Context, rb *runbooks.Runbook, inputs map[string]runbooks.Value, observe func(runlog.Event), op steps.Operator) (engine.Outcome, error) {
			return engine.Start(ctx, a.engineConfig(rb, inv, reg, db, op, observe, state.ModeInteractive), inputs)
		}
	}
	opts.Resume = func(ctx context.Context, run state.Run, observe func(runlog.Event), op steps.Operator) (engine.Outcome, error) {
		lf, err := a.loadRecorded(ctx, db, run, "", "")
		if err != nil {
			return engine.Outcome{RunID: run.ID}, err
		}
		return engine.Resume(ctx, a.engineConfig(lf.rb, lf.inv, lf.reg, db, op, observe, run.Mode), run.ID, req.ResumeOpts)
	}

	// The TUI quits on Ctrl-C wherever no run is going (picker, forms,
	// resume list): remember whether the last key was Ctrl-C, so that quit
	// exits 130 like every interruption, and q / Esc exit 0.
	var lastCtrlC atomic.Bool
	filter := func(_ tea.Model, msg tea.Msg) tea.Msg {
		if k, ok := msg.(tea.KeyPressMsg); ok {
			lastCtrlC.Store(k.String() == "ctrl+c")
		}
		return msg
	}
	res, err := tui.Run(ctx, opts, tea.WithContext(ctx), tea.WithFilter(filter))
	if err != nil {
		return err
	}
	if !res.Started {
		if lastCtrlC.Load() || ctx.Err() != nil {
			return errInterruptedNoRun
		}
		return nil
	}
	if res.Outcome.RunID != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "run %s %s\n", res.Outcome.RunID, res.Outcome.Status)
	}
	return runResult(res.Outcome, res.Err)
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd())) // #nosec G115 -- a file descriptor fits in an int
}

// loadReplay reads a recorded run and verifies its chain, its signatures
// (their signers against allowed, when given) and its approvals.
func loadReplay(ctx context.Context, db *state.DB, id string, allowed *opsig.AllowedSigners) (*tui.Replay, error) {
	run, err := db.GetRun(ctx, id)
	if err != nil {
		return nil, err
	}
	events, err := db.Events(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	// What the screen shows comes from the chain, not the runs row.
	view := runlog.Fold(events)
	chainRun := view.Run()
	chainRun.ID = run.ID
	rep := &tui.Replay{Run: chainRun, Events: events}
	rep.Verify, rep.VerifyErr = db.Verify(ctx, run.ID)
	if rep.VerifyErr == nil {
		sig, _ := evidence.Check(run.ID, events, allowed)
		rep.Signatures = &sig
	}
	if probs := approvals.Check(events, approvals.Options{Allowed: allowed, Required: approvalSteps}); rep.VerifyErr == nil && len(probs) > 0 {
		rep.VerifyErr = fmt.Errorf("%w: %s", approvals.ErrInvalid, probs[0])
	}
	return rep, nil
}

// pickerItems loads every runbook file in dir as run and lint do: the
// plugins a runbook pins and those in pluginDirs are registered in reg (the
// registry the picked run uses) first. Files that fail lint are listed with
// their first problems. Inventories and answers files are left out.
func pickerItems(dir string, reg *steps.Registry, inv *runbooks.Inventory, pluginDirs []string) ([]tui.PickerItem, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read runbook directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var items []tui.PickerItem
	for _, n := range names {
		path := filepath.Join(dir, n)
		src, err := runbooks.ReadFile(path)
		if err != nil {
			items = append(items, tui.PickerItem{Path: path, Problems: []string{err.Error()}})
			continue
		}
		if !strings.Contains(string(src), "kind: Runbook") {
			continue
		}
		rb, err := loadRunbookSource(path, src, reg, inv, pluginDirs...)
		if err != nil {
			items = append(items, tui.PickerItem{Path: path, Runbook: rb, Problems: firstProblems(err, 3)})
			continue
		}
		items = append(items, tui.PickerItem{Path: path, Runbook: rb})
	}
	return items, nil
}

// libraryItems are the runbooks shipped with drbook (library:NAME).
func libraryItems(reg *steps.Registry, inv *runbooks.Inventory, pluginDirs []string) []tui.PickerItem {
	var items []tui.PickerItem
	for _, name := range library.Names() {
		path := library.Prefix + name
		src, _ := library.Source(name)
		rb, err := loadRunbookSource(path, src, reg, inv, pluginDirs...)
		if err != nil {
			items = append(items, tui.PickerItem{Path: path, Runbook: rb, Problems: firstProblems(err, 3)})
			continue
		}
		items = append(items, tui.PickerItem{Path: path, Runbook: rb})
	}
	return items
}

func firstProblems(err error, n int) []string {
	var ds runbooks.Diagnostics
	if errors.As(err, &ds) {
		var out []string
		for _, d := range ds[:min(n, len(ds))] {
			out = append(out, d.String())
		}
		if len(ds) > n {
			out = append(out, fmt.Sprintf("… and %d more (drbook lint)", len(ds)-n))
		}
		return out
	}
	return []string{err.Error()}
}

// attachTUI makes the root command (no arguments) open the TUI: the
// unfinished runs first, then the picker over --dir.
func attachTUI(root *cobra.Command, a *app) {
	var req interactiveRequest
	root.Flags().StringVar(&req.Dir, "dir", "", "directory of runbook files the picker offers besides the shipped library")
	root.Flags().StringVarP(&req.Inventory, "inventory", "i", "", "inventory of nodes")
	root.Flags().StringVar(&req.Answers, "answers", "", "answers file that prefills the input forms")
	req.Sign = &signing{}
	signFlags(root, req.Sign)
	approvalFlags(root, &a.approval, false)
	root.Args = cobra.NoArgs
	root.RunE = func(cmd *cobra.Command, _ []string) error { return runInteractive(cmd, a, req) }
}

// tuiFlag adds --tui to a command that can also open in the TUI.
func tuiFlag(cmd *cobra.Command, usage string) {
	cmd.Flags().Bool("tui", false, usage)
}

func wantsTUI(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("tui")
	return v
}

// recordedInventory is the inventory a run's record holds (nil if none or
// unreadable), for the signing key's default (its identity_file).
func recordedInventory(ctx context.Context, db *state.DB, runID string) *runbooks.Inventory {
	evs, err := db.Events(ctx, runID)
	if err != nil {
		return nil
	}
	f, err := state.Files(evs)
	if err != nil || f.Inventory == nil {
		return nil
	}
	inv, err := runbooks.ParseInventory(recordedPath(f.Inventory.Path, f.WorkDir), f.Inventory.Bytes())
	if err != nil {
		return nil
	}
	return inv
}
