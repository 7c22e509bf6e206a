package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/nodeagent/lab"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/runbooks/library"
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
	var scenario, drillPath string
	var o drillOpts
	var nodes, keys, after int
	cmd := &cobra.Command{
		Use:   "rehearse --drill FILE [-i INVENTORY] [--answers FILE] | [RUNBOOK] --scenario total-loss|quorum-loss|node-loss",
		Short: "Drill a recovery: inject a disaster, recover with a runbook, measure RTO and RPO",
		Long: `Run a drill (docs/drills.md): stand the system up, load and count its data,
take the restore point, write more data after it, inject the disaster (kill
processes, delete data, cut links), run the recovery runbook headless (or in
the TUI with --tui), verify the data and the system's health, and ALWAYS
clean up (also after a failure or Ctrl-C). Then report:

  RTO   disaster → verified healthy, split into machine time and time
        waiting on the operator;
  RPO   the data written after the restore point that was lost (exact
        count) and the write window it spans;
  and per-step timings.

A drill file declares the system under test with commands (on inventory
nodes over SSH, or locally), or uses the built-in drbook-agent lab.
Shipped drills are library:NAME (agent-total-loss, agent-quorum-loss,
agent-node-loss, ...). --scenario X runs library:agent-X, as before.

Drill commands get DRILL_DIR (--dir), DRILL_PORT_0.. (free loopback ports
from --ports or the drill's range), DRBOOK and the counts as environment
variables; answers and the inventory may use ${DRILL_...}.

The report is written as Markdown, JSON and an SVG timeline into
--report-dir, and stored in the run's record (drbook replay RUN --format
markdown shows it); drbook runbooks shows the last rehearsal.

Exit codes: 0 the drill passed; 1 it ran and failed (data lost that should
not be, unhealthy, over the RTO budget, the recovery or a drill command
failed, a drill process left running); 2 usage; 3 invalid drill, runbook
or inventory (file:line:col); 130 interrupted (after the cleanup ran).`,
		Example: `  drbook rehearse --drill library:agent-total-loss
  drbook rehearse --drill my-drill.yaml -i lab.yaml --answers answers.yaml --ports 30000-30999
  drbook rehearse total-cluster-recovery --scenario total-loss --keys 100000`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if drillPath == "" && scenario == "" {
				return usageError{fmt.Errorf("give --drill FILE or --scenario total-loss|quorum-loss|node-loss")}
			}
			if drillPath != "" && scenario != "" {
				return usageError{fmt.Errorf("--drill and --scenario exclude each other")}
			}
			if scenario != "" {
				if _, ok := scenarioRunbook[scenario]; !ok {
					return usageError{fmt.Errorf("--scenario must be total-loss, quorum-loss or node-loss, not %q", scenario)}
				}
				drillPath = library.DrillPrefix + "agent-" + scenario
			}
			if o.ports != "" {
				if _, _, err := runbooks.ParsePortRange(o.ports); err != nil {
					return usageError{fmt.Errorf("--ports: %w", err)}
				}
			}
			src, name, err := readDrill(drillPath)
			if err != nil {
				return err
			}
			dr, err := runbooks.ParseDrill(name, src)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				dr.Runbook = args[0]
			}
			if dr.Lab != nil {
				f := cmd.Flags()
				if f.Changed("nodes") {
					dr.Lab.Nodes = nodes
				}
				if f.Changed("keys") {
					dr.Lab.Keys = keys
				}
				if f.Changed("keys-after-backup") {
					dr.Lab.KeysAfterBackup = after
				}
				if dr.Lab.Nodes == 0 {
					dr.Lab.Nodes = 3
				}
				if dr.Lab.Nodes < 3 {
					return usageError{fmt.Errorf("--nodes must be at least 3")}
				}
				if dr.Lab.Keys == 0 {
					dr.Lab.Keys = 10000
				}
				if dr.Lab.KeysAfterBackup <= 0 {
					dr.Lab.KeysAfterBackup = max(100, dr.Lab.Keys/100)
				}
			}
			rep, err := runDrill(cmd.Context(), a, cmd.ErrOrStderr(), dr, o)
			if rep == nil {
				return err
			}
			reportDir := o.reportDir
			if reportDir == "" {
				reportDir = "drbook-rehearsal-" + rep.RunID
			}
			if werr := writeReport(reportDir, rep); werr != nil {
				return errors.Join(err, werr)
			}
			if perr := printReport(cmd.OutOrStdout(), a.output, reportDir, rep); perr != nil {
				return errors.Join(err, perr)
			}
			if err == nil && rep.Verdict != "" {
				err = fmt.Errorf("%w: %s", errRehearsalFailed, rep.Verdict)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&drillPath, "drill", "", "drill file, or library:NAME for a shipped drill")
	cmd.Flags().StringVarP(&o.inventory, "inventory", "i", "", "inventory for the drill's commands and the runbook (overrides the drill's inventory:)")
	cmd.Flags().StringVar(&o.answers, "answers", "", "answers file for the runbook's inputs (overrides the drill's answers:)")
	cmd.Flags().StringVar(&o.ports, "ports", "", "port range LO-HI the drill's ports (and a lab's) are picked from (default: the drill's, else 30000-30999; a lab: 20000 up to the ephemeral range)")
	cmd.Flags().StringVar(&scenario, "scenario", "", "total-loss, quorum-loss or node-loss: run the shipped agent drill library:agent-SCENARIO")
	cmd.Flags().IntVar(&nodes, "nodes", 3, "lab nodes (lab drills)")
	cmd.Flags().IntVar(&keys, "keys", 10000, "keys loaded before the backup (lab drills)")
	cmd.Flags().IntVar(&after, "keys-after-backup", 0, "keys written after the backup (lab drills; default keys/100, at least 100)")
	cmd.Flags().StringVar(&o.dir, "dir", "", "drill work directory, DRILL_DIR (default: a new temporary directory, removed afterwards)")
	cmd.Flags().StringVar(&o.reportDir, "report-dir", "", "where to write the report (default ./drbook-rehearsal-RUN_ID)")
	cmd.Flags().BoolVar(&o.keep, "keep", false, "skip the cleanup: leave the system (and the lab) running and the work directory in place")
	cmd.Flags().BoolVar(&o.keep, "keep-lab", false, "same as --keep")
	_ = cmd.Flags().MarkHidden("keep-lab")
	cmd.Flags().BoolVar(&o.tui, "tui", false, "run the recovery in the TUI: you confirm and decide, and your time is measured apart")
	return cmd
}

