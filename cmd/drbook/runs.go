package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/termsafe"
)

func newRunsCmd(a *app) *cobra.Command {
	var limit int
	var unfinished bool
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List recorded runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, err := a.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			f := state.RunFilter{Limit: limit}
			if unfinished {
				f.Status = []state.Status{state.StatusRunning, state.StatusInterrupted, state.StatusFailed}
			}
			runs, err := db.ListRuns(ctx, f)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				type row struct {
					ID, Runbook, Status, Mode, Host string
					Created                         time.Time
					Finished                        *time.Time `json:",omitempty"`
				}
				rows := make([]row, 0, len(runs))
				for _, r := range runs {
					rw := row{ID: r.ID, Runbook: r.RunbookName, Status: string(r.Status), Mode: r.Mode, Host: r.Host, Created: r.CreatedAt}
					if !r.FinishedAt.IsZero() {
						t := r.FinishedAt
						rw.Finished = &t
					}
					rows = append(rows, rw)
				}
				return writeJSON(out, rows)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tRUNBOOK\tSTATUS\tMODE\tSTARTED\tDURATION")
			for _, r := range runs {
				dur := "-"
				if !r.FinishedAt.IsZero() {
					dur = r.FinishedAt.Sub(r.CreatedAt).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", termsafe.Cell(r.ID), termsafe.Cell(r.RunbookName), termsafe.Cell(string(r.Status)), termsafe.Cell(r.Mode), r.CreatedAt.Local().Format("2006-01-02 15:04:05"), dur)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "show at most this many runs")
	cmd.Flags().BoolVar(&unfinished, "unfinished", false, "only runs that can be resumed")
	return cmd
}
