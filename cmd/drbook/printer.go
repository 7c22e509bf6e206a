package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/export"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/state/termsafe"
)

// ts makes one line of text that came from a node, a runbook or the record
// harmless for the terminal (see package termsafe).
func ts(s string) string { return termsafe.Line(s) }

// tsBlock shows runbook text that may span lines (a confirm message, a
// notice): each line harmless, continuation lines indented by indent, a
// trailing newline dropped.
func tsBlock(s, indent string) string {
	lines := strings.Split(strings.TrimRight(termsafe.Text(s), "\n"), "\n")
	return strings.Join(lines, "\n"+indent)
}

func tsList(xs []string) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = ts(x)
	}
	return strings.Join(out, ", ")
}

// printer renders a run's events for headless runs: readable lines, or one
// JSON object per event with --output json. It is the headless twin of the
// TUI's run screen: both take the engine's events (package runlog) and
// fold the recorded ones with runlog, as replay folds the record. Every
// string of an event (node output, runbook text, errors) goes through
// package termsafe in text mode, and through termsafe.JSON in JSON mode,
// so nothing a node prints reaches the terminal as a control character.
type printer struct {
	w     io.Writer
	json  bool
	color bool
	// steps is the number of steps of the runbook, for the first line.
	steps int
	fold  *runlog.Folder
}

func newPrinter(w io.Writer, output string, steps int) *printer {
	_, noColor := os.LookupEnv("NO_COLOR")
	isTTY := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			isTTY = true
		}
	}
	fold := runlog.NewFolder()
	fold.DropLogs() // output lines are printed as they come
	return &printer{w: w, json: output == "json", color: isTTY && !noColor, steps: steps, fold: fold}
}

func (p *printer) paint(code, s string) string {
	if !p.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p *printer) observe(ev runlog.Event) {
	if r, ok := ev.(runlog.Recorded); ok {
		p.fold.Apply(r.Event)
		if r.Prior {
			return // history a resume hands over: folded, not news
		}
	}
	if p.json {
		p.jsonLine(ev)
		return
	}
	switch e := ev.(type) {
	case runlog.Recorded:
		p.recorded(e.Event)
	case runlog.StepPending:
		danger := ""
		if e.Danger {
			danger = p.paint("31;1", " [DANGER]")
		}
		on := ""
		switch {
		case e.Items && len(e.Targets) > 0:
			on = " for each of " + tsList(e.Targets)
			if len(e.Nodes) > 0 && !slices.Equal(e.Nodes, e.Targets) {
				on += " on " + tsList(e.Nodes)
			}
		case len(e.Targets) > 0:
			on = " on " + tsList(e.Targets)
		}
		fmt.Fprintf(p.w, "%s %s (%s)%s%s\n", p.paint("1", "▶"), ts(e.StepID), ts(e.Kind), on, danger)
	case runlog.OutputLine:
		prefix := "  │ "
		if e.Target != "" {
			prefix = fmt.Sprintf("  │ %s: ", ts(e.Target))
		}
		fmt.Fprintf(p.w, "%s%s\n", p.paint("2", prefix), ts(e.Line))
	case runlog.Notice:
		fmt.Fprintf(p.w, "  %s %s\n", p.paint("33", "!"), tsBlock(e.Text, "    "))
	case runlog.Question:
		fmt.Fprintf(p.w, "  ? %s\n", tsBlock(e.Prompt, "    "))
	}
}

