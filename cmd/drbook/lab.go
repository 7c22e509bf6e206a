package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/nodeagent/lab"
)

func defaultLabDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "drbook", "lab")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "drbook", "lab")
	}
	return "drbook-lab"
}

func newLabCmd(a *app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a local lab cluster of real drbook-agent processes on loopback",
		Long: `A lab is N real drbook-agent daemons on 127.0.0.1, each with its own data
directory and a lab SSH endpoint (loopback only, keys made by the lab, host
keys in the lab's known_hosts), so drbook reaches lab nodes over SSH exactly as
it reaches real ones. 'lab up' writes DIR/inventory.yaml.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", defaultLabDir(), "lab directory")
	cmd.AddCommand(newLabUpCmd(a, &dir), newLabStatusCmd(a, &dir), newLabDownCmd(a, &dir), newLabDisasterCmd(a, &dir))
	return cmd
}

func newLabUpCmd(a *app, dir *string) *cobra.Command {
	var nodes int
	var noCluster bool
	var size int
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a lab and form one cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := lab.FindAgent()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(cmd.ErrOrStderr(), "starting %d agents in %s\n", nodes, *dir)
			l, err := lab.Up(cmd.Context(), lab.Options{Dir: *dir, Nodes: nodes, AgentBin: bin})
			if err != nil {
				return err
			}
			if !noCluster {
				fmt.Fprintln(cmd.ErrOrStderr(), "forming the cluster (bootstrap node1, join the others)")
				if err := l.Bootstrap(cmd.Context(), size); err != nil {
					return err
				}
			}
			inv, err := writeLabInventory(l)
			if err != nil {
				return err
			}
			if a.output == "json" {
				doc := jsonapi.LabUp{Header: jsonapi.NewHeader(), Dir: l.Dir, Inventory: inv, Nodes: make([]jsonapi.LabNode, 0, len(l.Nodes))}
				for _, n := range l.Nodes {
					doc.Nodes = append(doc.Nodes, jsonapi.LabNode{Name: n.Name, Dir: n.Dir, DataDir: n.DataDir, BackupDir: n.BackupDir, API: n.API, Raft: n.Raft, SSH: n.SSH, PID: n.PID, Log: n.Log})
				}
				return writeJSON(out, doc)
			}
			fmt.Fprintf(out, "lab up: %d nodes, inventory %s\n", len(l.Nodes), inv)
			return printLabStatus(out, l)
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 3, "number of nodes")
	cmd.Flags().BoolVar(&noCluster, "no-cluster", false, "start empty agents without forming a cluster")
	cmd.Flags().IntVar(&size, "cluster-size", 0, "form the cluster from the first N nodes only; the rest stay clean agents (default all)")
	return cmd
}

// writeLabInventory writes DIR/inventory.yaml for a lab.
func writeLabInventory(l *lab.Lab) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by drbook lab up. Nodes are drbook-agent processes on loopback.\napiVersion: drbook/v1\nkind: Inventory\nname: lab\n")
	user := os.Getenv("USER")
	if user == "" {
		user = "lab"
	}
	fmt.Fprintf(&b, "ssh:\n  user: %s\n  identity_file: %s\n  known_hosts: %s\nnodes:\n", user, l.ClientKey, l.KnownHosts)
	for _, n := range l.Nodes {
		host, port, _ := net.SplitHostPort(n.SSH)
		fmt.Fprintf(&b, "  - name: %s\n    host: %s\n    port: %s\n    labels: {role: kms, lab: \"true\"}\n", n.Name, host, port)
		fmt.Fprintf(&b, "    vars: {api: %q, raft: %q, backups: %q, vault: %q}\n", n.API, n.Raft, n.BackupDir, l.Vault)
		fmt.Fprintf(&b, "    agent: {command: %q, data: %q}\n", l.AgentBin, n.DataDir)
	}
	names := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		names[i] = n.Name
	}
	fmt.Fprintf(&b, "groups:\n  all: [%s]\n", strings.Join(names, ", "))
	p := filepath.Join(l.Dir, "inventory.yaml")
	return p, os.WriteFile(p, []byte(b.String()), 0o600)
}

func printLabStatus(w interface{ Write([]byte) (int, error) }, l *lab.Lab) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPID\tPROCESS\tSSH\tAPI\tDATA")
	for i, s := range l.Status() {
		n := l.Nodes[i]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.PID, upDown(s.Alive, "running", "dead"), n.SSH+" "+upDown(s.SSH, "✓", "✗"),
			n.API+" "+upDown(s.API, "✓", "✗"), upDown(s.HasDir, "present", "deleted"))
	}
	return tw.Flush()
}

func upDown(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func newLabStatusCmd(a *app, dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the lab's processes and ports",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(*dir)
			if err != nil {
				return err
			}
			if a.output == "json" {
				doc := jsonapi.LabStatus{Header: jsonapi.NewHeader(), Dir: l.Dir, Nodes: []jsonapi.LabNodeStatus{}}
				for _, n := range l.Status() {
					doc.Nodes = append(doc.Nodes, jsonapi.LabNodeStatus{Name: n.Name, PID: n.PID, Alive: n.Alive, SSH: n.SSH, API: n.API, HasData: n.HasDir})
				}
				return writeJSON(cmd.OutOrStdout(), doc)
			}
			return printLabStatus(cmd.OutOrStdout(), l)
		},
	}
}

func newLabDownCmd(_ *app, dir *string) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop every process the lab started and delete the lab",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(*dir)
			if err != nil {
				return err
			}
			if err := l.Down(cmd.Context()); err != nil {
				return err
			}
			if !keep {
				if err := os.RemoveAll(l.Dir); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab down: %d agents stopped, no port left open\n", len(l.Nodes))
			return nil
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the lab directory (data, logs)")
	return cmd
}

func newLabDisasterCmd(_ *app, dir *string) *cobra.Command {
	var kind string
	var nodes []string
	var noReplace bool
	cmd := &cobra.Command{
		Use:   "disaster --kind node-loss|quorum-loss|total-loss [--nodes n1,n2]",
		Short: "Kill nodes with SIGKILL and delete their data, as a real disaster would",
		Long: `Kill the chosen nodes' agents with SIGKILL and delete their data directories.
Defaults: node-loss hits the last node, quorum-loss a majority (all but the
first node), total-loss every node. Unless --no-replace, each lost node comes
back as an empty agent: the replacement machine the recovery rebuilds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(*dir)
			if err != nil {
				return err
			}
			hit, err := l.Disaster(cmd.Context(), kind, nodes, !noReplace)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "disaster %s: killed and wiped %s\n", kind, strings.Join(hit, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "node-loss, quorum-loss or total-loss")
	cmd.Flags().StringSliceVar(&nodes, "nodes", nil, "nodes to hit (default by kind)")
	cmd.Flags().BoolVar(&noReplace, "no-replace", false, "leave lost nodes down")
	_ = cmd.MarkFlagRequired("kind")
	return cmd
}
