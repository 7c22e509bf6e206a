package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/capread"
	"github.com/drbook/drbook/nodeagent"
)

func newClusterCmd(o *opts) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "cluster membership: create, join, remove, reset, force-new"}
	cmd.AddCommand(&cobra.Command{
		Use:   "create",
		Short: "bootstrap a new one-node cluster on this node (prints the first API key once)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res nodeagent.BootstrapResult
			if err := o.call(cmd.Context(), "cluster_create", nil, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s (%s)\ncluster id:     %s\nnode id:        %s\nCA fingerprint: %s\nCA certificate: %s\n",
					res.Message, changedWord(res.Changed), res.ClusterID, res.NodeID, res.CAFingerprint, res.CACertFile)
				if res.APIKey != "" {
					fmt.Fprintf(w, "API key (shown once): %s\n", res.APIKey)
				}
			})
		},
	})

	var peer, tokenFile, tokenFlag string
	join := &cobra.Command{
		Use:   "join",
		Short: "join the cluster whose member's API listens at --peer",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := joinToken(o, tokenFile, tokenFlag)
			if err != nil {
				return err
			}
			var res nodeagent.JoinResult
			if err := o.call(cmd.Context(), "cluster_join", nodeagent.JoinArgs{Peer: peer, Token: tok}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s (%s)\ncluster id: %s\nsuffrage:   %s\n", res.Message, changedWord(res.Changed), res.ClusterID, res.Suffrage)
			})
		},
	}
	join.Flags().StringVar(&peer, "peer", "", "API address (host:port) of a cluster member")
	join.Flags().StringVar(&tokenFile, "token-file", "", "file holding the join token")
	join.Flags().StringVar(&tokenFlag, "token", "", "join token (visible in ps: prefer --token-file or DRBOOK_JOIN_TOKEN)")
	_ = join.MarkFlagRequired("peer")
	cmd.AddCommand(join)

	var node string
	var force bool
	remove := &cobra.Command{
		Use:   "remove",
		Short: "remove a node from the cluster (one at a time; refused if it would lose quorum unless --force)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res nodeagent.RemoveResult
			if err := o.call(cmd.Context(), "cluster_remove", nodeagent.RemoveArgs{NodeID: node, Force: force}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s: %s (%s); voters now %d\n", res.NodeID, res.Message, changedWord(res.Changed), res.Voters)
			})
		},
	}
	remove.Flags().StringVar(&node, "node", "", "node id to remove")
	remove.Flags().BoolVar(&force, "force", false, "remove even if the cluster would lose quorum")
	_ = remove.MarkFlagRequired("node")
	cmd.AddCommand(remove)

	var deleteData bool
	reset := &cobra.Command{
		Use:   "reset",
		Short: "delete this node's data (refused while it is a member); the agent exits",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !deleteData {
				return usageError{msg: "reset needs --delete-data"}
			}
			var res nodeagent.ResetResult
			if _, err := os.Stat(o.data); errors.Is(err, fs.ErrNotExist) {
				// A finished reset removed the data dir (and the agent
				// exited): resuming it is a no-op.
				res.Message = "data directory does not exist; nothing to reset"
				return o.print(res, func(w io.Writer) { fmt.Fprintf(w, "%s (%s)\n", res.Message, changedWord(res.Changed)) })
			}
			if err := o.call(cmd.Context(), "cluster_reset", nodeagent.ResetArgs{DeleteData: true}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) { fmt.Fprintf(w, "%s (%s)\n", res.Message, changedWord(res.Changed)) })
		},
	}
	reset.Flags().BoolVar(&deleteData, "delete-data", false, "confirm deletion of the data directory")
	cmd.AddCommand(reset)

	cmd.AddCommand(&cobra.Command{
		Use:   "force-new",
		Short: "quorum lost: make this node a one-node cluster from its own state",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res nodeagent.ForceNewResult
			if err := o.call(cmd.Context(), "cluster_force_new", nil, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s (%s); %d keys\n", res.Message, changedWord(res.Changed), res.Keys)
			})
		},
	})
	return cmd
}

// joinToken reads the join token from --token-file, DRBOOK_JOIN_TOKEN or
// --token (with a warning: flag values are visible in ps).
func joinToken(o *opts, file, flag string) (string, error) {
	switch {
	case file != "":
		// The token file the local operator named (--token-file), capped.
		b, err := capread.ReadFile(file, maxSecretFileBytes)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case os.Getenv("DRBOOK_JOIN_TOKEN") != "":
		return strings.TrimSpace(os.Getenv("DRBOOK_JOIN_TOKEN")), nil
	case flag != "":
		fmt.Fprintln(o.stderr, "drbook-agent: warning: --token is visible to other users in ps; prefer --token-file or DRBOOK_JOIN_TOKEN")
		return flag, nil
	}
	return "", usageError{msg: "join token needed: --token-file F, env DRBOOK_JOIN_TOKEN, or --token T"}
}
