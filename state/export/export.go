// Package export renders a recorded run (from package state) for people and
// programs: a plain-text replay (Text), one JSON document (JSON) and a
// Markdown audit report (Markdown). Renderers never unseal: every sealed
// value, every secret answer and every output named secret is shown as
// Mask.
package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// Mask replaces every secret value in exports.
const Mask = "••••••"

// sealedRE matches a sealed value anywhere in a text.
const sealedRE = `sealed:v[0-9]+:[A-Za-z0-9+/=]*`

// maskString replaces every sealed value in s (the whole of s, or a part of
// a longer text) with Mask.
func maskString(s string) string {
	if !strings.Contains(s, state.SealedPrefix) {
		return s
	}
	return regexp.MustCompile(sealedRE).ReplaceAllLiteralString(s, Mask)
}

// maskValue replaces sealed strings anywhere in a decoded JSON value.
func maskValue(v any) any {
	switch x := v.(type) {
	case string:
		return maskString(x)
	case []any:
		for i := range x {
			x[i] = maskValue(x[i])
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = maskValue(e)
		}
		return x
	}
	return v
}

// maskedData decodes an event payload with every sealed string (and the
// value of a secret answer, and outputs named secret) replaced by Mask. A
// payload that is not JSON is returned as a JSON string.
func maskedData(ev state.Event) any {
	if len(ev.Data) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return maskString(string(ev.Data))
	}
	v = maskValue(v)
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	switch ev.Type {
	case state.EvAnswer:
		if s, _ := m["secret"].(bool); s {
			if val, ok := m["value"].(string); ok && val != "" {
				m["value"] = Mask
			}
		}
	case state.EvStepFinished, state.EvStepDecision:
		outs, _ := m["outputs"].(map[string]any)
		secrets, _ := m["secret_outputs"].([]any)
		for _, name := range secrets {
			if n, ok := name.(string); ok {
				if _, has := outs[n]; has {
					outs[n] = Mask
				}
			}
		}
	}
	return m
}

// nothingToMask reports whether ev's payload is valid JSON with nothing
// maskedData would mask: no sealed value, not an answer, no secret output.
func nothingToMask(ev state.Event) bool {
	if bytes.Contains(ev.Data, []byte(state.SealedPrefix)) {
		return false
	}
	switch ev.Type {
	case state.EvAnswer:
		return false
	case state.EvStepFinished, state.EvStepDecision:
		if i := bytes.Index(ev.Data, []byte(`"secret_outputs":[`)); i >= 0 && !bytes.HasPrefix(ev.Data[i:], []byte(`"secret_outputs":[]`)) {
			return false
		}
	}
	return json.Valid(ev.Data)
}

// maskedOutputs returns an exec's outputs with secret ones masked.
func maskedOutputs(x state.Exec) map[string]string {
	if len(x.Outputs) == 0 {
		return nil
	}
	secret := map[string]bool{}
	for _, n := range x.SecretOutputs {
		secret[n] = true
	}
	out := make(map[string]string, len(x.Outputs))
	for k, v := range x.Outputs {
		if secret[k] {
			v = Mask
		}
		out[k] = maskString(v)
	}
	return out
}

// Timing is the split of a run's time into machine and human time.
type Timing struct {
	MachineMS int64  `json:"machine_ms"`
	HumanMS   int64  `json:"human_ms"`
	WallMS    int64  `json:"wall_ms"`
	Source    string `json:"source"` // "run.finished" or "computed"
}

// runTiming takes the figures recorded by run.finished when present, else
// sums step durations (machine) and operator waits (human).
func runTiming(events []state.Event, execs []state.Exec) Timing {
	var t Timing
	if len(events) > 0 {
		t.WallMS = events[len(events)-1].Time.Sub(events[0].Time).Milliseconds()
	}
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Type == state.EvRunFinished {
			var f state.RunFinished
			if events[i].Decode(&f) == nil && (f.MachineMS != 0 || f.HumanMS != 0) {
				t.MachineMS, t.HumanMS, t.Source = f.MachineMS, f.HumanMS, "run.finished"
				return t
			}
			break
		}
	}
	t.Source = "computed"
	for _, ev := range events {
		switch ev.Type {
		case state.EvOperatorWait:
			var w state.OperatorWait
			if ev.Decode(&w) == nil {
				t.HumanMS += w.DurationMS
			}
		case state.EvStepFinished:
			var f state.StepFinished
			if ev.Decode(&f) == nil {
				t.MachineMS += f.DurationMS
			}
		}
	}
	if t.MachineMS == 0 {
		for _, x := range execs {
			if !x.StartedAt.IsZero() && !x.FinishedAt.IsZero() {
				t.MachineMS += x.FinishedAt.Sub(x.StartedAt).Milliseconds()
			}
		}
	}
	return t
}

