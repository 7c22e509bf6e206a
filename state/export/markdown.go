package export

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/termsafe"
)

// Markdown writes an audit report of a run: a header table, the steps table
// (step, target, attempt, status, start, duration, exit), the operator
// decisions and waits, the human versus machine time, the verification
// result, and finally every note (EvNote) verbatim, in order. Sealed values
// are shown as Mask. Every string from the record is made harmless for a
// terminal (package termsafe), so the report can be read with cat.
func Markdown(w io.Writer, run state.Run, events []state.Event, execs []state.Exec, rep *state.VerifyReport) error {
	ew := &errWriter{w: w}
	title := run.RunbookTitle
	if title == "" {
		title = run.RunbookName
	}
	ew.printf("# Run %s: %s\n\n", mdCode(run.ID), mdCell(title))
	ew.printf("| | |\n|---|---|\n")
	row := func(k, v string) { ew.printf("| %s | %s |\n", k, v) }
	row("Runbook", mdCode(run.RunbookName)+" ("+mdCode(run.RunbookPath)+")")
	row("Runbook SHA-256", mdCode(run.RunbookSHA256))
	if run.InventoryPath != "" || run.InventorySHA256 != "" {
		row("Inventory", mdCode(run.InventoryPath))
		row("Inventory SHA-256", mdCode(run.InventorySHA256))
	}
	row("Mode", mdCell(run.Mode))
	row("Status", "**"+mdCell(string(run.Status))+"**")
	row("Created", fmtTime(run.CreatedAt))
	row("Finished", fmtTime(run.FinishedAt))
	row("Runner", mdCell(fmt.Sprintf("%s@%s (pid %d)", run.User, run.Host, run.PID)))
	for _, k := range sortedKeys(run.Labels) {
		row("Label "+mdCode(k), mdCell(maskString(run.Labels[k])))
	}
	row("Events", fmt.Sprintf("%d (head %s)", run.HeadSeq, mdCode(short(run.HeadHash))))

	ew.printf("\n## Steps\n\n")
	if len(execs) == 0 {
		ew.printf("No step was executed.\n")
	} else {
		ew.printf("| Step | Target | Attempt | Status | Start | Duration | Exit |\n|---|---|---:|---|---|---:|---:|\n")
		for _, x := range execs {
			ew.printf("| %s | %s | %d | %s | %s | %s | %d |\n", mdCode(x.StepID), mdCell(dash(x.Target)), x.Attempt,
				mdCell(string(x.Status)), fmtTime(x.StartedAt), fmtDur(execDuration(x)), x.ExitCode)
		}
		var errs []string
		for _, x := range execs {
			if x.Error != "" {
				errs = append(errs, fmt.Sprintf("- %s on %s (attempt %d): %s", mdCode(x.StepID), mdCell(dash(x.Target)), x.Attempt, mdCell(maskString(x.Error))))
			}
		}
		if len(errs) > 0 {
			ew.printf("\nErrors:\n\n%s\n", strings.Join(errs, "\n"))
		}
		ew.printf("\n## Commands and output\n")
		cmds := commands(events)
		for _, x := range execs {
			ew.printf("\n### %s on %s (attempt %d, %s)\n\n", mdCode(x.StepID), mdCell(dash(x.Target)), x.Attempt, mdCell(string(x.Status)))
			if c := cmds[execKey(x)]; c != "" {
				ew.printf("Command: %s\n\n", mdCode(maskString(c)))
			}
			lines, cut := boundedLog(x.Log)
			if len(lines) == 0 {
				ew.printf("No output.\n")
				continue
			}
			if x.Status == state.StatusInterrupted || x.Status == state.StatusSkipped {
				// What an execution cut short printed: what tells whether
				// it took effect.
				ew.printf("Output before it stopped:\n\n")
			}
			fence := "```"
			for strings.Contains(x.Log, fence) {
				fence += "`"
			}
			ew.printf("%s\n%s\n%s\n", fence, strings.Join(lines, "\n"), fence)
			if cut != "" {
				ew.printf("\n%s\n", mdCell(cut))
			}
		}
	}

	ew.printf("\n## Operator decisions\n\n")
	var n int
	for _, ev := range events {
		var kind, detail, by string
		var dur string = "-"
		switch ev.Type {
		case state.EvStepDecision:
			var p state.StepDecision
			if ev.Decode(&p) != nil {
				continue
			}
			kind, detail, by = "decision: "+p.Decision, maskString(p.Reason), p.By
			if len(p.Outputs) > 0 {
				names := make([]string, 0, len(p.Outputs))
				for k := range p.Outputs {
					names = append(names, k)
				}
				sort.Strings(names)
				detail += " (outputs set: " + strings.Join(names, ", ") + ")"
			}
		case state.EvOperatorWait:
			var p state.OperatorWait
			if ev.Decode(&p) != nil {
				continue
			}
			kind, by, dur = "wait: "+p.Kind, p.By, fmtMS(p.DurationMS)
			detail = maskString(p.Prompt)
			if p.Response != "" {
				detail += " → " + maskString(p.Response)
			}
		case state.EvAnswer:
			var p state.Answer
			if ev.Decode(&p) != nil {
				continue
			}
			v := maskString(p.Value)
			if p.Secret {
				v = Mask
			}
			kind, detail = "answer", p.Name+" = "+v
			if p.Changed {
				kind, by = "answer changed on resume", p.By
				detail += " — " + maskString(p.Reason)
			}
		default:
			continue
		}
		if n == 0 {
			ew.printf("| Seq | Time | Step | Kind | Detail | By | Waited |\n|---:|---|---|---|---|---|---:|\n")
		}
		n++
		ew.printf("| %d | %s | %s | %s | %s | %s | %s |\n", ev.Seq, fmtTime(ev.Time), mdCell(dash(where(ev))), mdCell(kind), mdCell(detail), mdCell(dash(by)), dur)
	}
	if n == 0 {
		ew.printf("None recorded.\n")
	}

	t := runTiming(events, execs)
	ew.printf("\n## Time\n\n| | |\n|---|---|\n")
	row("Machine time", fmtMS(t.MachineMS))
	row("Human time", fmtMS(t.HumanMS))
	row("Wall clock", fmtMS(t.WallMS))
	row("Source", t.Source)

	ew.printf("\n## Verification\n\n")
	switch {
	case rep == nil:
		ew.printf("Not verified.\n")
	case rep.OK:
		ew.printf("**OK**: %d events, hash chain intact from the genesis to the recorded head.\n", rep.Events)
	default:
		ew.printf("**FAILED**: %s (first bad event: %d, %d events read). This record was altered or is incomplete.\n", mdCell(rep.Reason), rep.FirstBadSeq, rep.Events)
	}

	if ns := notes(events); len(ns) > 0 {
		ew.printf("\n## Notes\n")
		for _, note := range ns {
			ew.printf("\n%s\n", termsafe.Text(strings.TrimRight(maskString(note.Text), "\n")))
			for _, k := range sortedKeys(note.Data) {
				v := maskString(note.Data[k])
				if strings.Contains(v, "\n") || len(v) > 200 {
					// An attachment (a report file): named, not inlined.
					ew.printf("- %s: attached (%d bytes; drbook replay --format json holds it)\n", mdCode(k), len(v))
					continue
				}
				ew.printf("- %s: %s\n", mdCode(k), mdCell(v))
			}
		}
	}
	return ew.err
}

// mdCell makes s safe inside a table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "\\", "\\\\")
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return termsafe.Cell(strings.ReplaceAll(s, "\n", "<br>"))
}

// mdCode renders s as inline code ("-" when empty).
func mdCode(s string) string {
	if s == "" {
		return "-"
	}
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\n", " ")
	return "`" + termsafe.Cell(strings.ReplaceAll(s, "`", "'")) + "`"
}
