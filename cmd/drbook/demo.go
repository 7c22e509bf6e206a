package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/drbook/drbook/nodeagent/lab"
)

// demoPassphrase protects the demo's backup; it is not a secret anyone needs
// to keep (the demo lab is thrown away).
const demoPassphrase = "demo-passphrase-not-secret"

func newDemoCmd(a *app) *cobra.Command {
	var dir string
	var headless bool
	var keys int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a 3-node lab, inject a total loss, and recover it in the TUI",
		Long: `The guided tour: start a lab cluster of three real drbook-agent processes,
load keys, take a backup, keep writing, then lose every node (kill -9, data
deleted) and open the TUI on total-cluster-recovery with the answers filled
in. You confirm the danger step by typing the node's name. On exit you are
offered to stop the lab.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			say := func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), "demo: "+format+"\n", args...) }
			bin, err := lab.FindAgent()
			if err != nil {
				return err
			}
			if old, err := lab.Load(dir); err == nil {
				say("stopping the previous demo lab")
				_ = old.Down(ctx)
				_ = os.RemoveAll(dir)
			}
			say("starting 3 agents in %s", dir)
			l, err := lab.Up(ctx, lab.Options{Dir: dir, Nodes: 3, AgentBin: bin})
			if err != nil {
				return err
			}
			if err := l.Bootstrap(ctx, 0); err != nil {
				return err
			}
			inv, err := writeLabInventory(l)
			if err != nil {
				return err
			}
			say("loading %d keys, taking a backup, writing 100 more", keys)
			if err := l.Agent(ctx, "node1", nil, nil, "keys", "load", "--count", fmt.Sprint(keys)); err != nil {
				return err
			}
			backup := filepath.Join(l.Vault, "demo.drbkbak")
			if err := l.Agent(ctx, "node1", []string{"DRBOOK_BACKUP_PASSPHRASE=" + demoPassphrase}, nil, "backup", "create", "--out", backup); err != nil {
				return err
			}
			manifest := filepath.Join(l.Vault, "manifest.json")
			if err := writeManifestFile(ctx, l, "node1", manifest); err != nil {
				return err
			}
			if err := l.Agent(ctx, "node1", nil, nil, "keys", "load", "--count", "100"); err != nil {
				return err
			}
			hit, err := l.Disaster(ctx, lab.TotalLoss, nil, true)
			if err != nil {
				return err
			}
			say("DISASTER: %s killed, their data deleted; empty replacements are up", strings.Join(hit, ", "))
			answers := filepath.Join(l.Dir, "answers.yaml")
			if err := os.WriteFile(answers, []byte(fmt.Sprintf(
				"inputs:\n  seed: node1\n  joiners: [node2, node3]\n  backup: %s\n  passphrase: {env: DRBOOK_DEMO_PASSPHRASE}\n  manifest: %s\n",
				backup, manifest)), 0o600); err != nil {
				return err
			}
			if err := os.Setenv("DRBOOK_DEMO_PASSPHRASE", demoPassphrase); err != nil {
				return err
			}
			var runErr error
			if headless {
				runErr = runHeadless(cmd, a, "total-cluster-recovery", inv, answers, true, &signing{})
			} else {
				runErr = runInteractive(cmd, a, interactiveRequest{Runbook: "total-cluster-recovery", Inventory: inv, Answers: answers})
			}
			if runErr != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "drbook:", runErr)
			}
			offerLabDown(cmd, l)
			return runErr
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultLabDir()+"-demo", "demo lab directory")
	cmd.Flags().BoolVar(&headless, "headless", false, "recover without the TUI")
	cmd.Flags().IntVar(&keys, "keys", 5000, "keys loaded before the backup")
	return cmd
}

// offerLabDown asks whether to stop the lab (on a terminal); otherwise it
// says how to.
func offerLabDown(cmd *cobra.Command, l *lab.Lab) {
	out := cmd.ErrOrStderr()
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprintf(out, "demo: the lab keeps running; stop it with: drbook lab down --dir %s\n", l.Dir)
		return
	}
	fmt.Fprintf(out, "Stop the demo lab now? [Y/n] ")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if a := strings.TrimSpace(strings.ToLower(line)); a == "" || a == "y" || a == "yes" {
		if err := l.Down(cmd.Context()); err != nil {
			fmt.Fprintln(out, "demo: lab down:", err)
			return
		}
		_ = os.RemoveAll(l.Dir)
		fmt.Fprintln(out, "demo: lab stopped and removed")
		return
	}
	fmt.Fprintf(out, "demo: the lab keeps running: drbook lab status --dir %s; drbook lab down --dir %s\n", l.Dir, l.Dir)
}
