package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps/transport"
)

// errHostKeyChanged refuses to trust over a recorded, different key.
var errHostKeyChanged = errors.New("host key changed")

func newTrustCmd() *cobra.Command {
	var invPath, fingerprint string
	var yes bool
	cmd := &cobra.Command{
		Use:   "trust -i INVENTORY [NODE...]",
		Short: "Add nodes' SSH host keys to the inventory's known_hosts after you verify them",
		Long: `Fetch the SSH host key each node offers, show its SHA256 fingerprint, and add
it to the inventory's known_hosts file once you have verified it out of band
(on the node: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).

With --fingerprint, a key is added only if it has exactly that fingerprint
(for scripts). With --yes, every offered key is added without asking (trust
on first use: only on a network you control). A key that differs from one
already recorded is never replaced: remove the old line yourself after
finding out why it changed.`,
		Example: "  drbook trust -i prod.yaml\n  drbook trust -i lab.yaml node1 --fingerprint SHA256:abc...",
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := loadInventory(invPath)
			if err != nil {
				return err
			}
			if inv == nil {
				return usageError{errors.New("trust needs -i INVENTORY")}
			}
			known := expandPath(inv.SSH.KnownHosts, inv.File)
			if known == "" {
				known = expandPath("~/.ssh/known_hosts", "")
			}
			nodes := inv.Nodes
			if len(args) > 0 {
				nodes = nil
				for _, name := range args {
					n := inv.Node(name)
					if n == nil {
						return usageError{fmt.Errorf("unknown node %q", name)}
					}
					nodes = append(nodes, *n)
				}
			}
			out := cmd.OutOrStdout()
			in := bufio.NewReader(cmd.InOrStdin())
			var failed []error
			for _, n := range nodes {
				if n.Transport == runbooks.TransportLocal {
					continue
				}
				port := n.Port
				if port == 0 {
					port = inv.SSH.Port
				}
				if port == 0 {
					port = 22
				}
				addr := net.JoinHostPort(n.Host, strconv.Itoa(port))
				err := trustOne(cmd.Context(), out, in, known, n.Name, addr, fingerprint, yes)
				if err != nil {
					fmt.Fprintf(out, "%s: %v\n", n.Name, err)
					failed = append(failed, err)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%w: %d node(s) not trusted", errSilent, len(failed))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&invPath, "inventory", "i", "", "inventory whose nodes and known_hosts to use (required)")
	cmd.Flags().StringVar(&fingerprint, "fingerprint", "", "add a key only if it has this SHA256 fingerprint")
	cmd.Flags().BoolVar(&yes, "yes", false, "add every offered key without asking (trust on first use)")
	return cmd
}

func trustOne(ctx context.Context, out interface{ Write([]byte) (int, error) }, in *bufio.Reader, known, name, addr, want string, yes bool) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	key, err := transport.ScanHostKey(sctx, addr)
	if err != nil {
		return err
	}
	fp := ssh.FingerprintSHA256(key)
	fmt.Fprintf(out, "%s %s offers %s %s\n", name, knownhosts.Normalize(addr), key.Type(), fp)
	if _, err := os.Stat(known); err == nil {
		cb, err := knownhosts.New(known)
		if err != nil {
			return fmt.Errorf("read %s: %w", known, err)
		}
		tcp, _ := net.ResolveTCPAddr("tcp", addr)
		err = cb(knownhosts.Normalize(addr), tcp, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			fmt.Fprintf(out, "%s: already trusted in %s\n", name, known)
			return nil
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return fmt.Errorf("%w: %s records a different key for %s (line %d); find out why before removing it", errHostKeyChanged, known, addr, ke.Want[0].Line)
		}
	}
	switch {
	case want != "":
		if fp != want {
			return fmt.Errorf("fingerprint %s does not match --fingerprint %s: not added", fp, want)
		}
	case yes:
	default:
		fmt.Fprintf(out, "Verified this fingerprint on the node? Type yes to trust it: ")
		line, _ := in.ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return errors.New("not confirmed: not added")
		}
	}
	if err := transport.AppendKnownHost(known, addr, key); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: added to %s\n", name, known)
	return nil
}