// printReport prints the rehearsal's outcome on stdout: the report JSON with
// --output json, else a short summary.
func printReport(out io.Writer, format, reportDir string, rep *rehearsal.Report) error {
	if format == "json" {
		return writeJSON(out, rehearsalDoc(rep))
	}
	unit := rep.Unit
	if unit == "" {
		unit = "keys"
	}
	name := rep.Drill
	if name == "" {
		name = rep.Scenario
	}
	fmt.Fprintf(out, "rehearsal %s: %s %s\n", rep.RunID, rep.Runbook, name)
	fmt.Fprintf(out, "  RTO %s (machine %s, operator %s)", rep.RTO, rep.Machine, rep.Human)
	fmt.Fprintln(out)
	if rep.RTOBudget > 0 {
		fmt.Fprintf(out, "  RTO budget %s: %s\n", rep.RTOBudget, rep.RTOSummary())
	}
	fmt.Fprintf(out, "  RPO %d %s lost, write window %s (written after the restore point: %d)\n", rep.RPOKeys, unit, rep.RPOWindow, rep.KeysAfterBackup)
	fmt.Fprintf(out, "  %s: %d before the disaster, %d after the recovery\n", unit, rep.KeysBefore, rep.KeysAfter)
	fmt.Fprintf(out, "  report: %s/{report.md,report.json,timeline.svg}\n", reportDir)
	if rep.Verdict != "" {
		fmt.Fprintf(out, "  FAILED: %s\n", rep.Verdict)
	} else {
		fmt.Fprintln(out, "  PASSED")
	}
	return nil
}

// drillOpts are the command-line settings of a drill run.
type drillOpts struct {
	inventory, answers, ports, dir, reportDir string
	keep, tui                                 bool
}

// rehearser runs one drill: the state both kinds of drill (lab, commands)
// share, and the recovery run they have in common.
type rehearser struct {
	a    *app
	out  io.Writer
	dr   *runbooks.Drill
	opts drillOpts
	dir  string
	// lab drills
	lab                   *lab.Lab
	inventory, passphrase string
}

