// Package rehearsal holds the result of a disaster-recovery drill and renders
// it: Markdown for people, JSON for tools, and an SVG timeline with one bar
// per step and target. The drill itself (lab, disaster, recovery run) is
// driven by `drbook rehearse`.
package rehearsal

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
	"time"
)

// Report is what a rehearsal measured.
type Report struct {
	RunID string `json:"run_id"`
	// Drill is the drill file's name (agent-total-loss, ...).
	Drill    string    `json:"drill,omitempty"`
	Runbook  string    `json:"runbook"`
	Scenario string    `json:"scenario"`
	Nodes    int       `json:"nodes"`
	Status   string    `json:"status"`
	Started  time.Time `json:"started"`

	// Keys in the key store: loaded before the backup, written after it,
	// and present after the recovery.
	KeysAtBackup    int       `json:"keys_at_backup"`
	KeysAfterBackup int       `json:"keys_written_after_backup"`
	KeysBefore      int       `json:"keys_before_disaster"`
	KeysAfter       int       `json:"keys_after_recovery"`
	KeysLost        int       `json:"keys_lost"`
	KeysUnexpected  int       `json:"keys_unexpected"`
	KeysChanged     int       `json:"keys_changed"`
	BackupAt        time.Time `json:"backup_at"`
	LastWriteAt     time.Time `json:"last_write_at"`
	DisasterAt      time.Time `json:"disaster_at"`
	RecoveredAt     time.Time `json:"recovered_at"`
	DisasterNodes   []string  `json:"disaster_nodes"`

	// Unit names what the counts count (keys, rows; empty: keys). The
	// keys_* fields hold those counts for every drill.
	Unit string `json:"unit,omitempty"`
	// Expect is what the recovery had to restore: restore_point or latest.
	Expect string `json:"expect,omitempty"`
	// Digests of the data at the restore point, before the disaster and
	// after the recovery, as the drill's count command printed them.
	DigestAtBackup string `json:"digest_at_restore_point,omitempty"`
	DigestBefore   string `json:"digest_before_disaster,omitempty"`
	DigestAfter    string `json:"digest_after_recovery,omitempty"`
	// RTOBudget is the limit on the RTO (0: none): the drill's
	// rto_budget, else the runbook's rto:.
	RTOBudget Duration `json:"rto_budget,omitempty"`
	// RTOResult says whether the RTO met the budget (RTOMet, RTOMissed;
	// empty without a budget); RTOMargin is the budget minus the RTO:
	// the time to spare, negative when missed (by that much). Set by
	// SettleRTO.
	RTOResult string   `json:"rto_result,omitempty"`
	RTOMargin Duration `json:"rto_margin,omitempty"`

	// RTO is disaster → cluster verified healthy; split into machine time
	// and time waiting on the operator.
	RTO     Duration `json:"rto"`
	Machine Duration `json:"rto_machine"`
	Human   Duration `json:"rto_human"`
	// RPO: the keys lost and the write window they span.
	RPOKeys   int      `json:"rpo_keys"`
	RPOWindow Duration `json:"rpo_window"`

	Steps []StepTiming `json:"steps"`
	// Verdict explains a failed rehearsal (empty when it passed).
	Verdict string `json:"verdict,omitempty"`
}

// StepTiming is one step execution's place on the timeline.
type StepTiming struct {
	Step    string   `json:"step"`
	Target  string   `json:"target,omitempty"`
	Attempt int      `json:"attempt"`
	Status  string   `json:"status"`
	Start   Duration `json:"start"` // since the disaster
	Length  Duration `json:"duration"`
}

// RTO results.
const (
	RTOMet    = "met"
	RTOMissed = "missed"
)

// SettleRTO sets RTOResult and RTOMargin from RTO and RTOBudget.
func (r *Report) SettleRTO() {
	r.RTOResult, r.RTOMargin = "", 0
	if r.RTOBudget <= 0 {
		return
	}
	r.RTOMargin = r.RTOBudget - r.RTO
	r.RTOResult = RTOMet
	if r.RTO > r.RTOBudget {
		r.RTOResult = RTOMissed
	}
}

// RTOSummary says in words how the RTO stands against the budget: "met,
// 1m20s to spare" or "MISSED by 1m20s (RTO 6m20s: machine 4m, operator
// 2m20s)"; "" without a budget.
func (r *Report) RTOSummary() string {
	if r.RTOResult == "" {
		c := *r
		c.SettleRTO()
		r = &c
	}
	switch r.RTOResult {
	case RTOMet:
		return fmt.Sprintf("met, %s to spare (RTO %s: machine %s, operator %s)", r.RTOMargin, r.RTO, r.Machine, r.Human)
	case RTOMissed:
		return fmt.Sprintf("MISSED by %s (RTO %s: machine %s, operator %s)", -r.RTOMargin, r.RTO, r.Machine, r.Human)
	}
	return ""
}

// Duration marshals as seconds with millisecond precision.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%.3f", time.Duration(d).Seconds())), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*d = Duration(s * float64(time.Second))
	return nil
}

func (d Duration) String() string { return time.Duration(d).Round(time.Millisecond).String() }

