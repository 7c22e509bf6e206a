package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/library"
	"github.com/drbook/drbook/steps"
)

// isDrill tells drill files from runbooks by their kind line.
func isDrill(src []byte) bool {
	for _, line := range splitLines(bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))) {
		if strings.TrimSuffix(line, "\r") == "kind: Drill" {
			return true
		}
	}
	return false
}

// readDrill reads a drill file, or a shipped one given as library:NAME (or
// just NAME when no such file exists).
func readDrill(path string) ([]byte, string, error) {
	if strings.HasPrefix(path, library.DrillPrefix) {
		src, ok := library.DrillSource(path)
		if !ok {
			return nil, "", fmt.Errorf("no shipped drill %q (shipped: %s)", strings.TrimPrefix(path, library.DrillPrefix), strings.Join(library.DrillNames(), ", "))
		}
		return src, path, nil
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if src, ok := library.DrillSource(path); ok {
			return src, library.DrillPrefix + path, nil
		}
	}
	src, err := runbooks.ReadFile(path)
	return src, path, err
}

// drillPath resolves a path written in a drill: library:NAME stays as it
// is, a relative path is relative to the drill file (a shipped drill's are
// relative to the working directory).
func drillPath(dr *runbooks.Drill, p string) string {
	if p == "" || strings.HasPrefix(p, library.Prefix) || filepath.IsAbs(p) || strings.HasPrefix(dr.File, library.DrillPrefix) {
		return p
	}
	return filepath.Join(filepath.Dir(dr.File), p)
}

// lintDrill checks a drill file and the runbook it names (against inv, or
// the drill's own inventory when it needs no drill values). It returns the
// runbook's warnings too.
func (a *app) lintDrill(name string, src []byte, reg *steps.Registry, inv *runbooks.Inventory) (runbooks.Diagnostics, error) {
	dr, err := runbooks.ParseDrill(name, src)
	if err != nil {
		return nil, err
	}
	if inv == nil && dr.Inventory != "" && !strings.Contains(dr.Inventory, "${") {
		if inv, err = loadInventory(drillPath(dr, dr.Inventory)); err != nil {
			return nil, fmt.Errorf("%s:%d:%d: inventory: %w", name, dr.At("inventory").Line, dr.At("inventory").Col, err)
		}
	}
	if dr.Lab != nil {
		inv = nil // the lab writes its own inventory
	}
	rb, err := a.loadRunbook(drillPath(dr, dr.Runbook), reg, inv)
	if err != nil {
		return nil, fmt.Errorf("%s:%d:%d: runbook %s: %w", name, dr.At("runbook").Line, dr.At("runbook").Col, dr.Runbook, err)
	}
	return rb.Warnings, runbooks.CheckDrillAnswers(dr, rb)
}