func (r *rehearser) say(format string, args ...any) {
	fmt.Fprintf(r.out, "rehearse: "+format+"\n", args...)
}

// runDrill runs a drill and returns its report (nil when the drill failed
// before the disaster: nothing was measured).
func runDrill(ctx context.Context, a *app, out io.Writer, dr *runbooks.Drill, o drillOpts) (*rehearsal.Report, error) {
	r := &rehearser{a: a, out: out, dr: dr, opts: o}
	var rep *rehearsal.Report
	var err error
	if dr.Lab != nil {
		rep, err = r.runLab(ctx)
	} else {
		rep, err = r.runCommands(ctx)
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, engine.ErrInterrupted) {
		err = fmt.Errorf("%w: %w", errDrillInterrupted, err)
	}
	return rep, err
}

// portRange is the range ports are picked from: --ports, the drill's, or
// the default 30000-30999.
func (r *rehearser) portRange() (int, int) {
	rng := r.opts.ports
	if rng == "" && r.dr.Ports != nil {
		rng = r.dr.Ports.Range
	}
	if rng == "" {
		rng = defaultPortRange
	}
	lo, hi, err := runbooks.ParsePortRange(rng)
	if err != nil { // checked by the flag and the loader
		return 30000, 30999
	}
	return lo, hi
}

// defaultPortRange is where drills pick their ports unless told otherwise.
const defaultPortRange = "30000-30999"

// newReport starts the report of the drill.
func (r *rehearser) newReport(nodes int) *rehearsal.Report {
	scenario := r.dr.Scenario
	if scenario == "" {
		scenario = r.dr.Name
	}
	expect := runbooks.ExpectRestorePoint
	if r.dr.Verify != nil && r.dr.Verify.Expect != "" {
		expect = r.dr.Verify.Expect
	}
	return &rehearsal.Report{Drill: r.dr.Name, Runbook: strings.TrimPrefix(r.dr.Runbook, library.Prefix), Scenario: scenario,
		Nodes: nodes, Unit: r.dr.Unit, Expect: expect, RTOBudget: rehearsal.Duration(r.dr.RTOBudget), Started: time.Now().UTC()}
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
		_ = f.Close()
		return err
	}
	return f.Close()
}