// JSON writes the report as indented JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Markdown writes the report for people.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	verdict := "PASSED"
	if r.Verdict != "" {
		verdict = "FAILED: " + r.Verdict
	}
	u := r.unit()
	fmt.Fprintf(&b, "# DR rehearsal: %s, scenario %s\n\n", r.Runbook, r.Scenario)
	fmt.Fprintf(&b, "**%s** — run `%s`, %d nodes, %s\n\n", verdict, r.RunID, r.Nodes, r.Started.UTC().Format(time.RFC3339))
	if r.Drill != "" {
		fmt.Fprintf(&b, "Drill `%s`", r.Drill)
		switch r.Expect {
		case "restore_point":
			b.WriteString(": the recovery had to bring back exactly the data at the restore point")
		case "latest":
			b.WriteString(": the recovery had to lose nothing")
		}
		b.WriteString(".\n\n")
	}
	b.WriteString("| measure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| RTO (disaster → cluster verified healthy) | %s |\n", r.RTO)
	fmt.Fprintf(&b, "| — machine time | %s |\n| — waiting on the operator | %s |\n", r.Machine, r.Human)
	if r.RTOBudget > 0 {
		fmt.Fprintf(&b, "| RTO budget | %s: %s |\n", r.RTOBudget, r.RTOSummary())
	}
	fmt.Fprintf(&b, "| RPO (%s lost) | %d |\n", u, r.RPOKeys)
	fmt.Fprintf(&b, "| RPO write window | %s |\n", r.RPOWindow)
	fmt.Fprintf(&b, "| %s at the restore point | %d |\n| %s written after the restore point | %d |\n", u, r.KeysAtBackup, u, r.KeysAfterBackup)
	fmt.Fprintf(&b, "| %s before the disaster | %d |\n| %s after the recovery | %d |\n", u, r.KeysBefore, u, r.KeysAfter)
	fmt.Fprintf(&b, "| %s unexpected / changed | %d / %d |\n", u, r.KeysUnexpected, r.KeysChanged)
	if r.DigestAtBackup != "" || r.DigestAfter != "" {
		fmt.Fprintf(&b, "| digest at the restore point / before / after | `%s` / `%s` / `%s` |\n", r.DigestAtBackup, r.DigestBefore, r.DigestAfter)
	}
	fmt.Fprintf(&b, "| nodes hit | %s |\n\n", strings.Join(r.DisasterNodes, ", "))
	b.WriteString("## Steps\n\n| step | target | attempt | status | start (after disaster) | duration |\n|---|---|---|---|---|---|\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s |\n", s.Step, orDash(s.Target), s.Attempt, s.Status, s.Start, s.Length)
	}
	b.WriteString("\nTimeline: `timeline.svg` beside this report.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) unit() string {
	if r.Unit == "" {
		return "keys"
	}
	return r.Unit
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// SVG draws the timeline: one bar per step execution, on a time axis that
// starts at the disaster.
func (r *Report) SVG(w io.Writer) error {
	const left, rowH, width, top = 220, 22, 900, 40
	total := time.Duration(r.RTO)
	for _, s := range r.Steps {
		if end := time.Duration(s.Start + s.Length); end > total {
			total = end
		}
	}
	if total <= 0 {
		total = time.Second
	}
	scale := float64(width-left-20) / float64(total)
	h := top + rowH*len(r.Steps) + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="12">`+"\n", width, h)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14">%s — %s — RTO %s, RPO %d %s</text>`+"\n",
		html.EscapeString(r.Runbook), html.EscapeString(r.Scenario), r.RTO, r.RPOKeys, html.EscapeString(r.unit()))
	// Axis ticks every second (or coarser).
	tick := time.Second
	for total/tick > 15 {
		tick *= 2
	}
	for t := time.Duration(0); t <= total; t += tick {
		x := left + int(float64(t)*scale)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ddd"/><text x="%d" y="%d" fill="#666">%s</text>`+"\n",
			x, top-5, x, h-30, x+2, h-15, t)
	}
	for i, s := range r.Steps {
		y := top + i*rowH
		label := s.Step
		if s.Target != "" {
			label += " @ " + s.Target
		}
		color := "#2e7d32"
		if s.Status != "succeeded" {
			color = "#c62828"
		}
		x := left + int(float64(s.Start)*scale)
		wbar := int(float64(s.Length) * scale)
		if wbar < 2 {
			wbar = 2
		}
		fmt.Fprintf(&b, `<text x="10" y="%d">%s</text><rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s %s</title></rect>`+"\n",
			y+15, html.EscapeString(label), x, y+3, wbar, rowH-6, color, html.EscapeString(label), s.Length)
	}
	if r.RTO > 0 {
		x := left + int(float64(r.RTO)*scale)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1565c0" stroke-dasharray="4"/><text x="%d" y="%d" fill="#1565c0">recovered</text>`+"\n",
			x, top-5, x, h-30, x-60, top-10)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// SortSteps orders the timeline by start time.
func (r *Report) SortSteps() {
	sort.SliceStable(r.Steps, func(i, j int) bool { return r.Steps[i].Start < r.Steps[j].Start })
}
