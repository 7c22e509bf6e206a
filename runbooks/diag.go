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
	// Severity is empty for an error and SeverityWarning for a warning: a
	// likely mistake that does not stop the document from loading.
	Severity string `json:"severity,omitempty"`
}

// SeverityWarning marks a Diagnostic that is a warning, not an error.
const SeverityWarning = "warning"

// IsWarning reports whether d is a warning.
func (d Diagnostic) IsWarning() bool { return d.Severity == SeverityWarning }

// String formats d as file:line:col: message, the form editors understand;
// a warning reads file:line:col: warning: message.
func (d Diagnostic) String() string {
	msg := d.Message
	if d.IsWarning() {
		msg = "warning: " + msg
	}
	if d.Pos.IsZero() {
		return fmt.Sprintf("%s: %s", d.File, msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Pos.Line, d.Pos.Col, msg)
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
	// droppedErrors counts the errors among them (not warnings).
	droppedErrors int
}

func (d *diags) add(p Pos, format string, args ...any) {
	if len(d.list) >= maxDiagnostics {
		d.dropped++
		d.droppedErrors++
		return
	}
	d.list = append(d.list, Diagnostic{File: d.file, Pos: p, Message: fmt.Sprintf(format, args...)})
}

// warn records a warning: reported by lint, never a reason to refuse.
func (d *diags) warn(p Pos, format string, args ...any) {
	if len(d.list) >= maxDiagnostics {
		d.dropped++
		return
	}
	d.list = append(d.list, Diagnostic{File: d.file, Pos: p, Message: fmt.Sprintf(format, args...), Severity: SeverityWarning})
}

// err returns nil when there is no error (warnings alone are not one), or
// every diagnostic, warnings included, sorted, as an error. Problems past
// maxDiagnostics are counted in a last entry.
func (d *diags) err() error {
	failed := d.droppedErrors > 0
	for _, x := range d.list {
		if !x.IsWarning() {
			failed = true
			break
		}
	}
	if !failed {
		return nil
	}
	out := d.list.sorted()
	if d.dropped > 0 {
		var last Pos
		if len(out) > 0 {
			last = out[len(out)-1].Pos
		}
		out = append(out[:len(out):len(out)], Diagnostic{File: d.file, Pos: last, Message: fmt.Sprintf("%d more problem(s) not shown (only the first %d are kept)", d.dropped, maxDiagnostics)})
	}
	return out
}

// warnings returns the warnings, sorted.
func (d *diags) warnings() Diagnostics {
	var out Diagnostics
	for _, x := range d.list {
		if x.IsWarning() {
			out = append(out, x)
		}
	}
	return out.sorted()
}
