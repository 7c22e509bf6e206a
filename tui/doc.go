// Package tui is drbook's terminal UI: a bubbletea v2 program with a runbook
// picker, input forms (huh; one input per page, node inputs offering only
// the nodes their label and distinct_from leave, then a review of every
// answer before the run starts), a live run screen, red typed confirmations before
// danger steps, failure and interrupt prompts, a list of runs to resume, and a
// read-only replay of a recorded run.
//
// The TUI never executes a step. It renders the engine's events (delivered
// through a Bridge, which buffers them so the engine never waits on the
// screen) and answers the engine's operator requests (Operator) by showing a
// prompt and blocking the engine's goroutine until the person answers or the
// run's context ends. Interactive and headless runs therefore produce the
// same record.
//
// Layout follows soft-serve's pkg/ui: a small Component interface, one Common
// struct with the size, styles, keys and clock shared by every component, and
// only the root Model returns a tea.View.
package tui
