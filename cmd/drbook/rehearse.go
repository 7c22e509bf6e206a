package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"

	"github.com/drbook/drbook/nodeagent/lab"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/runbooks/rehearsal"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/tui"
)

// errRehearsalFailed is returned when the recovery ran but the drill's
// checks failed (keys lost that should not be, cluster not healthy).
var errRehearsalFailed = errors.New("rehearsal failed")

// scenarioRunbook is the shipped runbook each scenario rehearses by default.
var scenarioRunbook = map[string]string{
	lab.TotalLoss:  "total-cluster-recovery",
	lab.QuorumLoss: "quorum-lost-recovery",
	lab.NodeLoss:   "replace-failed-node",
}

func newRehearseCmd(a *app) *cobra.Command {
	var scenario, dir, reportDir string
	var nodes, keys, after int
	var keepLab, useTUI bool
	cmd := &cobra.Command{
		Use:   "rehearse [RUNBOOK] --scenario total-loss|quorum-loss|node-loss",
		Short: "Drill a recovery on a throw-away lab and measure RTO and RPO",
		Long: `Build a lab cluster of real agents, load keys, take a backup, keep writing
keys for a moment (so the RPO is not trivially zero), inject the disaster
(kill -9, data deleted), run the recovery runbook headless, verify every key
against the manifests, clean up everything, and report:

  RTO   disaster → cluster verified healthy, split into machine time and
        time waiting on the operator;
  RPO   the keys lost and the write window they span;
  and per-step timings.

The report is written as Markdown, JSON and an SVG timeline into
--report-dir, and stored in the run's record (drbook replay RUN --format
markdown shows it). The default runbook per scenario: total-loss →
total-cluster-recovery, quorum-loss → quorum-lost-recovery, node-loss →
replace-failed-node.`,
		Example: "  drbook rehearse total-cluster-recovery --scenario total-loss --keys 100000",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rbName, ok := scenarioRunbook[scenario]
			if !ok {
				return usageError{fmt.Errorf("--scenario must be total-loss, quorum-loss or node-loss, not %q", scenario)}
			}
			if len(args) == 1 {
				rbName = args[0]
			}
			if nodes < 3 {
				return usageError{fmt.Errorf("--nodes must be at least 3")}
			}
			if after <= 0 {
				after = max(100, keys/100)
			}
			r := &rehearser{a: a, out: cmd.ErrOrStderr(), scenario: scenario, runbook: rbName, nodes: nodes, keys: keys, after: after, tui: useTUI}
			if dir == "" {
				d, err := os.MkdirTemp("", "drbook-rehearsal-")
				if err != nil {
					return err
				}
				dir = d
			}
			r.dir = dir
			rep, err := r.run(cmd.Context(), keepLab)
			if rep == nil {
				return err
			}
			if reportDir == "" {
				reportDir = "drbook-rehearsal-" + rep.RunID
			}
			if werr := writeReport(reportDir, rep); werr != nil {
				return errors.Join(err, werr)
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				if jerr := rep.JSON(out); jerr != nil {
					return jerr
				}
			} else {
				fmt.Fprintf(out, "rehearsal %s: %s %s\n", rep.RunID, rep.Runbook, rep.Scenario)
				fmt.Fprintf(out, "  RTO %s (machine %s, operator %s)\n", rep.RTO, rep.Machine, rep.Human)
				fmt.Fprintf(out, "  RPO %d keys lost, write window %s (written after the backup: %d)\n", rep.RPOKeys, rep.RPOWindow, rep.KeysAfterBackup)
				fmt.Fprintf(out, "  keys: %d before the disaster, %d after the recovery\n", rep.KeysBefore, rep.KeysAfter)
				fmt.Fprintf(out, "  report: %s/{report.md,report.json,timeline.svg}\n", reportDir)
				if rep.Verdict != "" {
					fmt.Fprintf(out, "  FAILED: %s\n", rep.Verdict)
				} else {
					fmt.Fprintln(out, "  PASSED")
				}
			}
			if err == nil && rep.Verdict != "" {
				err = fmt.Errorf("%w: %s", errRehearsalFailed, rep.Verdict)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&scenario, "scenario", "", "total-loss, quorum-loss or node-loss (required)")
	cmd.Flags().IntVar(&nodes, "nodes", 3, "lab nodes")
	cmd.Flags().IntVar(&keys, "keys", 10000, "keys loaded before the backup")
	cmd.Flags().IntVar(&after, "keys-after-backup", 0, "keys written after the backup (default keys/100, at least 100)")
	cmd.Flags().StringVar(&dir, "dir", "", "lab directory (default: a new temporary directory, removed afterwards)")
	cmd.Flags().StringVar(&reportDir, "report-dir", "", "where to write the report (default ./drbook-rehearsal-RUN_ID)")
	cmd.Flags().BoolVar(&keepLab, "keep-lab", false, "leave the lab running after the drill")
	cmd.Flags().BoolVar(&useTUI, "tui", false, "run the recovery in the TUI: you confirm and decide, and your time is measured apart")
	_ = cmd.MarkFlagRequired("scenario")
	return cmd
}

type rehearser struct {
	a                     *app
	tui                   bool
	out                   interface{ Write([]byte) (int, error) }
	scenario, runbook     string
	dir                   string
	nodes, keys, after    int
	lab                   *lab.Lab
	inventory, passphrase string
}

func (r *rehearser) say(format string, args ...any) {
	fmt.Fprintf(r.out, "rehearse: "+format+"\n", args...)
}

// manifest is the set of keys: id → digest of its material.
type manifest map[string]string

func (r *rehearser) manifest(ctx context.Context, node string) (manifest, error) {
	var m struct {
		Keys []struct{ ID, SHA256 string } `json:"keys"`
	}
	if err := r.lab.Agent(ctx, node, nil, &m, "keys", "manifest"); err != nil {
		return nil, err
	}
	out := manifest{}
	for _, k := range m.Keys {
		out[k.ID] = k.SHA256
	}
	return out, nil
}

// writeManifestFile stores the agent's manifest JSON in a file (for the
// runbook's keys-verify step).
func writeManifestFile(ctx context.Context, l *lab.Lab, node, file string) error {
	var raw map[string]any
	if err := l.Agent(ctx, node, nil, &raw, "keys", "manifest"); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) // #nosec G304 -- a file the rehearsal itself wrote
	if err != nil {
		return err
	}
	if err := json.NewEncoder(f).Encode(raw); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *rehearser) run(ctx context.Context, keepLab bool) (*rehearsal.Report, error) {
	bin, err := lab.FindAgent()
	if err != nil {
		return nil, err
	}
	pass := make([]byte, 16)
	if _, err := rand.Read(pass); err != nil {
		return nil, err
	}
	r.passphrase = hex.EncodeToString(pass)
	r.say("lab: %d agents in %s", r.nodes, r.dir)
	r.lab, err = lab.Up(ctx, lab.Options{Dir: r.dir, Nodes: r.nodes, AgentBin: bin})
	if err != nil {
		return nil, err
	}
	defer func() {
		if keepLab {
			r.say("lab kept in %s (drbook lab down --dir %s)", r.dir, r.dir)
			return
		}
		if err := r.lab.Down(context.WithoutCancel(ctx)); err != nil {
			r.say("lab down: %v", err)
		}
		_ = os.RemoveAll(r.dir)
		r.say("lab removed")
	}()
	if err := r.lab.Bootstrap(ctx, 0); err != nil {
		return nil, err
	}
	if r.inventory, err = writeLabInventory(r.lab); err != nil {
		return nil, err
	}
	first := r.lab.Nodes[0].Name
	r.say("loading %d keys", r.keys)
	if err := r.lab.Agent(ctx, first, nil, nil, "keys", "load", "--count", fmt.Sprint(r.keys)); err != nil {
		return nil, err
	}
	backupFile := filepath.Join(r.lab.Vault, "rehearsal.drbkbak")
	r.say("backup to %s", backupFile)
	if err := r.lab.Agent(ctx, first, []string{"DRBOOK_BACKUP_PASSPHRASE=" + r.passphrase}, nil, "backup", "create", "--out", backupFile); err != nil {
		return nil, err
	}
	rep := &rehearsal.Report{Runbook: r.runbook, Scenario: r.scenario, Nodes: r.nodes, Started: time.Now().UTC(), BackupAt: time.Now().UTC()}
	atBackupFile := filepath.Join(r.lab.Vault, "manifest-at-backup.json")
	if err := writeManifestFile(ctx, r.lab, first, atBackupFile); err != nil {
		return nil, err
	}
	atBackup, err := r.manifest(ctx, first)
	if err != nil {
		return nil, err
	}
	r.say("writing %d more keys after the backup", r.after)
	if err := r.lab.Agent(ctx, first, nil, nil, "keys", "load", "--count", fmt.Sprint(r.after)); err != nil {
		return nil, err
	}
	rep.LastWriteAt = time.Now().UTC()
	beforeFile := filepath.Join(r.lab.Vault, "manifest-before-disaster.json")
	if err := writeManifestFile(ctx, r.lab, first, beforeFile); err != nil {
		return nil, err
	}
	before, err := r.manifest(ctx, first)
	if err != nil {
		return nil, err
	}
	rep.KeysAtBackup, rep.KeysBefore, rep.KeysAfterBackup = len(atBackup), len(before), len(before)-len(atBackup)

	// The disaster.
	rep.DisasterAt = time.Now().UTC()
	hit, err := r.lab.Disaster(ctx, r.scenario, nil, true)
	if err != nil {
		return nil, err
	}
	rep.DisasterNodes = hit
	r.say("disaster %s: %s", r.scenario, strings.Join(hit, ", "))

	// The recovery.
	reg := newRegistry()
	inv, err := loadInventory(r.inventory)
	if err != nil {
		return nil, err
	}
	rb, err := r.a.loadRunbook(r.runbook, reg, inv)
	if err != nil {
		return nil, err
	}
	inputs := r.inputs(rb, hit, backupFile, atBackupFile, beforeFile)
	db, err := r.a.openDB(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var mu sync.Mutex
	// The step timeline is folded from the record's events as the engine
	// appends them (runlog), as replay folds them.
	fold := runlog.NewFolder()
	fold.DropLogs()
	cfg := r.a.engineConfig(rb, inv, reg, db, &engine.Headless{Yes: true}, func(ev engine.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case engine.Recorded:
			fold.Apply(e.Event)
		case engine.StepPending:
			if !r.tui { // the TUI owns the terminal
				r.say("step %s", e.StepID)
			}
		}
	}, state.ModeRehearsal)
	cfg.Labels = map[string]string{"rehearsal": r.scenario}
	var outcome engine.Outcome
	var runErr error
	if r.tui {
		var formTime time.Duration
		outcome, formTime, runErr = r.recoverInTUI(ctx, cfg, inputs, rep.DisasterAt)
		// The form is answered by a person before the engine starts.
		outcome.Human += formTime
	} else {
		outcome, runErr = engine.Start(ctx, cfg, inputs)
	}
	rep.RecoveredAt = time.Now().UTC()
	mu.Lock()
	for _, x := range fold.View().Execs {
		if x.Ran && !x.FinishedAt.IsZero() {
			rep.Steps = append(rep.Steps, rehearsal.StepTiming{Step: x.StepID, Target: x.Target, Attempt: x.Attempt, Status: string(x.Status),
				Start: rehearsal.Duration(x.StartedAt.Sub(rep.DisasterAt)), Length: rehearsal.Duration(x.Duration())})
		}
	}
	mu.Unlock()
	rep.RunID, rep.Status = outcome.RunID, string(outcome.Status)
	rep.RTO = rehearsal.Duration(rep.RecoveredAt.Sub(rep.DisasterAt))
	rep.Human = rehearsal.Duration(outcome.Human)
	rep.Machine = rep.RTO - rep.Human
	rep.SortSteps()
	if runErr != nil {
		rep.Verdict = "the recovery run did not succeed: " + runErr.Error()
		r.record(ctx, db, rep)
		return rep, runErr
	}

	// What survived.
	after, err := r.manifest(ctx, first)
	if err != nil {
		rep.Verdict = "cannot read the keys after the recovery: " + err.Error()
		r.record(ctx, db, rep)
		return rep, nil
	}
	rep.KeysAfter = len(after)
	for id, sum := range before {
		got, ok := after[id]
		switch {
		case !ok:
			rep.KeysLost++
		case got != sum:
			rep.KeysChanged++
		}
	}
	for id := range after {
		if _, ok := before[id]; !ok {
			rep.KeysUnexpected++
		}
	}
	rep.RPOKeys = rep.KeysLost
	if rep.KeysLost > 0 {
		rep.RPOWindow = rehearsal.Duration(rep.LastWriteAt.Sub(rep.BackupAt))
	}
	wantLost := 0
	if r.scenario == lab.TotalLoss {
		wantLost = rep.KeysAfterBackup
	}
	switch {
	case rep.KeysLost != wantLost:
		rep.Verdict = fmt.Sprintf("%d keys lost, expected exactly %d", rep.KeysLost, wantLost)
	case rep.KeysChanged > 0 || rep.KeysUnexpected > 0:
		rep.Verdict = fmt.Sprintf("%d keys changed and %d unexpected keys after the recovery", rep.KeysChanged, rep.KeysUnexpected)
	}
	r.record(ctx, db, rep)
	return rep, nil
}