// recorded prints a line for an event of the record, as the fold has it.
func (p *printer) recorded(ev state.Event) {
	switch ev.Type {
	case state.EvRunCreated, state.EvRunResumed:
		verb := "run"
		if ev.Type == state.EvRunResumed {
			verb = "resume"
		}
		h := p.fold.View().Header
		fmt.Fprintf(p.w, "%s %s: %s (%d steps)\n", p.paint("1", verb), ts(ev.RunID), ts(h.RunbookName), p.steps)
		if h.RTO != nil {
			fmt.Fprintf(p.w, "  RTO budget %s, clock started %s\n", time.Duration(h.RTO.BudgetMS)*time.Millisecond, h.RTO.Since.Local().Format("15:04:05"))
		}
		if ev.Type != state.EvRunResumed {
			return
		}
		// What the record already settled is not run again.
		for _, s := range p.fold.View().Steps {
			if s.Status == state.StatusSucceeded || s.Status == state.StatusSkipped {
				fmt.Fprintf(p.w, "  %s %s already %s (from the record)\n", p.paint("32", "✓"), ts(s.ID), ts(string(s.Status)))
			}
		}
	case state.EvStepFinished:
		_, execs, ok := p.fold.Step(ev.StepID)
		if !ok {
			return
		}
		for _, x := range execs {
			if x.Target == ev.Target && x.Attempt == ev.Attempt {
				p.finished(x)
			}
		}
	case state.EvNote:
		var n state.Note
		if ev.Decode(&n) != nil || n.Data["kind"] != engine.NoteRTOCrossed {
			return
		}
		ms := func(k string) time.Duration {
			v, _ := strconv.ParseInt(n.Data[k], 10, 64)
			return time.Duration(v) * time.Millisecond
		}
		fmt.Fprintf(p.w, "  %s RTO budget %s crossed at %s: %s since the clock started (machine %s, waiting on operator %s)\n",
			p.paint("31;1", "!! OVER BUDGET:"), ms("budget_ms"), ev.Time.Local().Format("15:04:05"), ms("elapsed_ms"), ms("machine_ms"), ms("human_ms"))
	case state.EvStepDecision:
		var d state.StepDecision
		if ev.Decode(&d) != nil {
			return
		}
		if d.Decision == state.DecisionSkip && ev.Attempt == 0 {
			// A skip of no attempt skips the whole step.
			fmt.Fprintf(p.w, "  - %s skipped: %s\n", ts(ev.StepID), ts(d.Reason))
			return
		}
		text := ev.StepID
		if ev.Target != "" {
			text += " on " + ev.Target
		}
		text += ": " + d.Decision
		if d.Reason != "" {
			text += " — " + d.Reason
		}
		if d.By != "" {
			text += " (by " + d.By + ")"
		}
		fmt.Fprintf(p.w, "  %s %s\n", p.paint("33", "!"), tsBlock(text, "    "))
	case state.EvApprovalRequested:
		var r state.ApprovalRequested
		if ev.Decode(&r) != nil {
			return
		}
		fmt.Fprintf(p.w, "  %s %s waits for approval by %s (request #%d); this will run:\n",
			p.paint("33;1", "⧗"), ts(ev.StepID), ts(r.Who()), ev.Seq)
		for _, c := range r.Commands {
			target := c.Target
			if target == "" {
				target = "the operator's machine"
			}
			fmt.Fprintf(p.w, "    on %s: %s\n", ts(target), tsBlock(c.Command, "      "))
		}
		fmt.Fprintf(p.w, "    approver runs: %s\n", ts(engine.ApproveCommand(ev.RunID, ev.StepID)))
	case state.EvApprovalGranted:
		var g state.ApprovalGranted
		if ev.Decode(&g) == nil {
			fmt.Fprintf(p.w, "  %s approved by %s (%d of %d)\n", p.paint("32", "✓"), ts(g.Approver.String()), g.Count, g.Needed)
		}
	case state.EvApprovalRefused:
		var r state.ApprovalRefused
		if ev.Decode(&r) == nil {
			fmt.Fprintf(p.w, "  %s approval refused: %s: %s\n", p.paint("31", "✗"), ts(r.Approver.String()), ts(r.Reason))
		}
	case state.EvRunFinished:
		h := p.fold.View().Header
		status := p.paint("32;1", ts(string(h.Status)))
		if h.Status != state.StatusSucceeded {
			status = p.paint("31;1", ts(string(h.Status)))
		}
		ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
		fmt.Fprintf(p.w, "%s %s in %s (machine %s, waiting on operator %s)\n", status, ts(ev.RunID),
			ms(h.MachineMS+h.HumanMS), ms(h.MachineMS), ms(h.HumanMS))
	}
}

// finished prints one step execution's end: status, duration, error and
// outputs (secret ones masked).
func (p *printer) finished(x runlog.Exec) {
	glyph := p.paint("32", "✓")
	if x.Status != state.StatusSucceeded {
		glyph = p.paint("31", "✗")
	}
	where := ""
	if x.Target != "" {
		where = " on " + ts(x.Target)
	}
	line := fmt.Sprintf("  %s %s%s %s (%s)", glyph, ts(x.StepID), where, ts(string(x.Status)), x.Duration().Round(time.Millisecond))
	if x.Error != "" {
		line += ": " + ts(x.Error)
	}
	if len(x.Outputs) > 0 {
		shown := make(map[string]string, len(x.Outputs))
		for k, v := range x.Outputs {
			shown[k] = v
			if slices.Contains(x.SecretOutputs, k) {
				shown[k] = engine.Mask
			}
		}
		line += " " + formatOutputs(shown)
	}
	fmt.Fprintln(p.w, line)
}

