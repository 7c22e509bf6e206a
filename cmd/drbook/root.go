package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/runbooks/library"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/agent"
	"github.com/drbook/drbook/steps/plugin"
	"github.com/drbook/drbook/steps/transport"
)

// app holds the flags every command shares and the resources opened once.
type app struct {
	dbPath  string
	output  string
	logFile string
	logger  *slog.Logger
	// pluginDir lists extra plugin directories (--plugin-dir, or the
	// operator config's).
	pluginDir []string
	// signer signs the records of the runs this command drives (nil:
	// unsigned, unsignedNotice says why); see prepareSigning.
	signer         *opsig.Signer
	unsignedNotice string
	// configPath is --config; settings the effective operator settings
	// (flag > env > config file > default), resolved once per command.
	configPath string
	settings   *settings
	// getenv reads the environment (tests replace it).
	getenv func(string) (string, bool)
	// notifier notifies the configured endpoints of the command's run
	// (started by engineConfig, flushed by flushNotify).
	notifier *runNotifier
	// approval holds the two-person rule's flags (approvalflags.go).
	approval approvalSettings
}

func newRootCmd() *cobra.Command {
	a := &app{getenv: os.LookupEnv}
	root := &cobra.Command{
		Use:   "drbook",
		Short: "Disaster-recovery runbook runner for clustered key stores",
		Long: `drbook walks a disaster-recovery runbook step by step: it runs each step over
SSH on the right nodes, stops for confirmation before anything destructive,
checkpoints every step in a SQLite record, resumes a run exactly where it
stopped, and replays and verifies the record for audits.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// The operator config and DRBOOK_* variables fill what flags
			// did not give (a default inventory satisfies a required -i).
			st, err := loadSettings(cmd, a.configPath, a.getenv)
			if err != nil {
				return err
			}
			if err := a.applySettings(cmd, st); err != nil {
				return err
			}
			// Checked here (before cobra does) so that a missing required
			// flag is a usage error, exit 2.
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return usageError{err}
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				return usageError{err}
			}
			if a.output != "text" && a.output != "json" {
				return usageError{fmt.Errorf("--output must be text or json, not %q", a.output)}
			}
			if a.output == "json" && a.settings.Output.Source == srcFlag {
				if err := checkJSONOutput(cmd); err != nil {
					return usageError{err}
				}
			}
			a.logger = slog.New(slog.DiscardHandler)
			if a.logFile != "" {
				f, err := os.OpenFile(a.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
				if err != nil {
					return fmt.Errorf("open log file: %w", err)
				}
				a.logger = slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&a.dbPath, "db", "", "checkpoint database (default $XDG_DATA_HOME/drbook/drbook.db; env DRBOOK_DB, config db:)")
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "text", "output format: text or json (env DRBOOK_OUTPUT, config output:)")
	root.PersistentFlags().StringVar(&a.logFile, "log-file", "", "write debug logs (JSON) to this file")
	root.PersistentFlags().StringArrayVar(&a.pluginDir, "plugin-dir", nil, "directory of step plugins (drbook-plugin-*, pinned in its drbook-plugins.lock); repeatable (env DRBOOK_PLUGIN_DIRS, config plugin_dirs:)")
	configFlags(root.PersistentFlags(), &a.configPath)
	root.AddCommand(newLintCmd(a), newPlanCmd(a), newRunCmd(a), newResumeCmd(a), newRunsCmd(a), newReplayCmd(a), newSchemaCmd(), newTrustCmd(), newLabCmd(a), newRehearseCmd(a), newRunbooksCmd(a), newDemoCmd(a), newPluginsCmd(a), newAbortCmd(a), newVersionCmd(a), newConfigCmd(a), newExportCmd(a), newVerifyCmd(a), newApproveCmd(a))
	attachTUI(root, a)
	markDefaultInventory(root)
	markJSONCommands(root)
	markUsageErrors(root)
	return root
}

func (a *app) openDB(ctx context.Context) (*state.DB, error) {
	path := a.dbPath
	if path == "" {
		var err error
		if path, err = state.DefaultPath(); err != nil {
			return nil, err
		}
	}
	return state.Open(ctx, path)
}

// newRegistry returns the step kinds this drbook knows.
func newRegistry() *steps.Registry {
	reg := steps.NewRegistry()
	if err := agent.Register(reg); err != nil {
		panic(err) // built-in kinds never clash
	}
	return reg
}

func loadInventory(path string) (*runbooks.Inventory, error) {
	if path == "" {
		return nil, nil
	}
	src, err := runbooks.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return runbooks.ParseInventory(path, src)
}

// loadRunbook loads a runbook file, or a shipped one given as library:NAME
// (or just NAME when no such file exists).
func (a *app) loadRunbook(path string, reg *steps.Registry, inv *runbooks.Inventory) (*runbooks.Runbook, error) {
	src, name, err := readRunbook(path)
	if err != nil {
		return nil, err
	}
	return loadRunbookSource(name, src, reg, inv, a.pluginDirs()...) // registers the runbook's pinned plugins first
}

func readRunbook(path string) ([]byte, string, error) {
	if strings.HasPrefix(path, library.Prefix) {
		src, ok := library.Source(path)
		if !ok {
			return nil, "", fmt.Errorf("no shipped runbook %q (see drbook runbooks)", strings.TrimPrefix(path, library.Prefix))
		}
		return src, path, nil
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if src, ok := library.Source(path); ok {
			return src, library.Prefix + path, nil
		}
	}
	src, err := runbooks.ReadFile(path)
	return src, path, err
}

func loadAnswers(path string) (*runbooks.Answers, error) {
	if path == "" {
		return nil, nil
	}
	src, err := runbooks.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return runbooks.ParseAnswers(path, src)
}

// expandPath resolves ~ and makes relative paths relative to base's directory.
func expandPath(p, base string) string {
	if p == "" {
		return ""
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if !filepath.IsAbs(p) && base != "" {
		return filepath.Join(filepath.Dir(base), p)
	}
	return p
}

// dialer reaches inventory nodes: SSH with strict host keys, or locally.
func dialer(inv *runbooks.Inventory) engine.Dialer {
	return func(ctx context.Context, n *runbooks.Node) (transport.Transport, error) {
		if n.Transport == runbooks.TransportLocal {
			return &transport.Local{BaseEnv: os.Environ()}, nil
		}
		port := n.Port
		if port == 0 {
			port = inv.SSH.Port
		}
		if port == 0 {
			port = 22
		}
		user := n.User
		if user == "" {
			user = inv.SSH.User
		}
		if user == "" {
			user = os.Getenv("USER")
		}
		known := inv.SSH.KnownHosts
		if known == "" {
			known = "~/.ssh/known_hosts"
		}
		timeout := inv.SSH.ConnectTimeout.D()
		if timeout == 0 {
			timeout = 15 * time.Second
		}
		return transport.DialSSH(ctx, transport.SSHConfig{
			Name: n.Name, Host: n.Host, Port: port, User: user,
			IdentityFile:   expandPath(inv.SSH.IdentityFile, inv.File),
			KnownHostsFile: expandPath(known, inv.File),
			ConnectTimeout: timeout,
			KeepAlive:      15 * time.Second,
		})
	}
}

// engineConfig is the one place a run's engine configuration is built, for
// headless runs, resumes, rehearsals and the TUI alike, so they cannot drift.
func (a *app) engineConfig(rb *runbooks.Runbook, inv *runbooks.Inventory, reg *steps.Registry, db *state.DB,
	op steps.Operator, observe func(runlog.Event), mode string) engine.Config {
	_, headless := op.(*engine.Headless)
	return engine.Config{
		Runbook: rb, Inventory: inv, Registry: reg, Store: faultStore(db), Dial: dialer(inv),
		Operator: op, Observer: observe, Mode: mode, Logger: a.logger,
		Signer: a.signer, UnsignedNotice: a.unsignedNotice,
		Notify:   a.startNotifier(mode),
		Approval: a.approval.approvalConfig(rb, headless, a.allowedSignersSetting()),
	}
}

// loadRun reads what a run needs: the step registry, the inventory, the
// runbook (with its plugins) checked against them, and the answers file.
func (a *app) loadRun(runbook, invPath, answersPath string) (*steps.Registry, *runbooks.Inventory, *runbooks.Runbook, *runbooks.Answers, error) {
	reg := newRegistry()
	inv, err := loadInventory(invPath)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	rb, err := a.loadRunbook(runbook, reg, inv)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	answers, err := loadAnswers(answersPath)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return reg, inv, rb, answers, nil
}

// resumeFiles are the runbook, inventory and registry a resume goes on with.
type resumeFiles struct {
	reg   *steps.Registry
	inv   *runbooks.Inventory
	rb    *runbooks.Runbook
	files state.RunFiles
}

// recordedPath resolves a path recorded relative to the run's directory.
func recordedPath(p, workDir string) string {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(p, library.Prefix) || workDir == "" {
		return p
	}
	return filepath.Join(workDir, p)
}

// loadRecorded reads what a resume of rec needs: the runbook and inventory
// the record holds, or the files given by --runbook / -i instead (the engine
// shows and records a change). Records made before drbook kept the files
// fall back to their recorded paths, resolved against the directory the run
// started in; the error then names --runbook and -i.
func (a *app) loadRecorded(ctx context.Context, db *state.DB, rec state.Run, runbookPath, invPath string) (resumeFiles, error) {
	var out resumeFiles
	events, err := db.Events(ctx, rec.ID)
	if err != nil {
		return out, err
	}
	if out.files, err = engine.RecordedFiles(rec, events); err != nil {
		return out, err
	}
	f := out.files
	out.reg = newRegistry()
	switch {
	case invPath != "":
		out.inv, err = loadInventory(invPath)
	case f.Inventory != nil:
		out.inv, err = runbooks.ParseInventory(recordedPath(f.Inventory.Path, f.WorkDir), f.Inventory.Bytes())
	case rec.InventoryPath != "":
		if out.inv, err = loadInventory(recordedPath(rec.InventoryPath, f.WorkDir)); err != nil {
			err = fmt.Errorf("%w\nthe record of run %s does not hold its inventory (it predates drbook keeping it): give it with -i PATH", err, rec.ID)
		}
	}
	if err != nil {
		return out, err
	}
	switch {
	case runbookPath != "":
		out.rb, err = a.loadRunbook(runbookPath, out.reg, out.inv)
	case f.Runbook != nil:
		src := f.Runbook.Bytes()
		out.rb, err = loadRunbookSource(recordedPath(f.Runbook.Path, f.WorkDir), src, out.reg, out.inv, a.pluginDirs()...)
		if err != nil {
			if pre, perr := runbooks.ParseRunbook(f.Runbook.Path, src); perr == nil && len(pre.Plugins) > 0 {
				err = fmt.Errorf("%w\nthe record keeps the runbook with its plugin pins, not the plugin executables: "+
					"put them in a plugin directory (--plugin-dir DIR, or %s)", err, plugin.DefaultDir())
			}
		}
	default:
		if out.rb, err = a.loadRunbook(recordedPath(rec.RunbookPath, f.WorkDir), out.reg, out.inv); err != nil {
			err = fmt.Errorf("%w\nthe record of run %s does not hold its runbook (it predates drbook keeping it): give it with --runbook PATH", err, rec.ID)
		}
	}
	return out, err
}

// withRecordedAnswers adds the answers to input steps the record holds to
// those of the answers file given now (which win).
func withRecordedAnswers(a *runbooks.Answers, files state.RunFiles) *runbooks.Answers {
	if len(files.StepAnswers) == 0 {
		return a
	}
	if a == nil {
		a = &runbooks.Answers{File: "(record)", Inputs: map[string]runbooks.Answer{}, Steps: map[string]runbooks.Answer{}}
	}
	if a.Steps == nil {
		a.Steps = map[string]runbooks.Answer{}
	}
	for id, v := range files.StepAnswers {
		if _, ok := a.Steps[id]; !ok {
			a.Steps[id] = runbooks.Answer{Value: v}
		}
	}
	return a
}
