package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// interactiveRequest is what the TUI is asked to open: a runbook to run, a
// run to resume or replay, or (all empty) the picker.
type interactiveRequest struct {
	Runbook, Inventory, Answers string
	ResumeID, ReplayID          string
}

// runInteractive opens the terminal UI. (Placeholder until the tui package
// lands: it owns this file.)
func runInteractive(cmd *cobra.Command, a *app, req interactiveRequest) error {
	_ = cmd
	_ = a
	_ = req
	return usageError{fmt.Errorf("the interactive TUI is not built yet: pass --headless")}
}