// runLab runs a drill on the built-in agent lab.
func (r *rehearser) runLab(ctx context.Context) (*rehearsal.Report, error) {
	lb := r.dr.Lab
	bin, err := lab.FindAgent()
	if err != nil {
		return nil, err
	}
	pass := make([]byte, 16)
	if _, err := rand.Read(pass); err != nil {
		return nil, err
	}
	r.passphrase = hex.EncodeToString(pass)
	r.dir = r.opts.dir
	if r.dir == "" {
		d, err := os.MkdirTemp("", "drbook-rehearsal-")
		if err != nil {
			return nil, err
		}
		r.dir = d
	}
	// A lab picks anywhere below the ephemeral range unless a range is given.
	lo, hi := 0, 0
	if r.opts.ports != "" || (r.dr.Ports != nil && r.dr.Ports.Range != "") {
		lo, hi = r.portRange()
		r.say("lab: %d agents in %s, ports from %d-%d", lb.Nodes, r.dir, lo, hi)
	} else {
		r.say("lab: %d agents in %s", lb.Nodes, r.dir)
	}
	r.lab, err = lab.Up(ctx, lab.Options{Dir: r.dir, Nodes: lb.Nodes, AgentBin: bin, PortMin: lo, PortMax: hi})
	if err != nil {
		_ = os.RemoveAll(r.dir)
		return nil, err
	}
	defer func() {
		if r.opts.keep {
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
	r.say("loading %d keys", lb.Keys)
	if err := r.lab.Agent(ctx, first, nil, nil, "keys", "load", "--count", fmt.Sprint(lb.Keys)); err != nil {
		return nil, err
	}
	backupFile := filepath.Join(r.lab.Vault, "rehearsal.drbkbak")
	r.say("backup to %s", backupFile)
	if err := r.lab.Agent(ctx, first, []string{"DRBOOK_BACKUP_PASSPHRASE=" + r.passphrase}, nil, "backup", "create", "--out", backupFile); err != nil {
		return nil, err
	}
	rep := r.newReport(lb.Nodes)
	rep.BackupAt = time.Now().UTC()
	atBackupFile := filepath.Join(r.lab.Vault, "manifest-at-backup.json")
	if err := writeManifestFile(ctx, r.lab, first, atBackupFile); err != nil {
		return nil, err
	}
	atBackup, err := r.manifest(ctx, first)
	if err != nil {
		return nil, err
	}
	r.say("writing %d more keys after the backup", lb.KeysAfterBackup)
	if err := r.lab.Agent(ctx, first, nil, nil, "keys", "load", "--count", fmt.Sprint(lb.KeysAfterBackup)); err != nil {
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

	// What the recovery needs, checked before anything is destroyed.
	reg := newRegistry()
	inv, err := loadInventory(r.inventory)
	if err != nil {
		return nil, err
	}
	rb, err := r.a.loadRunbook(drillPath(r.dr, r.dr.Runbook), reg, inv)
	if err != nil {
		return nil, err
	}
	rep.Runbook = rb.Name

	// The disaster.
	rep.DisasterAt = time.Now().UTC()
	hit, err := r.lab.Disaster(ctx, lb.Disaster, nil, true)
	if err != nil {
		return nil, err
	}
	rep.DisasterNodes = hit
	r.say("disaster %s: %s", lb.Disaster, strings.Join(hit, ", "))

	// The recovery.
	inputs := r.labInputs(rb, hit, backupFile, atBackupFile, beforeFile)
	if r.opts.answers != "" || r.dr.Answers != nil {
		given, err := r.answers(nil)
		if err != nil {
			return nil, err
		}
		for name, a := range given.Inputs {
			v, err := a.Resolve()
			if err != nil {
				return nil, err
			}
			inputs[name] = runbooks.Value{V: v}
		}
	}
	db, err := r.a.openDB(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	defer r.a.flushNotify() // before the database closes
	runErr := r.recover(ctx, db, rb, inv, reg, inputs, rep)
	if runErr != nil {
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
	if rep.Expect == runbooks.ExpectRestorePoint {
		wantLost = rep.KeysAfterBackup
	}
	switch {
	case rep.KeysLost != wantLost:
		rep.Verdict = fmt.Sprintf("%d keys lost, expected exactly %d", rep.KeysLost, wantLost)
	case rep.KeysChanged > 0 || rep.KeysUnexpected > 0:
		rep.Verdict = fmt.Sprintf("%d keys changed and %d unexpected keys after the recovery", rep.KeysChanged, rep.KeysUnexpected)
	default:
		rep.Verdict = overBudget(rep)
	}
	r.record(ctx, db, rep)
	return rep, nil
}

// overBudget returns the verdict of an RTO over the drill's budget, or "".
func overBudget(rep *rehearsal.Report) string {
	if rep.RTOBudget > 0 && rep.RTO > rep.RTOBudget {
		return fmt.Sprintf("RTO %s is over the budget of %s", rep.RTO, rep.RTOBudget)
	}
	return ""
}

// recover runs the recovery runbook (headless, or in the TUI) and fills the
// report's RTO, step timings and run; the RTO ends when it returns (a drill
// with health checks extends it). A failed run is recorded with its verdict.
func (r *rehearser) recover(ctx context.Context, db *state.DB, rb *runbooks.Runbook, inv *runbooks.Inventory, reg *steps.Registry,
	inputs map[string]runbooks.Value, rep *rehearsal.Report) error {
	var mu sync.Mutex
	// The step timeline is folded from the record's events as the engine
	// appends them (runlog), as replay folds them.
	fold := runlog.NewFolder()
	fold.DropLogs()
	cfg := r.a.engineConfig(rb, inv, reg, db, &engine.Headless{Yes: true}, func(ev runlog.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case runlog.Recorded:
			fold.Apply(e.Event)
		case runlog.StepPending:
			if !r.opts.tui { // the TUI owns the terminal
				r.say("step %s", e.StepID)
			}
		}
	}, state.ModeRehearsal)
	cfg.Labels = map[string]string{"rehearsal": rep.Scenario, "drill": r.dr.Name}
	// The budget: the drill's rto_budget, else the runbook's rto:; its
	// clock starts at the disaster, like the RTO's.
	if rep.RTOBudget == 0 {
		rep.RTOBudget = rehearsal.Duration(rb.RTO)
	}
	cfg.RTO, cfg.RTOSince = time.Duration(rep.RTOBudget), rep.DisasterAt
	var outcome engine.Outcome
	var runErr error
	if r.opts.tui {
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
	rep.SettleRTO()
	rep.SortSteps()
	if runErr != nil {
		rep.Verdict = "the recovery run did not succeed: " + runErr.Error()
		r.record(ctx, db, rep)
	}
	return runErr
}

// labInputs answers the runbook's inputs for a lab drill: only inputs the
// runbook declares, by their conventional names.
func (r *rehearser) labInputs(rb *runbooks.Runbook, hit []string, backup, atBackup, before string) map[string]runbooks.Value {
	var all, survivors []string
	for _, n := range r.lab.Nodes {
		all = append(all, n.Name)
		if !slices.Contains(hit, n.Name) {
			survivors = append(survivors, n.Name)
		}
	}
	manifestFile := before
	if r.dr.Lab.Disaster == lab.TotalLoss {
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

// record stores the report in the run's record as a note. It is the one
// place a rehearsal report is written to the record.
func (r *rehearser) record(ctx context.Context, db *state.DB, rep *rehearsal.Report) {
	if rep.RunID == "" {
		return
	}
	var md, js, svg bytes.Buffer
	_ = rep.Markdown(&md)
	_ = rep.JSON(&js)
	_ = rep.SVG(&svg)
	ev, err := state.NewEvent(rep.RunID, state.EvNote, state.Note{Text: md.String(), Data: map[string]string{
		"kind": "rehearsal-report", "scenario": rep.Scenario, "drill": rep.Drill, "report.json": js.String(), "timeline.svg": svg.String(),
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
			_ = f.Close()
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
		Start: func(ctx context.Context, rb *runbooks.Runbook, in map[string]runbooks.Value, tuiObserve func(runlog.Event), op steps.Operator) (engine.Outcome, error) {
			formTime = time.Since(disasterAt)
			c := cfg
			c.Runbook, c.Operator, c.Mode = rb, op, state.ModeRehearsal
			c.Observer = func(ev runlog.Event) { observe(ev); tuiObserve(ev) }
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

// rehearsalDoc is the JSON document of a rehearsal report.
func rehearsalDoc(r *rehearsal.Report) jsonapi.Rehearsal {
	ms := func(d rehearsal.Duration) int64 { return jsonapi.MS(time.Duration(d)) }
	doc := jsonapi.Rehearsal{
		Header: jsonapi.NewHeader(), RunID: r.RunID, Runbook: r.Runbook, Scenario: r.Scenario, Drill: r.Drill, Unit: r.Unit,
		RTOBudgetMS: ms(r.RTOBudget), RTOResult: r.RTOResult, Nodes: r.Nodes, Status: r.Status,
		Started: jsonapi.Time(r.Started), KeysAtBackup: r.KeysAtBackup, KeysAfterBackup: r.KeysAfterBackup, KeysBefore: r.KeysBefore,
		KeysAfter: r.KeysAfter, KeysLost: r.KeysLost, KeysUnexpected: r.KeysUnexpected, KeysChanged: r.KeysChanged,
		BackupAt: jsonapi.Time(r.BackupAt), LastWriteAt: jsonapi.Time(r.LastWriteAt), DisasterAt: jsonapi.Time(r.DisasterAt),
		RecoveredAt: jsonapi.Time(r.RecoveredAt), DisasterNodes: r.DisasterNodes, RTOMS: ms(r.RTO), RTOMachineMS: ms(r.Machine),
		RTOHumanMS: ms(r.Human), RPOKeys: r.RPOKeys, RPOWindowMS: ms(r.RPOWindow), Steps: []jsonapi.RehearsalStep{}, Verdict: r.Verdict,
	}
	if r.RTOResult != "" {
		m := ms(r.RTOMargin)
		doc.RTOMarginMS = &m
	}
	if doc.DisasterNodes == nil {
		doc.DisasterNodes = []string{}
	}
	for _, s := range r.Steps {
		doc.Steps = append(doc.Steps, jsonapi.RehearsalStep{StepID: s.Step, Target: s.Target, Attempt: s.Attempt, Status: s.Status, StartMS: ms(s.Start), DurationMS: ms(s.Length)})
	}
	return doc
}
