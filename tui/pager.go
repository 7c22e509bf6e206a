package tui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// Record reads the recorded output of one step of a run: every execution's
// status and masked log, folded from the record's events (ChainRecord,
// live; a replay's events in memory), never from the database's caches.
type Record interface {
	StepLogs(ctx context.Context, runID, stepID string) ([]state.Exec, error)
}

// StepEventSource reads one step's events of a run's record (*state.DB).
type StepEventSource interface {
	StepEvents(ctx context.Context, runID, stepID string) ([]state.Event, error)
}

// ChainRecord is the Record of a live run: it folds the step's events of
// the record with runlog, as replay does.
type ChainRecord struct{ Source StepEventSource }

// StepLogs implements Record.
func (c ChainRecord) StepLogs(ctx context.Context, runID, stepID string) ([]state.Exec, error) {
	evs, err := c.Source.StepEvents(ctx, runID, stepID)
	if err != nil {
		return nil, err
	}
	return stepExecs(evs, stepID), nil
}

// replayRecord reads step logs from a replay's events (already in memory).
type replayRecord struct{ r *Replay }

func (rr replayRecord) StepLogs(_ context.Context, _, stepID string) ([]state.Exec, error) {
	return stepExecs(rr.r.Events, stepID), nil
}

// stepExecs folds events and returns the executions of step stepID that
// ran, in start order.
func stepExecs(evs []state.Event, stepID string) []state.Exec {
	v := runlog.Fold(evs)
	var out []state.Exec
	for _, x := range v.Execs {
		if x.StepID == stepID && x.Ran {
			out = append(out, x.Exec)
		}
	}
	return out
}

// pagerReadyMsg says the step's output is in a private file for the pager.
type pagerReadyMsg struct {
	path string
	err  error
}

// pagerDoneMsg says the pager exited (its file is removed).
type pagerDoneMsg struct{ err error }

// openPager writes the whole output of step i (from the record, and the
// tail kept on screen for what the record does not have yet) to a private
// temporary file, off the UI goroutine.
func (v *RunView) openPager(i int) tea.Cmd {
	if i < 0 || i >= len(v.steps) {
		return nil
	}
	s := v.steps[i]
	job := pagerJob{
		ctx: v.ctx, rec: v.record, runID: v.runID, stepID: s.id, title: s.title,
		snap: s.out.lines(nil), first: s.out.first(),
	}
	v.note = "opening the output of " + s.id + " in the pager…"
	return func() tea.Msg {
		path, err := job.write()
		return pagerReadyMsg{path: path, err: err}
	}
}

// runPager hands the terminal to $PAGER (less when unset) on the file, and
// removes the file when it exits.
func (v *RunView) runPager(msg pagerReadyMsg) tea.Cmd {
	if msg.err != nil {
		v.note = "pager: " + clean(msg.err.Error())
		return nil
	}
	v.note = ""
	pager := strings.Fields(os.Getenv("PAGER"))
	if len(pager) == 0 {
		pager = []string{"less"}
	}
	// #nosec G204 -- the operator's own $PAGER, on a file drbook wrote.
	cmd := exec.Command(pager[0], append(pager[1:], msg.path)...)
	path := msg.path
	return tea.ExecProcess(cmd, func(err error) tea.Msg {
		rmErr := os.Remove(path)
		return pagerDoneMsg{err: errors.Join(err, rmErr)}
	})
}

// pagerJob is what the pager file is written from: a copy, so the UI can
// go on while it is written.
type pagerJob struct {
	ctx                  context.Context
	rec                  Record
	runID, stepID, title string
	snap                 []outLine
	first                int
}

