package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state/termsafe"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/plugin"
)

// pluginDirs returns the directories searched for plugins: --plugin-dir
// (repeatable) and $XDG_CONFIG_HOME/drbook/plugins.
func (a *app) pluginDirs() []string {
	dirs := append([]string(nil), a.pluginDir...)
	if d := plugin.DefaultDir(); d != "" {
		dirs = append(dirs, d)
	}
	return dirs
}

// loadPlugins loads into reg the plugins a runbook pins (rb may be nil) and
// those in dirs, each checked against its SHA-256 pin. A runbook's own
// plugins must load (hard); a plugin directory's failures are soft: they
// only matter if a step needs a kind that is then missing.
func loadPlugins(ctx context.Context, reg *steps.Registry, rb *runbooks.Runbook, dirs []string) (hard, soft error) {
	m := plugin.NewManager(plugin.Config{})
	// The manager is not closed here: its processes serve the run's steps
	// and die with drbook (SIGKILL on the runner's death, and they exit when
	// re-parented).
	var softs []error
	var dirPins []plugin.Pin
	for _, d := range dirs {
		if d == "" {
			continue
		}
		pins, err := plugin.DirPins(d)
		if err != nil {
			softs = append(softs, err)
		}
		dirPins = append(dirPins, pins...)
	}
	load := func(pins []plugin.Pin) error {
		var errs []error
		for _, pin := range pins {
			if plugin.LoadedIn(reg, pin) {
				continue
			}
			p, err := m.Load(ctx, pin)
			if err == nil {
				err = plugin.Register(reg, p)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	if rb != nil {
		pins, err := plugin.RunbookPins(rb)
		if err != nil {
			return err, nil
		}
		if err := load(pins); err != nil {
			return err, nil
		}
	}
	if err := load(dirPins); err != nil {
		softs = append(softs, err)
	}
	return nil, errors.Join(softs...)
}

// loadRunbookSource loads a runbook with the plugins it pins and those in
// the default plugin directory registered first, so its plugin steps are
// validated like built-in ones.
func loadRunbookSource(name string, src []byte, reg *steps.Registry, inv *runbooks.Inventory, dirs ...string) (*runbooks.Runbook, error) {
	pre, err := runbooks.ParseRunbook(name, src)
	if err != nil {
		pre = nil // LoadRunbook reports every problem below
	}
	if len(dirs) == 0 {
		dirs = []string{plugin.DefaultDir()}
	}
	hard, soft := loadPlugins(context.Background(), reg, pre, dirs)
	if hard != nil {
		return nil, hard
	}
	rb, err := runbooks.LoadRunbook(name, src, reg, inv)
	if err != nil && soft != nil {
		return nil, errors.Join(err, fmt.Errorf("plugins refused: %w", soft))
	}
	return rb, err
}

// pluginRow is one line of `drbook plugins list`.
type pluginRow struct {
	Name    string   `json:"name,omitempty"`
	Version string   `json:"version,omitempty"`
	Kinds   []string `json:"kinds,omitempty"`
	Path    string   `json:"path"`
	SHA256  string   `json:"sha256,omitempty"`
	Pinned  string   `json:"pinned_by,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func newPluginsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "Step plugins: list what is installed and pinned",
		Long: `Step plugins are executables providing extra step kinds. drbook finds them in
--plugin-dir, in $XDG_CONFIG_HOME/drbook/plugins (files named drbook-plugin-*),
and in a runbook's plugins: list. Every plugin is pinned by SHA-256: in the
runbook (sha256:) or in a drbook-plugins.lock file beside the runbook or in the
plugin directory (lines "SHA256  PATH", as sha256sum prints them). A plugin
whose file does not match its pin is refused.`,
	}
	list := &cobra.Command{
		Use:     "list [RUNBOOK...]",
		Short:   "List plugins with their kinds, versions, paths and pins",
		Example: "  drbook plugins list\n  drbook plugins list --plugin-dir ./plugins recover.yaml",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var pins []plugin.Pin
			for _, d := range a.pluginDirs() {
				ps, err := plugin.DirPins(d)
				if err != nil {
					return err
				}
				pins = append(pins, ps...)
			}
			for _, f := range args {
				src, name, err := readRunbook(f)
				if err != nil {
					return err
				}
				rb, err := runbooks.ParseRunbook(name, src)
				if err != nil {
					return err
				}
				ps, err := plugin.RunbookPins(rb)
				if err != nil {
					return err
				}
				pins = append(pins, ps...)
			}
			m := plugin.NewManager(plugin.Config{Logger: a.logger})
			defer m.Close()
			rows := make([]pluginRow, 0, len(pins))
			failed := false
			for _, pin := range pins {
				row := pluginRow{Path: pin.Path, SHA256: pin.SHA256, Pinned: pin.Source}
				p, err := m.Load(ctx, pin)
				if err != nil {
					row.Error, failed = err.Error(), true
					if pin.SHA256 == "" {
						row.Pinned = ""
					}
				} else {
					row.Name, row.Version = p.Name(), p.Version()
					for _, k := range p.Kinds() {
						row.Kinds = append(row.Kinds, k.Info().Name)
					}
				}
				rows = append(rows, row)
			}
			sort.SliceStable(rows, func(i, j int) bool { return rows[i].Path < rows[j].Path })
			out := cmd.OutOrStdout()
			if a.output == "json" {
				doc := jsonapi.PluginList{Header: jsonapi.NewHeader(), Plugins: make([]jsonapi.PluginRow, 0, len(rows))}
				for _, r := range rows {
					doc.Plugins = append(doc.Plugins, jsonapi.PluginRow{Name: r.Name, Version: r.Version, Kinds: r.Kinds, Path: r.Path, SHA256: r.SHA256, PinnedBy: r.Pinned, Error: r.Error})
				}
				if err := writeJSON(out, doc); err != nil {
					return err
				}
			} else {
				if len(rows) == 0 {
					fmt.Fprintf(out, "no plugins (searched %s)\n", strings.Join(a.pluginDirs(), ", "))
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tVERSION\tKINDS\tPATH\tSHA256\tPINNED BY")
				for _, r := range rows {
					sha := r.SHA256
					if len(sha) > 12 {
						sha = sha[:12] + "…"
					}
					if r.Error != "" {
						fmt.Fprintf(tw, "-\t-\t-\t%s\t%s\t%s\n", termsafe.Cell(r.Path), sha, termsafe.Cell(r.Pinned))
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", termsafe.Cell(r.Name), termsafe.Cell(r.Version), termsafe.Cell(strings.Join(r.Kinds, ",")), termsafe.Cell(r.Path), sha, termsafe.Cell(r.Pinned))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				for _, r := range rows {
					if r.Error != "" {
						fmt.Fprintf(out, "refused: %s\n", termsafe.Text(r.Error))
					}
				}
			}
			if failed {
				return errSilent
			}
			return nil
		},
	}
	cmd.AddCommand(list)
	return cmd
}