// inputs answers the runbook's inputs for the scenario: only inputs the
// runbook declares, by their conventional names.
func (r *rehearser) inputs(rb *runbooks.Runbook, hit []string, backup, atBackup, before string) map[string]runbooks.Value {
	var all, survivors []string
	for _, n := range r.lab.Nodes {
		all = append(all, n.Name)
		if !slices.Contains(hit, n.Name) {
			survivors = append(survivors, n.Name)
		}
	}
	manifestFile := before
	if r.scenario == lab.TotalLoss {
		manifestFile = atBackup
	}
	known := map[string]runbooks.Value{
		"seed":       {V: all[0]},
		"joiners":    {V: all[1:]},
		"backup":     {V: backup},
		"passphrase": {V: r.passphrase, Secret: true},
		"manifest":   {V: manifestFile},
		"candidates": {V: all},
		"replaced":   {V: hit},
		"failed":     {V: hit[0]},
		"voters":     {V: int64(len(all))},
	}
	if len(survivors) > 0 {
		known["healthy"] = runbooks.Value{V: survivors[0]}
		known["member"] = runbooks.Value{V: survivors[0]}
	}
	out := map[string]runbooks.Value{}
	for _, in := range rb.Inputs {
		if v, ok := known[in.Name]; ok {
			out[in.Name] = v
		} else if in.Default != nil {
			if v, err := runbooks.CoerceInput(&in, in.Default, nil); err == nil {
				out[in.Name] = runbooks.Value{V: v}
			}
		}
	}
	return out
}

