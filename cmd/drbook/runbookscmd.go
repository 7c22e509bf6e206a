package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/library"
	"github.com/drbook/drbook/runbooks/rehearsal"
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
	// LastDrill is the last rehearsal's drill result from its report:
	// "passed" or "failed" (empty when the run holds no report).
	LastDrill string `json:"last_drill_result,omitempty"`
	// LastVerdict says why that drill failed.
	LastVerdict string `json:"last_drill_verdict,omitempty"`
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
						info.LastDrill, info.LastVerdict = rehearsalOutcome(ctx, db, r.ID)
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
				doc := jsonapi.RunbookList{Header: jsonapi.NewHeader(), Runbooks: make([]jsonapi.RunbookRow, 0, len(infos))}
				for _, i := range infos {
					row := jsonapi.RunbookRow{Name: i.Name, Path: i.Path, Title: i.Title, Steps: i.Steps, DangerSteps: i.Danger, Tags: i.Tags,
						Problems: i.Problems, LastResult: i.LastResult, LastRehearsalRun: i.LastRun,
						LastDrillResult: i.LastDrill, LastDrillVerdict: i.LastVerdict}
					if i.LastRehearsal != nil {
						row.LastRehearsal = jsonapi.Time(*i.LastRehearsal)
					}
					doc.Runbooks = append(doc.Runbooks, row)
				}
				return writeJSON(out, doc)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUNBOOK\tSTEPS\tDANGER\tLAST REHEARSAL\tRESULT\tTITLE")
			for _, i := range infos {
				last, result := "never", "-"
				if i.LastRehearsal != nil {
					age := time.Since(*i.LastRehearsal).Round(time.Minute)
					last = fmt.Sprintf("%s (%s ago)", i.LastRehearsal.Local().Format("2006-01-02"), age)
					result = i.LastResult
					if i.LastDrill != "" {
						result += ", drill " + i.LastDrill
					}
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
		info.LastDrill, info.LastVerdict = rehearsalOutcome(ctx, db, r.ID)
		if rb, err := runbooks.LoadRunbook(r.RunbookPath, r.RunbookSource, reg, nil); err == nil {
			info.Steps, info.Danger, info.Tags = len(rb.Steps), rb.DangerCount(), rb.Tags
		}
		out = append(out, info)
	}
	return out, nil
}

// rehearsalOutcome reads a rehearsal run's report from its record (the note
// rehearse stores): "passed" or "failed" and the verdict. It is the one
// place `drbook runbooks` reads rehearsal reports; empty when there is none.
func rehearsalOutcome(ctx context.Context, db *state.DB, runID string) (result, verdict string) {
	events, err := db.Events(ctx, runID)
	if err != nil {
		return "", ""
	}
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Type != state.EvNote {
			continue
		}
		var n state.Note
		if events[i].Decode(&n) != nil || n.Data["kind"] != "rehearsal-report" {
			continue
		}
		var rep rehearsal.Report
		if json.Unmarshal([]byte(n.Data["report.json"]), &rep) != nil {
			return "", ""
		}
		if rep.Verdict != "" {
			return "failed", rep.Verdict
		}
		return "passed", ""
	}
	return "", ""
}
