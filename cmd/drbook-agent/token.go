package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/nodeagent"
)

func newTokenCmd(o *opts) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "join tokens: create, list"}
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "create a single-use join token (printed once)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res nodeagent.TokenResult
			if err := o.call(cmd.Context(), "token_create", nodeagent.TokenArgs{TTL: ttl}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				fmt.Fprintln(w, res.Token)
			})
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "token lifetime (max 168h)")
	cmd.AddCommand(create)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "list join tokens (no secrets)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res []nodeagent.TokenInfo
			if err := o.call(cmd.Context(), "token_list", nil, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				for _, t := range res {
					fmt.Fprintf(w, "%s  %-7s  expires %s  %s\n", t.ID, t.State, t.Expires.Format(time.RFC3339), t.UsedBy)
				}
			})
		},
	})
	return cmd
}
