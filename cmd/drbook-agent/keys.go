package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/capread"
	"github.com/drbook/drbook/nodeagent"
)

// errManifestDiffers is returned (exit 1) by keys verify on a difference.
var errManifestDiffers = errors.New("keys differ from the manifest")

func newKeysCmd(o *opts) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "security objects: create, get, list, delete, count, load, manifest, verify"}
	var stale bool
	addStale := func(c *cobra.Command) *cobra.Command {
		c.Flags().BoolVar(&stale, "stale", false, "read this node's local state without a leader (may lag)")
		return c
	}

	var spec nodeagent.KeySpec
	create := &cobra.Command{
		Use:   "create",
		Short: "create a key with random material",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res []nodeagent.CreateResult
			if err := o.call(cmd.Context(), "keys_create", nodeagent.CreateArgs{Keys: []nodeagent.KeySpec{spec}}, &res); err != nil {
				return err
			}
			if len(res) == 1 && !res[0].Created {
				return fmt.Errorf("%w: key %s", nodeagent.ErrExists, res[0].ID)
			}
			return o.print(res, func(w io.Writer) {
				for _, r := range res {
					fmt.Fprintln(w, r.ID)
				}
			})
		},
	}
	create.Flags().StringVar(&spec.ID, "id", "", "key id (default: random)")
	create.Flags().StringVar(&spec.Name, "name", "", "key name")
	create.Flags().StringVar(&spec.Type, "type", "aes256", "key type")
	create.Flags().StringVar(&spec.Group, "group", "", "key group")
	cmd.AddCommand(create)

	var material bool
	get := addStale(&cobra.Command{
		Use:   "get ID",
		Short: "show a key (material only with --material)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res nodeagent.KeyInfo
			if err := o.call(cmd.Context(), "keys_get", nodeagent.KeyArgs{ID: args[0], Material: material, Stale: stale}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "id %s  name %s  type %s  group %s  created %s\nsha256 %s\n", res.ID, res.Name, res.Type, res.Group, res.Created.Format(time.RFC3339), res.SHA256)
				if material {
					fmt.Fprintf(w, "material %s\n", base64.StdEncoding.EncodeToString(res.Material))
				}
			})
		},
	})
	get.Flags().BoolVar(&material, "material", false, "include the key material (base64)")
	cmd.AddCommand(get)

	cmd.AddCommand(addStale(&cobra.Command{
		Use:   "list",
		Short: "list keys (no material)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res []nodeagent.KeyInfo
			if err := o.call(cmd.Context(), "keys_list", nodeagent.ReadArgs{Stale: stale}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				for _, k := range res {
					fmt.Fprintf(w, "%s  %-8s %-10s %s\n", k.ID, k.Type, k.Group, k.Name)
				}
			})
		},
	}))
	cmd.AddCommand(&cobra.Command{
		Use:   "delete ID",
		Short: "delete a key",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res nodeagent.DeleteResult
			if err := o.call(cmd.Context(), "keys_delete", nodeagent.KeyArgs{ID: args[0]}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) { fmt.Fprintf(w, "deleted %s\n", res.ID) })
		},
	})
	cmd.AddCommand(addStale(&cobra.Command{
		Use:   "count",
		Short: "count keys",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res nodeagent.CountResult
			if err := o.call(cmd.Context(), "keys_count", nodeagent.ReadArgs{Stale: stale}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) { fmt.Fprintln(w, res.Keys) })
		},
	}))

	var load nodeagent.LoadArgs
	loadCmd := &cobra.Command{
		Use:   "load",
		Short: "create N synthetic keys in batches (drills)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res nodeagent.LoadResult
			if err := o.call(cmd.Context(), "keys_load", load, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "created %d keys in %.2fs; %d keys in total\n", res.Created, res.Seconds, res.Keys)
			})
		},
	}
	loadCmd.Flags().IntVar(&load.Count, "count", 0, "number of keys to create")
	loadCmd.Flags().IntVar(&load.Batch, "batch", 1000, "keys per raft entry")
	loadCmd.Flags().StringVar(&load.Group, "group", "drill", "group of the synthetic keys")
	_ = loadCmd.MarkFlagRequired("count")
	cmd.AddCommand(loadCmd)

	cmd.AddCommand(addStale(&cobra.Command{
		Use:   "manifest",
		Short: "print every key id with the SHA-256 of its material, and a total digest",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res nodeagent.Manifest
			if err := o.call(cmd.Context(), "keys_manifest", nodeagent.ReadArgs{Stale: stale}, &res); err != nil {
				return err
			}
			return o.print(res, func(w io.Writer) {
				for _, e := range res.Keys {
					fmt.Fprintf(w, "%s %s\n", e.ID, e.SHA256)
				}
				fmt.Fprintf(w, "count %d digest %s\n", res.Count, res.Digest)
			})
		},
	}))

	var manifestFile string
	verify := addStale(&cobra.Command{
		Use:   "verify",
		Short: "compare the keys with a JSON manifest (from keys manifest --output json); exit 1 on difference",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The manifest file the local operator named (--manifest), read
			// with a cap whatever it is (a device or FIFO included).
			b, err := capread.ReadFile(manifestFile, maxManifestFileBytes)
			if errors.Is(err, capread.ErrTooLarge) {
				return usageError{msg: "manifest " + err.Error()}
			}
			if err != nil {
				return fmt.Errorf("%w: read manifest: %w", nodeagent.ErrNotFound, err)
			}
			var m nodeagent.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				return usageError{msg: "manifest is not JSON from keys manifest --output json: " + err.Error()}
			}
			var res nodeagent.VerifyResult
			if err := o.call(cmd.Context(), "keys_verify", nodeagent.VerifyArgs{Manifest: m, Stale: stale}, &res); err != nil {
				return err
			}
			if err := o.print(res, func(w io.Writer) {
				if res.OK {
					fmt.Fprintf(w, "ok: %d keys match the manifest\n", res.Actual)
					return
				}
				fmt.Fprintf(w, "DIFFERENT: %d missing, %d extra, %d changed (expected %d, found %d)\n",
					len(res.Missing), len(res.Extra), len(res.Changed), res.Expected, res.Actual)
				for _, id := range res.Missing {
					fmt.Fprintf(w, "missing %s\n", id)
				}
				for _, id := range res.Extra {
					fmt.Fprintf(w, "extra   %s\n", id)
				}
				for _, id := range res.Changed {
					fmt.Fprintf(w, "changed %s\n", id)
				}
			}); err != nil {
				return err
			}
			if !res.OK {
				fmt.Fprintf(o.stderr, "drbook-agent: %v\n", errManifestDiffers)
				o.exitCode = nodeagent.ExitError
			}
			return nil
		},
	})
	verify.Flags().StringVar(&manifestFile, "manifest", "", "manifest file (JSON)")
	_ = verify.MarkFlagRequired("manifest")
	cmd.AddCommand(verify)
	return cmd
}