// execDuration is an exec's duration, or 0 if unfinished.
func execDuration(x state.Exec) time.Duration {
	if x.StartedAt.IsZero() || x.FinishedAt.IsZero() {
		return 0
	}
	return x.FinishedAt.Sub(x.StartedAt)
}

// fmtTime formats t for reports ("-" for zero).
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

// fmtDur formats d rounded to milliseconds ("-" for zero).
func fmtDur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

func fmtMS(ms int64) string {
	if ms == 0 {
		return "0s"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// summary is a one-line description of an event for timelines.
func summary(ev state.Event) string {
	switch ev.Type {
	case state.EvRunCreated:
		var p state.RunCreated
		if ev.Decode(&p) == nil {
			s := fmt.Sprintf("runbook %s, mode %s, by %s@%s pid %d", p.RunbookName, p.Mode, p.User, p.Host, p.PID)
			return s + actorSuffix(p.Actor)
		}
	case state.EvRunResumed:
		var p state.RunResumed
		if ev.Decode(&p) == nil {
			s := fmt.Sprintf("by %s@%s pid %d", p.User, p.Host, p.PID) + actorSuffix(p.Actor)
			if p.AcceptChanged {
				s += ", runbook change accepted (sha256 " + short(p.RunbookSHA256) + ")"
			}
			if p.Runbook != nil {
				s += ", goes on with runbook " + p.Runbook.Path
			}
			if p.Inventory != nil {
				s += ", goes on with inventory " + p.Inventory.Path
			}
			return s
		}
	case state.EvAnswer:
		var p state.Answer
		if ev.Decode(&p) == nil {
			v := maskString(p.Value)
			if p.Secret {
				v = Mask
			}
			if p.Changed {
				return fmt.Sprintf("%s = %s (changed on resume by %s: %s)", p.Name, v, p.By, maskString(p.Reason))
			}
			return fmt.Sprintf("%s = %s", p.Name, v)
		}
	case state.EvApprovalRequested:
		var p state.ApprovalRequested
		if ev.Decode(&p) == nil {
			who := "anyone allowed"
			if len(p.Approvers) > 0 {
				who = strings.Join(p.Approvers, ", ")
			}
			return fmt.Sprintf("waits for %d approval(s) by %s; run by %s; on %s; commands sha256 %s; chain head %d",
				p.Approvals, who, p.Operator, strings.Join(p.Targets(), ","), short(p.CommandsSHA256), p.HeadSeq)
		}
	case state.EvApprovalGranted:
		var p state.ApprovalGranted
		if ev.Decode(&p) == nil {
			return fmt.Sprintf("approved by %s, request #%d (%d of %d)", p.Approver, p.RequestSeq, p.Count, p.Needed)
		}
	case state.EvApprovalRefused:
		var p state.ApprovalRefused
		if ev.Decode(&p) == nil {
			return fmt.Sprintf("refused %s: %s", p.Approver, p.Reason)
		}
	case state.EvStepStarted:
		var p state.StepStarted
		if ev.Decode(&p) == nil {
			s := p.Title
			if p.Kind != "" {
				s += " [" + p.Kind + "]"
			}
			if p.Danger {
				s += " DANGER"
			}
			return s
		}
	case state.EvStepFinished:
		var p state.StepFinished
		if ev.Decode(&p) == nil {
			s := fmt.Sprintf("%s exit %d in %s", p.Status, p.ExitCode, fmtMS(p.DurationMS))
			if p.Error != "" {
				s += ": " + maskString(p.Error)
			}
			return s
		}
	case state.EvStepDecision:
		var p state.StepDecision
		if ev.Decode(&p) == nil {
			s := p.Decision
			if p.Reason != "" {
				s += ": " + maskString(p.Reason)
			}
			if p.By != "" {
				s += " (by " + p.By + ")"
			}
			if len(p.Outputs) > 0 {
				names := make([]string, 0, len(p.Outputs))
				for k := range p.Outputs {
					names = append(names, k)
				}
				sort.Strings(names)
				s += ", outputs set: " + strings.Join(names, ", ")
			}
			return s
		}
	case state.EvStepOutput:
		var p state.StepOutput
		if ev.Decode(&p) == nil {
			return fmt.Sprintf("output so far: %d bytes (log at %d)", len(p.Bytes()), p.Offset)
		}
	case state.EvOperatorWait:
		var p state.OperatorWait
		if ev.Decode(&p) == nil {
			s := fmt.Sprintf("%s %q -> %q after %s", p.Kind, maskString(p.Prompt), maskString(p.Response), fmtMS(p.DurationMS))
			if p.By != "" {
				s += " (by " + p.By + ")"
			}
			return s
		}
	case state.EvRunFinished:
		var p state.RunFinished
		if ev.Decode(&p) == nil {
			s := fmt.Sprintf("%s (machine %s, human %s)", p.Status, fmtMS(p.MachineMS), fmtMS(p.HumanMS))
			if p.Error != "" {
				s += ": " + maskString(p.Error)
			}
			return s
		}
	case state.EvNote:
		var p state.Note
		if ev.Decode(&p) == nil {
			first, _, _ := strings.Cut(p.Text, "\n")
			return maskString(first)
		}
	case state.EvRunHandover:
		var p state.RunHandover
		if ev.Decode(&p) == nil {
			return fmt.Sprintf("%s takes the run over from %s (who held it since seq %d)", p.To.Describe(), p.From.Describe(), p.FromSeq)
		}
	case state.EvRecordSigned:
		var p state.RecordSigned
		if ev.Decode(&p) == nil {
			who := ""
			if p.Actor != nil {
				who = " by " + p.Actor.String()
			}
			what := p.Reason
			if p.StepID != "" {
				what += " " + p.StepID
			}
			return fmt.Sprintf("signed seq %d (%s)%s with %s", p.Seq, what, who, p.Key)
		}
	}
	b, _ := json.Marshal(maskedData(ev))
	return string(b)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// where renders step@target#attempt for step events.
func where(ev state.Event) string {
	if ev.StepID == "" {
		return ""
	}
	s := ev.StepID
	if ev.Target != "" {
		s += "@" + ev.Target
	}
	if ev.Attempt > 0 {
		s += fmt.Sprintf("#%d", ev.Attempt)
	}
	return s
}

// verifyLine renders a verification result.
func verifyLine(rep *state.VerifyReport) string {
	switch {
	case rep == nil:
		return "not verified"
	case rep.OK:
		return fmt.Sprintf("OK: %d events, hash chain intact", rep.Events)
	default:
		return fmt.Sprintf("FAILED: %s (%d events read)", rep.Reason, rep.Events)
	}
}

// notes returns the Note payloads of events, in order.
func notes(events []state.Event) []state.Note {
	var out []state.Note
	for _, ev := range events {
		if ev.Type != state.EvNote {
			continue
		}
		var n state.Note
		if ev.Decode(&n) == nil {
			out = append(out, n)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Bounds of the output shown per execution in text and Markdown replays;
// the JSON export and the pager carry whole logs.
const (
	maxLogLines = 60
	maxLogBytes = 8 << 10
)

// commands returns the command summary of each execution, from its
// step.started event (keyed step/target/attempt).
func commands(events []state.Event) map[string]string {
	out := map[string]string{}
	for _, x := range runlog.Fold(events).Execs {
		out[execKey(x.Exec)] = x.Summary
	}
	return out
}

func execKey(x state.Exec) string {
	return fmt.Sprintf("%s\x00%s\x00%d", x.StepID, x.Target, x.Attempt)
}

// boundedLog splits an execution's log into at most maxLogLines lines and
// maxLogBytes bytes, secrets masked; cut says what was left out ("" when
// nothing was).
func boundedLog(log string) (lines []string, cut string) {
	if log == "" {
		return nil, ""
	}
	all := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	size := 0
	for i, l := range all {
		if i == maxLogLines || size+len(l) > maxLogBytes {
			rest := 0
			for _, r := range all[i:] {
				rest += len(r) + 1
			}
			return lines, fmt.Sprintf("[%d more line(s), %d bytes, not shown: drbook replay --format json has the whole log]", len(all)-i, rest)
		}
		size += len(l) + 1
		lines = append(lines, maskString(oneLine(l)))
	}
	return lines, ""
}

// lineCount is the number of lines of a log (0 for none).
func lineCount(log string) int {
	if log == "" {
		return 0
	}
	return strings.Count(strings.TrimSuffix(log, "\n"), "\n") + 1
}

// actorSuffix is ", uid N, key K" (or ", unsigned") for an event that names
// its actor; "" for older records.
func actorSuffix(a *state.Actor) string {
	if a == nil {
		return ""
	}
	s := fmt.Sprintf(", uid %d", a.UID)
	if a.Key != "" {
		return s + ", signs with " + a.Key
	}
	return s + ", unsigned"
}

// EventData is an event's payload as exports show it: JSON with sealed
// values and secret answers and outputs masked (what the headless JSON
// stream and the JSON export carry as "data"). A payload with nothing to
// mask is returned as recorded: a live run's JSON stream prints every
// event, and decoding and encoding each again costs more than its append.
func EventData(ev state.Event) any {
	if len(ev.Data) > 0 && nothingToMask(ev) {
		return json.RawMessage(ev.Data)
	}
	return maskedData(ev)
}