// write writes the file (mode 0600) and returns its path.
func (j pagerJob) write() (path string, err error) {
	f, err := os.CreateTemp("", "drbook-output-*.txt")
	if err != nil {
		return "", fmt.Errorf("pager file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("pager file: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(f.Name())
			path = ""
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return "", fmt.Errorf("pager file: %w", err)
	}
	w := bufio.NewWriter(f)
	j.render(w)
	if err := w.Flush(); err != nil {
		return "", fmt.Errorf("pager file: %w", err)
	}
	return f.Name(), nil
}

type attemptKey struct {
	target  string
	attempt int
}

// render writes the file's text; write errors stick in w and come out of
// its Flush.
func (j pagerJob) render(w *bufio.Writer) {
	head := "drbook · run " + orDash(j.runID) + " · step " + j.stepID
	if j.title != "" {
		head += " — " + clean(j.title)
	}
	_, _ = w.WriteString(head + "\n")
	var execs []state.Exec
	switch {
	case j.rec == nil || j.runID == "":
		_, _ = w.WriteString("(the record is not available here: only the lines kept on screen follow)\n")
	default:
		ctx, cancel := context.WithTimeout(j.ctx, 30*time.Second)
		var err error
		execs, err = j.rec.StepLogs(ctx, j.runID, j.stepID)
		cancel()
		if err != nil {
			_, _ = w.WriteString("(could not read the record: " + clean(err.Error()) + "; only the lines kept on screen follow)\n")
		}
	}
	// The screen's lines by attempt, in the order they came.
	var order []attemptKey
	byKey := map[attemptKey][]outLine{}
	heads := map[attemptKey]bool{}
	for _, l := range j.snap {
		k := attemptKey{l.target, l.attempt}
		if l.kind == lineHead {
			heads[k] = true
		}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
			byKey[k] = nil
		}
		if l.kind != lineHead {
			byKey[k] = append(byKey[k], l)
		}
	}
	recorded := map[attemptKey]bool{}
	for _, x := range execs {
		k := attemptKey{x.Target, x.Attempt}
		if x.Status == state.StatusRunning {
			continue // not finished: its output is only on screen so far
		}
		recorded[k] = true
		line := fmt.Sprintf("\n▸ %s · attempt %d · %s", orOperator(x.Target), x.Attempt, x.Status)
		if x.ExitCode != 0 {
			line += fmt.Sprintf(" · exit %d", x.ExitCode)
		}
		if x.Error != "" {
			line += " · " + x.Error
		}
		_, _ = w.WriteString(clean(line[1:]) + "\n")
		log := x.Log
		for log != "" {
			var l string
			l, log, _ = strings.Cut(log, "\n")
			_, _ = w.WriteString(clean(l) + "\n")
		}
		if logTruncated(x.Log) && len(byKey[k]) > 0 {
			_, _ = fmt.Fprintf(w, "(the record keeps the start of each attempt's output; the last %d lines kept on screen follow)\n", len(byKey[k]))
			writeLines(w, byKey[k])
		}
	}
	for _, k := range order {
		if recorded[k] {
			continue
		}
		lines := byKey[k]
		if k.attempt == 0 && len(lines) > 0 && lines[0].kind == lineNotice {
			writeLines(w, lines)
			continue
		}
		_, _ = fmt.Fprintf(w, "▸ %s · attempt %d · not in the record yet (still running, or the run stopped before it was recorded)\n", orOperator(k.target), k.attempt)
		if !heads[k] && j.first > 0 {
			_, _ = w.WriteString("(its earlier lines were not kept on screen; the record has them once the attempt finishes)\n")
		}
		writeLines(w, lines)
	}
}

// logTruncated reports whether a recorded log ends with the engine's
// truncation marker ("[output truncated…]").
func logTruncated(log string) bool {
	log = strings.TrimRight(log, "\n")
	last := log[strings.LastIndexByte(log, '\n')+1:]
	return strings.HasPrefix(last, "[output truncated")
}

func writeLines(w *bufio.Writer, lines []outLine) {
	for _, l := range lines {
		switch l.kind {
		case lineStderr:
			_, _ = w.WriteString("! " + l.text + "\n")
		default:
			_, _ = w.WriteString(l.text + "\n")
		}
	}
}