// record stores the report in the run's record as a note.
func (r *rehearser) record(ctx context.Context, db *state.DB, rep *rehearsal.Report) {
	if rep.RunID == "" {
		return
	}
	var md, js, svg bytes.Buffer
	_ = rep.Markdown(&md)
	_ = rep.JSON(&js)
	_ = rep.SVG(&svg)
	ev, err := state.NewEvent(rep.RunID, state.EvNote, state.Note{Text: md.String(), Data: map[string]string{
		"kind": "rehearsal-report", "scenario": rep.Scenario, "report.json": js.String(), "timeline.svg": svg.String(),
	}})
	if err != nil {
		return
	}
	ev.Time = time.Now().UTC()
	if _, err := db.Append(ctx, ev); err != nil {
		r.say("storing the report in the record: %v", err)
	}
}

func writeReport(dir string, rep *rehearsal.Report) error {
	// #nosec G301 -- the rehearsal report holds no secret and is meant to be shared
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, write := range map[string]func(w *os.File) error{
		"report.md":    func(w *os.File) error { return rep.Markdown(w) },
		"report.json":  func(w *os.File) error { return rep.JSON(w) },
		"timeline.svg": func(w *os.File) error { return rep.SVG(w) },
	} {
		f, err := os.Create(filepath.Join(dir, name)) // #nosec G304 -- a file of the rehearsal report the operator asked for
		if err != nil {
			return err
		}
		if err := write(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// recoverInTUI runs the recovery in the terminal UI with the drill's answers
// filled in; the person confirms the danger steps, and the time they take is
// the RTO's operator share.
func (r *rehearser) recoverInTUI(ctx context.Context, cfg engine.Config, inputs map[string]runbooks.Value, disasterAt time.Time) (engine.Outcome, time.Duration, error) {
	var formTime time.Duration
	answers := &runbooks.Answers{File: "rehearsal", Inputs: map[string]runbooks.Answer{}, Steps: map[string]runbooks.Answer{}}
	for name, v := range inputs {
		answers.Inputs[name] = runbooks.Answer{Value: v.V}
	}
	observe := cfg.Observer
	record, _ := cfg.Store.(tui.Record) // the pager reads step output from the record
	res, err := tui.Run(ctx, tui.Options{
		Runbook:   &tui.PickerItem{Path: cfg.Runbook.File, Runbook: cfg.Runbook},
		Record:    record,
		Inventory: cfg.Inventory, Answers: answers, User: engine.Operator(),
		Start: func(ctx context.Context, rb *runbooks.Runbook, in map[string]runbooks.Value, tuiObserve func(engine.Event), op steps.Operator) (engine.Outcome, error) {
			formTime = time.Since(disasterAt)
			c := cfg
			c.Runbook, c.Operator, c.Mode = rb, op, state.ModeRehearsal
			c.Observer = func(ev engine.Event) { observe(ev); tuiObserve(ev) }
			return engine.Start(ctx, c, in)
		},
	}, tea.WithContext(ctx))
	if err != nil {
		return res.Outcome, formTime, err
	}
	if !res.Started {
		return res.Outcome, formTime, fmt.Errorf("%w: the recovery was not started", engine.ErrAborted)
	}
	return res.Outcome, formTime, res.Err
}
