package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/termsafe"
)

func newRunsCmd(a *app) *cobra.Command {
	var limit int
	var unfinished bool
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List recorded runs, newest first",
		Long: `List recorded runs, newest first.

The SECRETS column (field sealed_secrets in -o json, see docs/json.md) says whether a run still
holds sealed secrets: its secret inputs and secret outputs, sealed with a key
of its own so that it can resume. They are shredded (the run's key deleted)
when the run ends for good: succeeded or aborted. A running, interrupted or
failed run can be resumed and keeps them; end a failed run you will not
resume with 'drbook abort RUN_ID'.`,
		Example: `  drbook runs
  drbook runs --unfinished
  drbook runs -o json | jq '.runs[] | select(.sealed_secrets) | .id'`,
		Args: cobra.NoArgs,
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
			runs, err := chainRuns(ctx, db, f)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				doc := jsonapi.RunList{Header: jsonapi.NewHeader(), Runs: make([]jsonapi.RunRow, 0, len(runs))}
				for _, r := range runs {
					rw := jsonapi.RunRow{ID: r.ID, Runbook: r.RunbookName, Status: string(r.Status), Mode: r.Mode, Host: r.Host,
						CreatedAt: jsonapi.Time(r.CreatedAt), SealedSecrets: r.HoldsSecrets}
					if !r.FinishedAt.IsZero() {
						rw.FinishedAt = jsonapi.Time(r.FinishedAt)
						d := jsonapi.MS(r.FinishedAt.Sub(r.CreatedAt))
						rw.DurationMS = &d
					}
					doc.Runs = append(doc.Runs, rw)
				}
				return writeJSON(out, doc)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tRUNBOOK\tSTATUS\tMODE\tSTARTED\tDURATION\tSECRETS")
			for _, r := range runs {
				dur := "-"
				if !r.FinishedAt.IsZero() {
					dur = r.FinishedAt.Sub(r.CreatedAt).Round(time.Second).String()
				}
				secrets := "-"
				if r.HoldsSecrets {
					secrets = "sealed"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", termsafe.Cell(r.ID), termsafe.Cell(r.RunbookName), termsafe.Cell(string(r.Status)), termsafe.Cell(r.Mode), r.CreatedAt.Local().Format("2006-01-02 15:04:05"), dur, secrets)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "show at most this many runs")
	cmd.Flags().BoolVar(&unfinished, "unfinished", false, "only runs that can be resumed")
	return cmd
}
