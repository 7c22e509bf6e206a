package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/library"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/termsafe"
)

// runbookInfo is one line of `drbook runbooks`.
type runbookInfo struct {
	Name string `json:"name"`
	// Path is the file of a runbook that is not shipped but was rehearsed
	// (empty for shipped runbooks).
	Path          string     `json:"path,omitempty"`
	Title         string     `json:"title"`
	Steps         int        `json:"steps"`
	Danger        int        `json:"danger_steps"`
	Tags          []string   `json:"tags,omitempty"`
	Problems      []string   `json:"problems,omitempty"`
	LastRehearsal *time.Time `json:"last_rehearsal,omitempty"`
	LastResult    string     `json:"last_result,omitempty"`
	LastRun       string     `json:"last_rehearsal_run,omitempty"`
}

func newRunbooksCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "runbooks",
		Short: "List the shipped runbooks (and other rehearsed ones), with when each was last rehearsed and how it went",
		Long: `List the runbooks shipped inside drbook (use them as library:NAME or just NAME),
with their step counts, danger steps, and the date and result of the last
rehearsal recorded in the checkpoint database, so a team sees which
procedures have gone stale. Runbooks from files that were rehearsed
(drbook rehearse --drill) are listed after them, with their path.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, err := a.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			reg := newRegistry()
			var infos []runbookInfo
			for _, name := range library.Names() {
				src, _ := library.Source(name)
				info := runbookInfo{Name: name}
				rb, err := runbooks.LoadRunbook(library.Prefix+name, src, reg, nil)
				if err != nil {
					info.Problems = append(info.Problems, err.Error())
				} else {
					info.Title, info.Steps, info.Danger, info.Tags = rb.Title, len(rb.Steps), rb.DangerCount(), rb.Tags
				}
				runs, err := db.ListRuns(ctx, state.RunFilter{RunbookName: name, Limit: 50})
				if err != nil {
					return err
				}
				for _, r := range runs {
					if r.Mode == state.ModeRehearsal {
						t := r.CreatedAt
						info.LastRehearsal, info.LastResult, info.LastRun = &t, string(r.Status), r.ID
						break
					}
				}
				infos = append(infos, info)
			}
			more, err := rehearsedFiles(ctx, db, reg)
			if err != nil {
				return err
			}
			infos = append(infos, more...)
			out := cmd.OutOrStdout()
			if a.output == "json" {
				return writeJSON(out, infos)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUNBOOK\tSTEPS\tDANGER\tLAST REHEARSAL\tRESULT\tTITLE")
			for _, i := range infos {
				last, result := "never", "-"
				if i.LastRehearsal != nil {
					age := time.Since(*i.LastRehearsal).Round(time.Minute)
					last = fmt.Sprintf("%s (%s ago)", i.LastRehearsal.Local().Format("2006-01-02"), age)
					result = i.LastResult
				}
				title := i.Title
				if len(i.Problems) > 0 {
					title = "INVALID: " + i.Problems[0]
				}
				name := i.Name
				if i.Path != "" {
					name += " (" + i.Path + ")"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", termsafe.Cell(name), i.Steps, i.Danger, last, termsafe.Cell(result), termsafe.Cell(title))
			}
			return tw.Flush()
		},
	}
}

// rehearsedFiles lists the runbooks that are not shipped but were
// rehearsed, newest rehearsal first, from the runbook each run recorded.
func rehearsedFiles(ctx context.Context, db *state.DB, reg runbooks.KindCatalog) ([]runbookInfo, error) {
	runs, err := db.ListRuns(ctx, state.RunFilter{Limit: 2000})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []runbookInfo
	for _, r := range runs {
		if r.Mode != state.ModeRehearsal || strings.HasPrefix(r.RunbookPath, library.Prefix) || seen[r.RunbookPath] {
			continue
		}
		if _, shipped := library.Source(r.RunbookName); shipped && r.RunbookPath == r.RunbookName {
			continue
		}
		seen[r.RunbookPath] = true
		t := r.CreatedAt
		info := runbookInfo{Name: r.RunbookName, Path: r.RunbookPath, Title: r.RunbookTitle, LastRehearsal: &t, LastResult: string(r.Status), LastRun: r.ID}
		if rb, err := runbooks.LoadRunbook(r.RunbookPath, r.RunbookSource, reg, nil); err == nil {
			info.Steps, info.Danger, info.Tags = len(rb.Steps), rb.DangerCount(), rb.Tags
		}
		out = append(out, info)
	}
	return out, nil
}
