package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// annJSON marks a command that has a JSON form (docs/json.md): with
// --output json it prints one document of package jsonapi (or, for run and
// resume, the JSON event stream). Every other command refuses -o json with
// exit 2 rather than ignore it.
const annJSON = "drbook/json"

// withJSON marks cmd as having a JSON form and returns it.
func withJSON(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annJSON] = "yes"
	return cmd
}

// checkJSONOutput refuses --output json for a command, or a mode of one
// (the terminal UI), that has no JSON form.
func checkJSONOutput(cmd *cobra.Command) error {
	if cmd.Annotations[annJSON] == "" {
		return fmt.Errorf("%s has no JSON output: drop --output json (see docs/json.md for the commands that have one)", cmd.CommandPath())
	}
	if wantsTUI(cmd) {
		return fmt.Errorf("%s --tui has no JSON output: drop --tui or --output json", cmd.CommandPath())
	}
	if f := cmd.Flags().Lookup("headless"); f != nil && f.Value.String() != "true" {
		return fmt.Errorf("%s without --headless opens the terminal UI, which has no JSON output: add --headless", cmd.CommandPath())
	}
	return nil
}

// jsonCommands are the commands with a JSON form, by path. All others
// (abort, demo, schema, trust, lab down, lab disaster, the TUI) refuse
// --output json with exit 2.
var jsonCommands = []string{
	"drbook lint", "drbook plan", "drbook run", "drbook resume", "drbook runs", "drbook replay", "drbook verify",
	"drbook rehearse", "drbook runbooks", "drbook plugins list", "drbook lab up", "drbook lab status", "drbook version", "drbook config",
}

// markJSONCommands marks the commands of jsonCommands under root.
func markJSONCommands(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, p := range jsonCommands {
			if c.CommandPath() == p {
				withJSON(c)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
