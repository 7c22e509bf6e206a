package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
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

// printer renders engine events for headless runs: readable lines, or one
// JSON object per event with --output json. It is the headless twin of the
// TUI: both consume the same event stream. Every string of an event (node
// output, runbook text, errors) goes through package termsafe in text mode,
// and through termsafe.JSON in JSON mode, so nothing a node prints reaches
// the terminal as a control character.
type printer struct {
	w      io.Writer
	json   bool
	color  bool
	starts map[string]time.Time
}

func newPrinter(w io.Writer, output string) *printer {
	_, noColor := os.LookupEnv("NO_COLOR")
	isTTY := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			isTTY = true
		}
	}
	return &printer{w: w, json: output == "json", color: isTTY && !noColor, starts: map[string]time.Time{}}
}

func (p *printer) paint(code, s string) string {
	if !p.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p *printer) observe(ev engine.Event) {
	if _, ok := ev.(engine.Recorded); ok {
		// The printer says what happens as it happens (the other events);
		// the record's events are for the views that fold them.
		return
	}
	if p.json {
		p.jsonLine(ev)
		return
	}
	switch e := ev.(type) {
	case engine.RunStarted:
		verb := "run"
		if e.Resumed {
			verb = "resume"
		}
		fmt.Fprintf(p.w, "%s %s: %s (%d steps)\n", p.paint("1", verb), ts(e.RunID), ts(e.Runbook), len(e.Steps))
		if e.RTO > 0 {
			fmt.Fprintf(p.w, "  RTO budget %s, clock started %s\n", e.RTO, e.RTOSince.Local().Format("15:04:05"))
		}
	case engine.RTOCrossed:
		fmt.Fprintf(p.w, "  %s RTO budget %s crossed at %s: %s since the clock started (machine %s, waiting on operator %s)\n",
			p.paint("31;1", "!! OVER BUDGET:"), e.Budget, e.Time.Local().Format("15:04:05"), e.Elapsed.Round(time.Millisecond),
			e.Machine.Round(time.Millisecond), e.Human.Round(time.Millisecond))
	case engine.StepPending:
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
	case engine.StepStarted:
		p.starts[e.StepID+"\x00"+e.Target] = e.Time
	case engine.OutputLine:
		prefix := "  │ "
		if e.Target != "" {
			prefix = fmt.Sprintf("  │ %s: ", ts(e.Target))
		}
		fmt.Fprintf(p.w, "%s%s\n", p.paint("2", prefix), ts(e.Line))
	case engine.StepFinished:
		glyph := p.paint("32", "✓")
		if e.Status != "succeeded" {
			glyph = p.paint("31", "✗")
		}
		where := ""
		if e.Target != "" {
			where = " on " + ts(e.Target)
		}
		line := fmt.Sprintf("  %s %s%s %s (%s)", glyph, ts(e.StepID), where, ts(string(e.Status)), e.Duration.Round(time.Millisecond))
		if e.Err != "" {
			line += ": " + ts(e.Err)
		}
		if len(e.Outputs) > 0 {
			line += " " + formatOutputs(e.Outputs)
		}
		fmt.Fprintln(p.w, line)
	case engine.StepDone:
		if e.Restored {
			fmt.Fprintf(p.w, "  %s %s already %s (from the record)\n", p.paint("32", "✓"), ts(e.StepID), ts(string(e.Status)))
		} else if e.Status == "skipped" {
			fmt.Fprintf(p.w, "  - %s skipped: %s\n", ts(e.StepID), ts(e.Reason))
		}
	case engine.Notice:
		fmt.Fprintf(p.w, "  %s %s\n", p.paint("33", "!"), tsBlock(e.Text, "    "))
	case engine.NeedsOperator:
		fmt.Fprintf(p.w, "  ? %s\n", tsBlock(e.Prompt, "    "))
	case engine.RunFinished:
		status := p.paint("32;1", ts(string(e.Status)))
		if e.Status != "succeeded" {
			status = p.paint("31;1", ts(string(e.Status)))
		}
		fmt.Fprintf(p.w, "%s %s in %s (machine %s, waiting on operator %s)\n", status, e.RunID,
			(e.Machine + e.Human).Round(time.Millisecond), e.Machine.Round(time.Millisecond), e.Human.Round(time.Millisecond))
	}
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

func (p *printer) jsonLine(ev engine.Event) {
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
// jsonapi), nil for an event the stream does not carry.
func streamEvent(ev engine.Event) any {
	h := func(name string, t time.Time) jsonapi.EventHeader {
		return jsonapi.EventHeader{Header: jsonapi.NewHeader(), Event: name, Time: jsonapi.Time(t)}
	}
	switch e := ev.(type) {
	case engine.RunStarted:
		name := jsonapi.EvRunCreated
		if e.Resumed {
			name = jsonapi.EvRunResumed
		}
		steps := e.Steps
		if steps == nil {
			steps = []string{}
		}
		return jsonapi.RunStartedEvent{EventHeader: h(name, e.Time), RunID: e.RunID, Runbook: e.Runbook, Title: e.Title, Inventory: e.Inventory, Steps: steps,
			RTOBudgetMS: jsonapi.MS(e.RTO), RTOSince: jsonapi.Time(e.RTOSince)}
	case engine.RTOCrossed:
		return jsonapi.RTOCrossedEvent{EventHeader: h(jsonapi.EvRTOCrossed, e.Time), RunID: e.RunID, RTOBudgetMS: jsonapi.MS(e.Budget),
			ElapsedMS: jsonapi.MS(e.Elapsed), MachineMS: jsonapi.MS(e.Machine), HumanMS: jsonapi.MS(e.Human)}
	case engine.StepPending:
		targets := e.Targets
		if targets == nil {
			targets = []string{}
		}
		return jsonapi.StepPendingEvent{EventHeader: h(jsonapi.EvStepPending, e.Time), StepID: e.StepID, Title: e.Title, Kind: e.Kind,
			Targets: targets, Items: e.Items, Nodes: e.Nodes, Danger: e.Danger, TimeoutMS: timeoutMS(e.Timeout)}
	case engine.StepStarted:
		return jsonapi.StepStartedEvent{EventHeader: h(jsonapi.EvStepStarted, e.Time), StepID: e.StepID, Target: e.Target, Attempt: e.Attempt, Summary: e.Summary}
	case engine.OutputLine:
		stream := "stdout"
		if e.Stderr {
			stream = "stderr"
		}
		return jsonapi.StepOutputEvent{EventHeader: h(jsonapi.EvStepOutput, e.Time), StepID: e.StepID, Target: e.Target, Stream: stream, Line: e.Line, Raw: e.Raw}
	case engine.StepFinished:
		return jsonapi.StepFinishedEvent{EventHeader: h(jsonapi.EvStepFinished, e.Time), StepID: e.StepID, Target: e.Target, Attempt: e.Attempt,
			Status: string(e.Status), ExitCode: e.ExitCode, Error: e.Err, DurationMS: jsonapi.MS(e.Duration), Outputs: e.Outputs}
	case engine.StepDone:
		return jsonapi.StepDoneEvent{EventHeader: h(jsonapi.EvStepDone, e.Time), StepID: e.StepID, Status: string(e.Status), Restored: e.Restored, Reason: e.Reason}
	case engine.NeedsOperator:
		return jsonapi.OperatorWaitingEvent{EventHeader: h(jsonapi.EvOperatorWaiting, e.Time), Kind: e.Kind, StepID: e.StepID, Prompt: e.Prompt}
	case engine.WaitOver:
		return jsonapi.OperatorWaitEvent{EventHeader: h(jsonapi.EvOperatorWait, e.Time), Kind: e.Kind, StepID: e.StepID, Response: e.Response, DurationMS: jsonapi.MS(e.Waited)}
	case engine.Notice:
		return jsonapi.NoteEvent{EventHeader: h(jsonapi.EvNote, e.Time), StepID: e.StepID, Target: e.Target, Text: e.Text}
	case engine.RunFinished:
		return jsonapi.RunFinishedEvent{EventHeader: h(jsonapi.EvRunFinished, e.Time), RunID: e.RunID, Status: string(e.Status), Error: e.Err,
			MachineMS: jsonapi.MS(e.Machine), HumanMS: jsonapi.MS(e.Human)}
	}
	return nil
}

// timeoutMS is a time limit in milliseconds, nil for none.
func timeoutMS(d runbooks.Duration) *int64 {
	if d.None() || d == 0 {
		return nil
	}
	ms := jsonapi.MS(d.D())
	return &ms
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
			ConfirmReason: s.ConfirmReason, TimeoutMS: planTimeoutMS(s.Timeout), Note: s.Note,
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
