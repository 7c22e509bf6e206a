package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/nodeagent"
	"github.com/drbook/drbook/nodeagent/labssh"
)

func newServeCmd(o *opts) *cobra.Command {
	var cfg nodeagent.Config
	var logLevel, logFormat string
	var lab struct{ addr, hostKey, authorizedKeys string }
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run the agent daemon (SIGTERM shuts it down gracefully)",
		Example: `  drbook-agent serve --data /var/lib/drbook-agent --node-id node1 --api 10.0.0.1:7373 --raft 10.0.0.1:7374
  # an API exposed to untrusted networks: shorter read timeouts, fewer anonymous requests at once
  drbook-agent serve --data /var/lib/drbook-agent --node-id node1 --api 10.0.0.1:7373 --raft 10.0.0.1:7374 \
    --api-header-timeout 3s --api-body-timeout 5s --api-max-unauthenticated 8
  # Prometheus on the same host scrapes plain HTTP (see docs/monitoring.md)
  drbook-agent serve --data /var/lib/drbook-agent --node-id node1 --api 10.0.0.1:7373 --raft 10.0.0.1:7374 \
    --metrics-listen 127.0.0.1:9373`,
		Args: exactArgs(0),
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
			if cfg.APIHeaderTimeout <= 0 || cfg.APIBodyTimeout <= 0 || cfg.MaxUnauthenticated <= 0 {
				return usageError{msg: "--api-header-timeout, --api-body-timeout and --api-max-unauthenticated must be positive"}
			}
			cfg.Logger = slog.New(h)
			cfg.DataDir = o.data
			// drbook_agent_build_info names the same build as `version`
			// (stamped by make build / make release).
			cfg.Build = nodeagent.DefaultBuildInfo()
			ctx := cmd.Context()
			if lab.addr != "" {
				// Lab clusters only: an SSH endpoint on loopback so drbook
				// reaches this node as it reaches real ones.
				srv, err := labssh.Listen(ctx, labssh.Config{Addr: lab.addr, HostKeyFile: lab.hostKey,
					AuthorizedKeysFile: lab.authorizedKeys, Env: os.Environ(), Logger: cfg.Logger})
				if err != nil {
					return fmt.Errorf("lab ssh: %w", err)
				}
				defer srv.Close()
			}
			for {
				a, err := nodeagent.New(ctx, cfg)
				if err != nil {
					return err
				}
				if err := a.Serve(ctx); err != nil || ctx.Err() != nil || lab.addr == "" {
					return err
				}
				// The agent exits after reset --delete-data. In a lab the
				// process stays up as a supervisor would restart it: a clean
				// agent, reachable over the same lab SSH endpoint.
				cfg.Logger.Info("agent reset: starting again with a clean data directory (lab)")
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NodeID, "node-id", "", "node id (raft server id, certificate common name)")
	f.StringVar(&cfg.APIAddr, "api", "127.0.0.1:7373", "HTTPS API address (key API, join, /healthz, /metrics)")
	f.StringVar(&cfg.RaftAddr, "raft", "127.0.0.1:7374", "raft mutual-TLS transport address")
	f.StringVar(&cfg.MetricsAddr, "metrics-listen", "", "also serve /healthz and /metrics over plain HTTP on this address (e.g. 127.0.0.1:9373); off by default")
	f.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", 500*time.Millisecond, "raft heartbeat timeout")
	f.DurationVar(&cfg.ElectionTimeout, "election-timeout", 500*time.Millisecond, "raft election timeout")
	f.DurationVar(&cfg.LeaderLeaseTimeout, "lease-timeout", 250*time.Millisecond, "raft leader lease timeout")
	f.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", 8192, "log entries between raft snapshots")
	f.Uint64Var(&cfg.PromoteLag, "promote-lag", 64, "largest lag (entries) at which a non-voter is promoted")
	f.DurationVar(&cfg.APIHeaderTimeout, "api-header-timeout", nodeagent.DefaultAPIHeaderTimeout, "longest a client may take to send a request's headers to the HTTPS API")
	f.DurationVar(&cfg.APIBodyTimeout, "api-body-timeout", nodeagent.DefaultAPIBodyTimeout, "longest a client may take to send a request body to the HTTPS API (then 408)")
	f.IntVar(&cfg.MaxUnauthenticated, "api-max-unauthenticated", nodeagent.DefaultMaxUnauthenticated, "HTTPS API requests without credentials served at once (join, health, metrics); more get 503 with Retry-After")
	f.StringVar(&cfg.RaftLogLevel, "raft-log-level", "warn", "raft (hclog) log level: trace, debug, info, warn, error")
	f.StringVar(&logLevel, "log-level", "info", "agent log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	f.StringVar(&lab.addr, "lab-ssh", "", "LAB ONLY: serve SSH on this loopback address (drbook lab)")
	f.StringVar(&lab.hostKey, "lab-ssh-host-key", "", "LAB ONLY: SSH host key file (created if missing)")
	f.StringVar(&lab.authorizedKeys, "lab-ssh-authorized-keys", "", "LAB ONLY: authorized_keys file for the lab SSH endpoint")
	_ = cmd.MarkFlagRequired("node-id")
	return cmd
}
