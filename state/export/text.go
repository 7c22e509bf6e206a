package export

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/state/termsafe"
)

// Text writes a plain-text replay of a run: header, the event timeline with
// offsets from the first event, the step executions, the time split and the
// verification result (rep may be nil when not verified). Every string from
// the record is made harmless for a terminal (package termsafe): one line
// each, controls shown visibly.
func Text(w io.Writer, run state.Run, events []state.Event, execs []state.Exec, rep *state.VerifyReport) error {
	ew := &errWriter{w: w}
	ew.printf("Run %s: %s", tc(run.ID), tc(run.RunbookName))
	if run.RunbookTitle != "" {
		ew.printf(" (%s)", tc(run.RunbookTitle))
	}
	ew.printf("\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  runbook\t%s\tsha256 %s\n", tc(run.RunbookPath), tc(short(run.RunbookSHA256)))
	if run.InventoryPath != "" || run.InventorySHA256 != "" {
		fmt.Fprintf(tw, "  inventory\t%s\tsha256 %s\n", tc(run.InventoryPath), tc(short(run.InventorySHA256)))
	}
	fmt.Fprintf(tw, "  mode\t%s\tstatus %s\n", tc(run.Mode), tc(string(run.Status)))
	fmt.Fprintf(tw, "  created\t%s\tfinished %s\n", fmtTime(run.CreatedAt), fmtTime(run.FinishedAt))
	fmt.Fprintf(tw, "  runner\t%s@%s\tpid %d\n", tc(run.User), tc(run.Host), run.PID)
	for _, k := range sortedKeys(run.Labels) {
		fmt.Fprintf(tw, "  label\t%s\t%s\n", tc(k), oneLine(maskString(run.Labels[k])))
	}
	tw.Flush()

	ew.printf("\nEvents\n")
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	var start = run.CreatedAt
	if len(events) > 0 {
		start = events[0].Time
	}
	for _, ev := range events {
		off := ev.Time.Sub(start)
		fmt.Fprintf(tw, "  %d\t+%s\t%s\t%s\t%s\n", ev.Seq, fmtOffset(off), tc(string(ev.Type)), tc(where(ev)), oneLine(summary(ev)))
	}
	tw.Flush()

	ew.printf("\nSteps\n")
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  STEP\tTARGET\tATTEMPT\tSTATUS\tSTART\tDURATION\tEXIT\n")
	for _, x := range execs {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\t%d\n", tc(x.StepID), tc(dash(x.Target)), x.Attempt, tc(string(x.Status)), fmtTime(x.StartedAt), fmtDur(execDuration(x)), x.ExitCode)
	}
	tw.Flush()
	for _, x := range execs {
		outs := maskedOutputs(x)
		for _, k := range sortedKeys(outs) {
			ew.printf("  output %s@%s: %s = %s\n", tc(x.StepID), tc(dash(x.Target)), tc(k), oneLine(outs[k]))
		}
	}
	cmds := commands(events)
	for _, x := range execs {
		// The command that ran and what it printed (bounded); for an
		// execution cut short, what it printed before it stopped: what
		// tells whether it took effect.
		lines, cut := boundedLog(x.Log)
		ew.printf("\n  output of %s %s@%s#%d (%d line(s)):\n", tc(string(x.Status)), tc(x.StepID), tc(dash(x.Target)), x.Attempt, lineCount(x.Log))
		if c := cmds[execKey(x)]; c != "" {
			ew.printf("    $ %s\n", maskString(oneLine(c)))
		}
		for _, l := range lines {
			ew.printf("    %s\n", l)
		}
		if cut != "" {
			ew.printf("    %s\n", cut)
		}
	}

	if apps := runlog.Fold(events).Approvals; len(apps) > 0 {
		ew.printf("\nApprovals\n")
		for _, a := range apps {
			ew.printf("  %s: request #%d, %d approval(s) needed, run by %s\n", tc(a.StepID), a.Seq, a.Request.Approvals, tc(a.Request.Operator.String()))
			for _, c := range a.Request.Commands {
				ew.printf("    on %s: %s\n", tc(dash(c.Target)), maskString(oneLine(c.Command)))
			}
			// Grants and refusals in the order they were submitted.
			gi, ri := 0, 0
			for gi < len(a.Granted) || ri < len(a.Refused) {
				if ri >= len(a.Refused) || (gi < len(a.Granted) && !a.Refused[ri].SubmittedAt.Before(a.Granted[gi].SubmittedAt)) {
					g := a.Granted[gi]
					ew.printf("    approved by %s at %s (signed, namespace %s)\n", tc(g.Approver.String()), fmtTime(g.SubmittedAt), tc(g.Namespace))
					gi++
					continue
				}
				r := a.Refused[ri]
				ew.printf("    refused %s at %s: %s\n", tc(r.Approver.String()), fmtTime(r.SubmittedAt), oneLine(r.Reason))
				ri++
			}
		}
	}

	t := runTiming(events, execs)
	ew.printf("\nTime: machine %s, human %s, wall %s (%s)\n", fmtMS(t.MachineMS), fmtMS(t.HumanMS), fmtMS(t.WallMS), t.Source)
	ew.printf("Verification: %s\n", tc(verifyLine(rep)))
	return ew.err
}

// fmtOffset formats an offset as h:mm:ss.mmm.
func fmtOffset(d time.Duration) string {
	ms := d.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	return fmt.Sprintf("%d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// oneLine shows s on one line, harmless for a terminal: newlines as ⏎,
// tabs as spaces, other controls visibly (termsafe.Cell).
func oneLine(s string) string {
	return termsafe.Cell(strings.ReplaceAll(s, "\r\n", "\n"))
}

// tc is termsafe.Cell: a field of the record as one harmless table cell.
func tc(s string) string { return termsafe.Cell(s) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter remembers the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
