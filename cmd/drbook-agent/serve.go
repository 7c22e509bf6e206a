package main

import (
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/nodeagent"
)

func newServeCmd(o *opts) *cobra.Command {
	var cfg nodeagent.Config
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run the agent daemon (SIGTERM shuts it down gracefully)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{msg: "--log-level: " + err.Error()}
			}
			hopts := &slog.HandlerOptions{Level: lvl}
			var h slog.Handler = slog.NewJSONHandler(o.stderr, hopts)
			if logFormat == "text" {
				h = slog.NewTextHandler(o.stderr, hopts)
			}
			cfg.Logger = slog.New(h)
			cfg.DataDir = o.data
			ctx := cmd.Context()
			a, err := nodeagent.New(ctx, cfg)
			if err != nil {
				return err
			}
			return a.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NodeID, "node-id", "", "node id (raft server id, certificate common name)")
	f.StringVar(&cfg.APIAddr, "api", "127.0.0.1:7373", "HTTPS API address (key API, join, /healthz, /metrics)")
	f.StringVar(&cfg.RaftAddr, "raft", "127.0.0.1:7374", "raft mutual-TLS transport address")
	f.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", 500*time.Millisecond, "raft heartbeat timeout")
	f.DurationVar(&cfg.ElectionTimeout, "election-timeout", 500*time.Millisecond, "raft election timeout")
	f.DurationVar(&cfg.LeaderLeaseTimeout, "lease-timeout", 250*time.Millisecond, "raft leader lease timeout")
	f.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", 8192, "log entries between raft snapshots")
	f.Uint64Var(&cfg.PromoteLag, "promote-lag", 64, "largest lag (entries) at which a non-voter is promoted")
	f.StringVar(&cfg.RaftLogLevel, "raft-log-level", "warn", "raft (hclog) log level: trace, debug, info, warn, error")
	f.StringVar(&logLevel, "log-level", "info", "agent log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	_ = cmd.MarkFlagRequired("node-id")
	return cmd
}
