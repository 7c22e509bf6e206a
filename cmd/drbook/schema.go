package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/runbooks"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema runbook|inventory|drill|config|kinds",
		Short: "Print the JSON Schema of runbooks, inventories, drills or the operator config (for editors), or the step kind reference",
		Long: `Print a JSON Schema (draft-07) for editor validation and completion, e.g. with
the VS Code YAML extension:

  # yaml-language-server: $schema=./runbook.schema.json

The runbook schema includes the parameters of every step kind this drbook
knows. Published copies live in runbooks/schema/.

"drbook schema kinds" prints the reference of every built-in step kind in
Markdown (published as docs/kinds.md).`,
		Example: `  drbook schema runbook > runbook.schema.json
  drbook schema kinds`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"runbook", "inventory", "drill", "config", "kinds"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "kinds" {
				_, err := cmd.OutOrStdout().Write(kindsMarkdown(newRegistry()))
				return err
			}
			b, err := schemaJSON(args[0])
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}

func schemaJSON(which string) ([]byte, error) {
	var s map[string]any
	switch which {
	case "runbook":
		s = runbooks.RunbookSchema(newRegistry())
	case "inventory":
		s = runbooks.InventorySchema()
	case "drill":
		s = runbooks.DrillSchema()
	case "config":
		s = runbooks.OperatorConfigSchema()
	default:
		return nil, usageError{fmt.Errorf("schema: want runbook, inventory, drill, config or kinds, not %q", which)}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
