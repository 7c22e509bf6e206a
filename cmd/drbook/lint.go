package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/library"
	"github.com/drbook/drbook/state/termsafe"
)

func newLintCmd(a *app) *cobra.Command {
	var invPath, answersPath string
	cmd := &cobra.Command{
		Use:   "lint [FILE...]",
		Short: "Validate runbooks (and an inventory and answers) without running anything",
		Long: `Validate runbooks and report every problem as file:line:col: message.

A file whose top-level kind is Inventory is checked as an inventory; one
whose kind is Drill is checked as a drill (docs/drills.md), together with
the runbook it names; one whose kind is Config as an operator config
(docs/config.md). Without files, every shipped runbook and drill is
checked. With -i,
node names in runbooks are checked against it; with --answers, the answers
are checked against each runbook's inputs. Nothing is written anywhere.

Every file is read up to 4 MiB, whatever it is (/dev/stdin included); a
file that is not UTF-8, nests deeper than 64 levels or expands aliases past
100000 nodes is refused at file:line:col before it is parsed further.

Warnings (file:line:col: warning: message; "severity": "warning" in JSON)
point at likely mistakes, such as a quoted value put inside quotes in a
command; they do not change the exit code. Errors exit 1.

Every step has a time limit per attempt: a step without timeout: gets its
kind's default (shell 10m, wait 5m, agent.* and plugin kinds 10m; confirm
and input wait for a person and have none). Write timeout: none to opt out
explicitly; only timeout accepts none.`,
		Example: "  drbook lint runbooks/library/*.yaml\n  drbook lint recover.yaml -i prod.yaml --answers answers.yaml",
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				// No files: lint every shipped runbook.
				for _, n := range library.Names() {
					args = append(args, library.Prefix+n)
				}
				for _, n := range library.DrillNames() {
					args = append(args, "drill:"+n)
				}
			}
			reg := newRegistry()
			var all runbooks.Diagnostics
			var other []error
			collect := func(err error) {
				var ds runbooks.Diagnostics
				switch {
				case err == nil:
				case errors.As(err, &ds):
					all = append(all, ds...)
				default:
					other = append(other, err)
				}
			}
			inv, err := loadInventory(invPath)
			collect(err)
			answers, err := loadAnswers(answersPath)
			collect(err)
			for _, f := range args {
				if n, ok := strings.CutPrefix(f, "drill:"); ok {
					src, name, err := readDrill(library.DrillPrefix + n)
					if err == nil {
						var warn runbooks.Diagnostics
						warn, err = a.lintDrill(name, src, reg, inv)
						all = append(all, warn...)
					}
					collect(err)
					continue
				}
				src, name, err := readRunbook(f)
				if err != nil {
					collect(err)
					continue
				}
				if isDrill(src) {
					warn, err := a.lintDrill(name, src, reg, inv)
					all = append(all, warn...)
					collect(err)
					continue
				}
				if isInventory(src) {
					_, err := runbooks.ParseInventory(name, src)
					collect(err)
					continue
				}
				if isOperatorConfig(src) || a.isConfigFile(name) {
					_, err := runbooks.ParseOperatorConfig(name, src)
					collect(err)
					continue
				}
				rb, err := loadRunbookSource(name, src, reg, inv, a.pluginDirs()...)
				collect(err)
				if rb != nil {
					all = append(all, rb.Warnings...)
				}
				if err == nil && answers != nil {
					_, _, err := runbooks.ResolveInputs(rb, inv, answers, false)
					collect(err)
				}
			}
			problems := 0 // errors; warnings alone leave the exit code 0
			for _, d := range all {
				if !d.IsWarning() {
					problems++
				}
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				doc := jsonapi.Lint{Header: jsonapi.NewHeader(), OK: problems == 0 && len(other) == 0, Problems: make([]jsonapi.Diagnostic, 0, len(all)), Errors: errStrings(other)}
				for _, d := range all {
					sev := "error"
					if d.IsWarning() {
						sev = "warning"
					}
					doc.Problems = append(doc.Problems, jsonapi.Diagnostic{File: d.File, Line: d.Pos.Line, Col: d.Pos.Col, Message: d.Message, Severity: sev})
				}
				if err := writeJSON(out, doc); err != nil {
					return err
				}
			} else {
				// Messages quote the files' own text: shown harmless.
				for _, d := range all {
					fmt.Fprintln(out, termsafe.Line(d.String()))
				}
				for _, e := range other {
					fmt.Fprintln(out, termsafe.Text(e.Error()))
				}
				if problems == 0 && len(other) == 0 {
					fmt.Fprintf(out, "ok: %d file(s) valid", len(args))
					if len(all) > 0 {
						fmt.Fprintf(out, ", %d warning(s)", len(all))
					}
					fmt.Fprintln(out)
				}
			}
			if problems > 0 {
				return fmt.Errorf("%w: %d problem(s) (%w)", errSilent, problems, errLintProblems)
			}
			if len(other) > 0 {
				return fmt.Errorf("%w: %w", errSilent, errors.Join(other...))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&invPath, "inventory", "i", "", "inventory to check node names against")
	cmd.Flags().StringVar(&answersPath, "answers", "", "answers file to check against each runbook's inputs")
	return cmd
}

func errStrings(errs []error) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// isInventory tells inventories from runbooks by their kind line (a BOM and
// CRLF line ends allowed).
func isInventory(src []byte) bool {
	for _, line := range splitLines(bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))) {
		if strings.TrimSuffix(line, "\r") == "kind: Inventory" {
			return true
		}
	}
	return false
}

// isConfigFile reports whether path is the operator config file this
// command reads (--config, $DRBOOK_CONFIG or the default path): linted as
// a config whether or not it says kind: Config.
func (a *app) isConfigFile(path string) bool {
	if a.settings == nil || a.settings.ConfigPath == "" {
		return false
	}
	p, err1 := filepath.Abs(path)
	c, err2 := filepath.Abs(a.settings.ConfigPath)
	if err1 != nil || err2 != nil {
		return false
	}
	if p == c {
		return true
	}
	pi, err1 := os.Stat(p)
	ci, err2 := os.Stat(c)
	return err1 == nil && err2 == nil && os.SameFile(pi, ci)
}

// isOperatorConfig reports whether src says kind: Config (an operator
// config, docs/config.md).
func isOperatorConfig(src []byte) bool {
	for _, line := range splitLines(bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))) {
		if strings.TrimSuffix(line, "\r") == "kind: Config" {
			return true
		}
	}
	return false
}

func splitLines(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return append(out, string(b[start:]))
}
