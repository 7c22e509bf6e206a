package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/capread"
	"github.com/drbook/drbook/nodeagent"
)

// opts holds the global flags and output streams of one invocation.
type opts struct {
	data     string
	output   string
	timeout  time.Duration
	stdout   io.Writer
	stderr   io.Writer
	exitCode int
}

func newRoot(o *opts) *cobra.Command {
	root := &cobra.Command{
		Use:   "drbook-agent",
		Short: "drbook's clustered node agent (raft key store with DR operations)",
		Long: `drbook's clustered node agent (raft key store with DR operations).

` + "`drbook-agent serve`" + ` runs the daemon; every other command talks to the local
daemon over DATA/admin.sock.`,
		Example: `  drbook-agent serve --data /var/lib/drbook-agent --node-id node1 --api 10.0.0.1:7373 --raft 10.0.0.1:7374
  drbook-agent status
  drbook-agent --output json status`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if o.output != "text" && o.output != "json" {
				return usageError{msg: "--output must be text or json"}
			}
			return nil
		},
	}
	root.SetUsageTemplate(root.UsageTemplate() + exitCodesHelp)
	root.SetOut(o.stdout)
	root.SetErr(o.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{msg: err.Error()} })
	pf := root.PersistentFlags()
	pf.StringVar(&o.data, "data", "/var/lib/drbook-agent", "agent data directory (holds admin.sock)")
	pf.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	pf.DurationVar(&o.timeout, "timeout", 2*time.Minute, "overall timeout of the command")
	root.AddCommand(newServeCmd(o), newClusterCmd(o), newTokenCmd(o), newKeysCmd(o), newBackupCmd(o), newRestoreCmd(o), newStatusCmd(o), newVersionCmd(o))
	return root
}

// exitCodesHelp ends every command's --help.
const exitCodesHelp = `
Exit codes:
  0  ok
  1  error (also: keys verify found differences)
  2  usage error
  3  refused by a safety rule (the message names the rule)
  4  not found (key, backup, file)
  5  unavailable: no leader (quorum lost or an election running), no cluster
     state, a peer unreachable; the message says which
  6  agent not running: nothing answers on DATA/admin.sock
  7  timed out: --timeout passed first (the agent may still finish the request)
  8  CA fingerprint does not match the join token (wrong --peer or another
     cluster's token)
`

func exactArgs(n int) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{msg: fmt.Sprintf("expected %d argument(s), got %d", n, len(args))}
		}
		return nil
	}
}

// call runs one admin verb on the local agent within the timeout.
func (o *opts) call(ctx context.Context, verb string, req, out any) error {
	c := nodeagent.NewAdminClient(o.data)
	c.SetTimeout(o.timeout)
	return c.Call(ctx, verb, req, out)
}

// print writes v as JSON, or as text with the given function.
func (o *opts) print(v any, text func(w io.Writer)) error {
	if o.output == "json" {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(o.stdout)
	return nil
}

// printError reports err on stderr, and as JSON on stdout with --output json.
func (o *opts) printError(err error, code int) {
	fmt.Fprintf(o.stderr, "drbook-agent: %v\n", err)
	if o.output == "text" {
		return
	}
	w := map[string]any{"error": err.Error(), "exit_code": code}
	for _, s := range sentinels() {
		if errors.Is(err, s) {
			w["sentinel"] = s.Error()
			break
		}
	}
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(w)
}

func sentinels() []error {
	return []error{nodeagent.ErrResetMember, nodeagent.ErrHasClusterState, nodeagent.ErrRestoreTarget,
		nodeagent.ErrMembershipChange, nodeagent.ErrQuorumLoss, nodeagent.ErrTokenExpired, nodeagent.ErrTokenUsed,
		nodeagent.ErrTokenInvalid, nodeagent.ErrBackupRejected, nodeagent.ErrQuorumPresent, nodeagent.ErrNodeIDInUse,
		nodeagent.ErrLastVoter, nodeagent.ErrCAMismatch, nodeagent.ErrAgentNotRunning, nodeagent.ErrTimeout,
		nodeagent.ErrNotFound, nodeagent.ErrUnavailable, nodeagent.ErrNoClusterState, nodeagent.ErrExists, nodeagent.ErrUsage}
}

// Caps on files the operator names: a secret or token is a line; a keys
// manifest lists every key (about 120 bytes each) and is sent whole to the
// agent, whose API takes at most 64 MiB.
const (
	maxSecretFileBytes   = 64 << 10
	maxManifestFileBytes = 64 << 20
)

// readSecret reads a secret from a file (trailing newline trimmed) or an
// environment variable; never from a flag value.
func readSecret(file, env, what string) ([]byte, error) {
	if file != "" {
		// A file the local operator named on the command line
		// (--key-file/--token-file), read with a cap whatever it is.
		b, err := capread.ReadFile(file, maxSecretFileBytes)
		if err != nil {
			return nil, fmt.Errorf("read %s file: %w", what, err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return nil, usageError{msg: what + " file is empty"}
		}
		return []byte(s), nil
	}
	if v := os.Getenv(env); v != "" {
		return []byte(v), nil
	}
	return nil, usageError{msg: fmt.Sprintf("%s needed: --key-file F or env %s", what, env)}
}

func changedWord(c bool) string {
	if c {
		return "changed"
	}
	return "unchanged"
}
