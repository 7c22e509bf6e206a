package runbooks

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Pos is a 1-based line and column in a source file. The zero Pos means
// "position unknown".
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// IsZero reports whether p carries no position.
func (p Pos) IsZero() bool { return p.Line == 0 }

// Diagnostic is one problem found in a runbook, inventory or answers file.
type Diagnostic struct {
	File    string `json:"file"`
	Pos     Pos    `json:"pos"`
	Message string `json:"message"`
}

// String formats d as file:line:col: message, the form editors understand.
func (d Diagnostic) String() string {
	if d.Pos.IsZero() {
		return fmt.Sprintf("%s: %s", d.File, d.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Pos.Line, d.Pos.Col, d.Message)
}

// ErrInvalid is wrapped by every *Diagnostics error: the document was refused
// before anything ran.
var ErrInvalid = errors.New("invalid document")

// Diagnostics is the error returned when a document has problems. It holds all
// of them, sorted by position.
type Diagnostics []Diagnostic

// Error joins every diagnostic, one per line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is(err, ErrInvalid) match.
func (ds Diagnostics) Unwrap() error { return ErrInvalid }

func (ds Diagnostics) sorted() Diagnostics {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		return a.Pos.Col < b.Pos.Col
	})
	return ds
}

// maxDiagnostics bounds the problems kept for one file: a hostile file can
// hold tens of thousands, and nobody reads past the first few hundred.
const maxDiagnostics = 1000

// diags collects diagnostics for one file.
type diags struct {
	file    string
	list    Diagnostics
	dropped int // problems found after maxDiagnostics
}

func (d *diags) add(p Pos, format string, args ...any) {
	if len(d.list) >= maxDiagnostics {
		d.dropped++
		return
	}
	d.list = append(d.list, Diagnostic{File: d.file, Pos: p, Message: fmt.Sprintf(format, args...)})
}

// err returns nil or the sorted diagnostics as an error.
func (d *diags) err() error {
	if len(d.list) == 0 {
		return nil
	}
	out := d.list.sorted()
	if d.dropped > 0 {
		last := out[len(out)-1].Pos
		out = append(out[:len(out):len(out)], Diagnostic{File: d.file, Pos: last, Message: fmt.Sprintf("%d more problem(s) not shown (only the first %d are kept)", d.dropped, maxDiagnostics)})
	}
	return out
}