func formatOutputs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = ts(k) + "=" + ts(m[k])
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func (p *printer) jsonLine(ev runlog.Event) {
	v := streamEvent(ev)
	if v == nil {
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return
	}
	_, _ = p.w.Write(termsafe.JSON(buf.Bytes()))
}

// streamEvent is the line of the JSON event stream for ev (package
// jsonapi): a recorded event as the record holds it, or an in-memory one.
func streamEvent(ev runlog.Event) any {
	h := func(name string, t time.Time) jsonapi.EventHeader {
		return jsonapi.EventHeader{Header: jsonapi.NewHeader(), Event: name, Time: jsonapi.Time(t)}
	}
	switch e := ev.(type) {
	case runlog.Recorded:
		r := e.Event
		return jsonapi.RecordEvent{EventHeader: h(string(r.Type), r.Time), RunID: r.RunID, Seq: r.Seq, StepID: r.StepID,
			Target: r.Target, Attempt: r.Attempt, Data: export.EventData(r), PrevHash: r.PrevHash, Hash: r.Hash}
	case runlog.StepPending:
		targets := e.Targets
		if targets == nil {
			targets = []string{}
		}
		var timeout *int64
		if e.Timeout > 0 {
			ms := jsonapi.MS(e.Timeout)
			timeout = &ms
		}
		return jsonapi.StepPendingEvent{EventHeader: h(jsonapi.EvStepPending, e.Time), StepID: e.StepID, Title: e.Title, Kind: e.Kind,
			Targets: targets, Items: e.Items, Nodes: e.Nodes, Danger: e.Danger, TimeoutMS: timeout}
	case runlog.OutputLine:
		stream := "stdout"
		if e.Stderr {
			stream = "stderr"
		}
		return jsonapi.OutputLineEvent{EventHeader: h(jsonapi.EvOutputLine, e.Time), StepID: e.StepID, Target: e.Target, Stream: stream, Line: e.Line, Raw: e.Raw}
	case runlog.Question:
		return jsonapi.OperatorWaitingEvent{EventHeader: h(jsonapi.EvOperatorWaiting, e.Time), Kind: e.Kind, StepID: e.StepID, Prompt: e.Prompt}
	case runlog.Notice:
		return jsonapi.NoticeEvent{EventHeader: h(jsonapi.EvNotice, e.Time), StepID: e.StepID, Target: e.Target, Text: e.Text}
	}
	return nil
}

// planTimeoutMS parses a plan's timeout ("30s", "none") into milliseconds.
func planTimeoutMS(s string) *int64 {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return nil
	}
	ms := jsonapi.MS(d)
	return &ms
}

// planDoc is the JSON document of a plan.
func planDoc(rb *runbooks.Runbook, plan []engine.PlannedStep) jsonapi.Plan {
	doc := jsonapi.Plan{Header: jsonapi.NewHeader(), Runbook: rb.Name, SHA256: rb.SHA256, Steps: make([]jsonapi.PlanStep, 0, len(plan))}
	for _, s := range plan {
		doc.Steps = append(doc.Steps, jsonapi.PlanStep{
			ID: s.ID, Title: s.Title, Kind: s.Kind, Danger: s.Danger, Targets: s.Targets, Params: s.Params, PerTarget: s.PerTarget,
			Check: s.Check, When: s.When, Runs: s.Runs, Pending: s.Pending, Serial: s.Serial, Confirm: s.Confirm,
			ConfirmReason: s.ConfirmReason, Approvals: s.Approvals, Approvers: s.Approvers, TimeoutMS: planTimeoutMS(s.Timeout), Note: s.Note,
		})
	}
	return doc
}

