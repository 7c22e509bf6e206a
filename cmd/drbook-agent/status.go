package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/nodeagent"
)

func newStatusCmd(o *opts) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "members, leader, health, key count, last backup",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st nodeagent.Status
			if err := o.call(cmd.Context(), "status", nil, &st); err != nil {
				return err
			}
			return o.print(st, func(w io.Writer) {
				fmt.Fprintf(w, "node %s  cluster %s  state %s  leader %s\n", st.NodeID, st.ClusterID, st.State, st.Leader.ID)
				fmt.Fprintf(w, "voters %d  healthy %d  keys %d  applied %d  commit %d\n", st.Voters, st.Healthy, st.Keys, st.AppliedIndex, st.CommitIndex)
				for _, m := range st.Members {
					h := "healthy"
					if !m.Healthy {
						h = "UNHEALTHY"
					}
					l := ""
					if m.Leader {
						l = " (leader)"
					}
					fmt.Fprintf(w, "  %-12s %-22s %-8s %s%s\n", m.ID, m.Address, m.Suffrage, h, l)
				}
				if b := st.LastBackup; b != nil {
					fmt.Fprintf(w, "last backup %s at %s (%s ago)\n", b.ID, b.Time.Format(time.RFC3339), time.Duration(b.AgeSeconds*float64(time.Second)).Round(time.Second))
				} else {
					fmt.Fprintln(w, "last backup: none")
				}
				if c := st.MembershipChange; c != nil {
					fmt.Fprintf(w, "membership change in progress: %s %s since %s\n", c.Op, c.NodeID, c.Started.Format(time.RFC3339))
				}
			})
		},
	}
}
