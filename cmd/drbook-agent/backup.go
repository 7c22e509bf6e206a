package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/nodeagent"
)

// #nosec G101 -- the name of the environment variable that carries the passphrase, not a credential
const passEnv = "DRBOOK_BACKUP_PASSPHRASE"

func newBackupCmd(o *opts) *cobra.Command {
	cmd := &cobra.Command{Use: "backup", Short: "encrypted backups: create, list, delete"}
	var out, keyFile string
	var keep int
	var maxAge time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "write an encrypted full backup (keys, metadata, CMK) and apply retention",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pass, err := readSecret(keyFile, passEnv, "backup passphrase")
			if err != nil {
				return err
			}
			if out != "" {
				if out, err = filepath.Abs(out); err != nil {
					return err
				}
			}
			var res nodeagent.BackupResult
			args := nodeagent.BackupArgs{Out: out, Passphrase: pass, Keep: keep, MaxAge: maxAge}
			if err := o.call(cmd.Context(), "backup_create", args, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "backup %s: %d keys, %d bytes in %.2fs -> %s\n", res.ID, res.Keys, res.Bytes, res.Seconds, res.File)
				if !res.Consistent {
					fmt.Fprintln(w, "warning: no leader; backup taken from this node's local state")
				}
				for _, p := range res.Pruned {
					fmt.Fprintf(w, "pruned %s\n", p)
				}
			})
		},
	}
	create.Flags().StringVar(&out, "out", "", "backup file (default DATA/backups/ID.drbk)")
	create.Flags().StringVar(&keyFile, "key-file", "", "file holding the backup passphrase (or env "+passEnv+")")
	create.Flags().IntVar(&keep, "keep", 10, "retention: keep at most this many backups in DATA/backups")
	create.Flags().DurationVar(&maxAge, "max-age", 7*24*time.Hour, "retention: delete backups older than this (the newest is always kept)")
	cmd.AddCommand(create)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "list backups in DATA/backups (newest first)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res []nodeagent.BackupEntry
			if err := o.call(cmd.Context(), "backup_list", nil, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				for _, b := range res {
					fmt.Fprintf(w, "%s  %s  %7d keys  %9d bytes\n", b.ID, b.Created.Format(time.RFC3339), b.Keys, b.Bytes)
				}
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "delete ID",
		Short: "delete a backup from DATA/backups",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res nodeagent.BackupDeleteResult
			if err := o.call(cmd.Context(), "backup_delete", nodeagent.BackupDeleteArgs{ID: args[0]}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) { fmt.Fprintf(w, "deleted %s\n", res.ID) })
		},
	})
	return cmd
}

func newRestoreCmd(o *opts) *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "restore a backup onto a freshly bootstrapped one-node cluster with no keys",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pass, err := readSecret(keyFile, passEnv, "backup passphrase")
			if err != nil {
				return err
			}
			file, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			var res nodeagent.RestoreResult
			if err := o.call(cmd.Context(), "restore", nodeagent.RestoreArgs{File: file, Passphrase: pass}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s (%s): %d keys from cluster %s\n", res.Message, changedWord(res.Changed), res.Keys, res.SourceClusterID)
			})
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "file holding the backup passphrase (or env "+passEnv+")")
	return cmd
}