// printPlan shows a plan as text or JSON. In text, commands read as they
// will run: rendered as far as the answers and the inventory allow, a
// multi-line value line by line, what depends on earlier steps left as its
// {{ … }}, and each guard's value when the answers fix it.
func printPlan(w io.Writer, output string, rb *runbooks.Runbook, plan []engine.PlannedStep) error {
	if output == "json" {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // commands keep 2>&1, not 2\u003e\u00261
		if err := enc.Encode(planDoc(rb, plan)); err != nil {
			return err
		}
		_, err := w.Write(termsafe.JSON(buf.Bytes()))
		return err
	}
	fmt.Fprintf(w, "plan for %s (%s), %d steps, nothing will be executed\n\n", ts(rb.Name), ts(rb.Title), len(plan))
	for i, s := range plan {
		danger := ""
		if s.Danger {
			danger = fmt.Sprintf("  [DANGER: type %s]", ts(s.Confirm))
		}
		fmt.Fprintf(w, "%2d. %s  (%s)%s\n", i+1, ts(s.ID), ts(s.Kind), danger)
		if s.Title != "" {
			fmt.Fprintf(w, "    %s\n", ts(s.Title))
		}
		if len(s.Targets) > 0 {
			serial := ""
			if s.Serial > 0 {
				serial = fmt.Sprintf(" (%d at a time)", s.Serial)
			}
			fmt.Fprintf(w, "    on: %s%s\n", tsList(s.Targets), serial)
		}
		if s.When != "" {
			verdict := "decided when the step is reached"
			if s.Runs != nil && *s.Runs {
				verdict = "runs"
			} else if s.Runs != nil {
				verdict = "skipped: when is false"
			}
			fmt.Fprintf(w, "    when: %s  → %s\n", ts(s.When), verdict)
		}
		if s.ConfirmReason != "" {
			fmt.Fprintf(w, "    why %s: %s\n", ts(s.Confirm), ts(s.ConfirmReason))
		}
		if s.Approvals > 0 {
			who := state.ApprovalRequested{Approvals: s.Approvals, Approvers: s.Approvers}.Who()
			fmt.Fprintf(w, "    needs approval by %s before it runs (drbook approve RUN %s)\n", ts(who), ts(s.ID))
		}
		fmt.Fprintf(w, "    time limit: %s per attempt\n", ts(s.Timeout))
		for _, k := range sortedKeys(s.Params) {
			if _, per := s.PerTarget[firstKey(s.PerTarget)][k]; !per {
				printPlanValue(w, "    ", k, s.Params[k])
			}
		}
		if s.Check != "" {
			printPlanValue(w, "    ", "check", s.Check)
		}
		for _, node := range sortedKeys(s.PerTarget) {
			fmt.Fprintf(w, "    on %s:\n", ts(node))
			printPlanValues(w, "      ", s.PerTarget[node])
		}
		if len(s.Pending) > 0 {
			fmt.Fprintf(w, "    filled in at run time: %s\n", tsList(s.Pending))
		}
		if s.Note != "" {
			fmt.Fprintf(w, "    (%s)\n", ts(s.Note))
		}
	}
	return nil
}

// firstKey is the first key of m in order ("" when empty).
func firstKey[V any](m map[string]V) string {
	if keys := sortedKeys(m); len(keys) > 0 {
		return keys[0]
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// printPlanValues prints parameters in key order, one per line.
func printPlanValues(w io.Writer, indent string, m map[string]any) {
	for _, k := range sortedKeys(m) {
		printPlanValue(w, indent, k, m[k])
	}
}

// printPlanValue prints one parameter as text: a string as itself (line by
// line under its key when it has several lines), a map as nested keys, a
// list of plain values as [a, b], anything else as JSON.
func printPlanValue(w io.Writer, indent, key string, v any) {
	switch x := v.(type) {
	case string:
		lines := strings.Split(strings.TrimRight(x, "\n"), "\n")
		if len(lines) == 1 {
			fmt.Fprintf(w, "%s%s: %s\n", indent, ts(key), ts(lines[0]))
			return
		}
		fmt.Fprintf(w, "%s%s:\n", indent, ts(key))
		for _, l := range lines {
			fmt.Fprintf(w, "%s  %s\n", indent, ts(l))
		}
		return
	case map[string]any:
		fmt.Fprintf(w, "%s%s:\n", indent, ts(key))
		printPlanValues(w, indent+"  ", x)
		return
	case []string:
		fmt.Fprintf(w, "%s%s: [%s]\n", indent, ts(key), tsList(x))
		return
	case []any:
		items := make([]string, 0, len(x))
		for _, e := range x {
			switch e.(type) {
			case string, bool, int64, json.Number:
				items = append(items, fmt.Sprint(e))
			}
		}
		if len(items) == len(x) {
			fmt.Fprintf(w, "%s%s: [%s]\n", indent, ts(key), tsList(items))
			return
		}
	case nil:
		fmt.Fprintf(w, "%s%s:\n", indent, ts(key))
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	fmt.Fprintf(w, "%s%s: %s\n", indent, ts(key), ts(strings.TrimSpace(buf.String())))
}

// writeJSON writes v as indented JSON, with the characters a terminal could
// obey escaped (termsafe.JSON): the data is unchanged.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(termsafe.JSON(buf.Bytes()))
	return err
}
