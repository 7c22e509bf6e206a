package runbooks

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// Drill is a disaster-recovery rehearsal of any system: how to stand it up,
// load and count its data, take the restore point, write more data after it,
// inject the disaster, recover it with a runbook, verify, and clean up.
// `drbook rehearse --drill FILE` runs it; docs/drills.md describes it.
type Drill struct {
	Src         `yaml:"-"`
	APIVersion  string `yaml:"apiVersion" required:"true" enum:"drbook/v1" doc:"Schema version of this file; always drbook/v1."`
	Kind        string `yaml:"kind" required:"true" enum:"Drill" doc:"Always Drill."`
	Name        string `yaml:"name" required:"true" pattern:"^[a-z0-9][a-z0-9._-]{0,62}$" doc:"Short machine name of the drill (lowercase, digits, dot, dash, underscore)."`
	Title       string `yaml:"title" doc:"One-line human title shown in reports."`
	Description string `yaml:"description" doc:"What the drill proves."`
	Unit        string `yaml:"unit" pattern:"^[a-z][a-z -]{0,30}$" doc:"What count counts, in the report (keys, rows, records; default items, keys for a lab drill)."`
	Scenario    string `yaml:"scenario" pattern:"^[a-z0-9][a-z0-9._-]{0,62}$" doc:"Scenario name shown in the report (default: the drill's name)."`

	Runbook   string        `yaml:"runbook" required:"true" doc:"The recovery runbook: library:NAME for a shipped one, or a path (relative to this file)."`
	Inventory string        `yaml:"inventory" doc:"Inventory file for the runbook and the drill's on: commands (relative to this file; -i overrides; ${DRILL_...} expanded). Not used with lab:."`
	Answers   *DrillAnswers `yaml:"answers" doc:"Answers to the runbook's inputs: inline, or a file (--answers overrides). ${DRILL_...} and ${DRILL_COUNT_...} are expanded in values."`
	Ports     *DrillPorts   `yaml:"ports" doc:"Loopback ports the drill needs, allocated free from a range (--ports overrides the range); given to commands as DRILL_PORT_0..N-1."`

	Lab *DrillLab `yaml:"lab" doc:"Use the built-in drbook-agent lab as the system under test (setup, load, restore point, disaster and counting are then built in)."`

	Setup        []DrillCommand `yaml:"setup" doc:"Commands that stand up the system under test, in order."`
	Load         []DrillCommand `yaml:"load" doc:"Commands that load the data the restore point will hold."`
	Count        *DrillCommand  `yaml:"count" doc:"Command that counts the data: prints a line count=N digest=X (the digest covers the data's content)."`
	RestorePoint []DrillCommand `yaml:"restore_point" doc:"Commands that take the restore point (snapshot, backup); the count right after them is recorded."`
	AfterRestore []DrillCommand `yaml:"after_restore_point" doc:"Commands that write data after the restore point: what a recovery from the restore point loses (the RPO)."`
	Disaster     []DrillCommand `yaml:"disaster" doc:"The disaster, per node: kill processes, delete data, cut a network link. The RTO clock starts before the first."`
	Verify       *DrillVerify   `yaml:"verify" doc:"What the recovery must achieve."`
	RTOBudget    Duration       `yaml:"rto_budget" doc:"The drill fails when the RTO (disaster to verified healthy) exceeds this; overrides the runbook's rto: (the budget the run counts down)."`
	Cleanup      []DrillCommand `yaml:"cleanup" doc:"Commands that always run at the end, also after a failure or an interrupt; each runs even if the one before failed."`

	// File is where the drill was loaded from ("library:NAME" for shipped ones).
	File string `yaml:"-"`
	// Source is the exact bytes loaded; SHA256 is their hex digest.
	Source []byte `yaml:"-"`
	SHA256 string `yaml:"-"`
}

// DrillCommand is one shell command of a drill, run on an inventory node over
// its transport (on:) or on the machine running drbook.
type DrillCommand struct {
	Src     `yaml:"-"`
	Run     string     `yaml:"run" scalar:"true" required:"true" doc:"POSIX shell command line. It sees DRILL_DIR, DRILL_PORT_<i>, DRILL_PORTS, DRBOOK, DRILL_NAME, DRILL_NODE and, once known, DRILL_COUNT_* as environment variables."`
	Name    string     `yaml:"name" doc:"Label in the progress output and report (default: the command's first words)."`
	On      StringList `yaml:"on" doc:"Inventory node(s) or group(s) to run on, one after the other; omit to run on the machine running drbook."`
	Timeout Duration   `yaml:"timeout" doc:"Time limit of the command on one node (default 2m)."`
	// MayFail lets the drill go on when the command exits non-zero (a
	// disaster's kill of a process that already died, a cleanup step).
	MayFail bool `yaml:"may_fail" doc:"A non-zero exit does not fail the drill (cleanup commands always may fail)."`
}

// DrillAnswers are the recovery runbook's answers, inline or from a file.
type DrillAnswers struct {
	Src    `yaml:"-"`
	File   string `yaml:"file" doc:"Answers file (relative to this drill file), as for drbook run --answers."`
	Inputs Params `yaml:"inputs" doc:"Answers to the runbook's inputs, by name; string values may use ${DRILL_DIR}, ${DRILL_PORT_0}, ${DRILL_COUNT_RESTORE_POINT}, ..."`
	Steps  Params `yaml:"steps" doc:"Answers to the runbook's input steps, by step id."`
}

// DrillPorts asks for loopback ports.
type DrillPorts struct {
	Src   `yaml:"-"`
	Count int    `yaml:"count" scalar:"true" doc:"How many ports (1 to 64; a lab drill needs none, only a range)."`
	Range string `yaml:"range" pattern:"^[0-9]{1,5}-[0-9]{1,5}$" doc:"Range to pick from, LO-HI inclusive (default 30000-30999; --ports overrides)."`
}

// DrillLab selects the built-in drbook-agent lab.
type DrillLab struct {
	Src             `yaml:"-"`
	Nodes           int    `yaml:"nodes" doc:"Agents in the lab (default 3, at least 3)."`
	Keys            int    `yaml:"keys" doc:"Keys loaded before the backup (default 10000; --keys overrides)."`
	KeysAfterBackup int    `yaml:"keys_after_backup" doc:"Keys written after the backup (default keys/100, at least 100)."`
	Disaster        string `yaml:"disaster" required:"true" enum:"total-loss,quorum-loss,node-loss" doc:"The lab disaster injected (kill -9 and data deleted on the nodes it hits)."`
}

// Restore targets a verification compares the recovered data with.
const (
	ExpectRestorePoint = "restore_point"
	ExpectLatest       = "latest"
)

// DrillVerify says what the recovery must achieve.
type DrillVerify struct {
	Src           `yaml:"-"`
	Expect        string         `yaml:"expect" enum:"restore_point,latest" doc:"restore_point: after the recovery the data is exactly what it was at the restore point (count and digest), and the RPO is the data written after it; latest: nothing may be lost (count and digest as just before the disaster, RPO 0). Default restore_point."`
	Health        []DrillCommand `yaml:"health" doc:"Commands that must exit 0 after the recovery (cluster healthy); retried until they pass or health_timeout runs out."`
	HealthTimeout Duration       `yaml:"health_timeout" doc:"How long health commands are retried (default 30s)."`
}

// ErrDrill marks a drill file that is not valid.
var ErrDrill = errors.New("invalid drill")

// ParseDrill decodes and validates a drill file: every problem is returned
// at once as Diagnostics at file:line:col. The runbook it names and the
// inventory are checked by the caller (lint, rehearse).
func ParseDrill(file string, src []byte) (*Drill, error) {
	root, err := parseYAML(file, src)
	if err != nil {
		return nil, err
	}
	d := &diags{file: file}
	dr := &Drill{File: file, Source: src, SHA256: digest(src)}
	(&decoder{d: d}).decode(root, reflect.ValueOf(dr).Elem(), "drill")
	validateDrill(d, dr)
	if err := dedupe(d).err(); err != nil {
		return nil, err
	}
	return dr, nil
}

var drillVarRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func validateDrill(d *diags, dr *Drill) {
	// Present but empty (`runbook:` with nothing after it) is not given.
	for field, v := range map[string]string{"apiVersion": dr.APIVersion, "kind": dr.Kind, "name": dr.Name, "runbook": dr.Runbook} {
		if dr.Has(field) && v == "" {
			d.add(dr.At(field), "%s: must not be empty", field)
		}
	}
	if dr.Lab != nil && dr.Lab.Has("disaster") && dr.Lab.Disaster == "" {
		d.add(dr.Lab.At("disaster"), "lab: disaster: must not be empty (total-loss, quorum-loss or node-loss)")
	}
	if dr.Lab != nil {
		if dr.Lab.Nodes != 0 && dr.Lab.Nodes < 3 {
			d.add(dr.Lab.At("nodes"), "lab: nodes must be at least 3")
		}
		if dr.Lab.Keys < 0 || dr.Lab.KeysAfterBackup < 0 {
			d.add(dr.Lab.Pos, "lab: keys cannot be negative")
		}
		for _, f := range []string{"setup", "load", "count", "restore_point", "after_restore_point", "disaster", "inventory"} {
			if dr.Has(f) {
				d.add(dr.At(f), "%s: a lab drill builds its own system; remove %s: or lab:", f, f)
			}
		}
	} else {
		if dr.Count == nil {
			d.add(dr.Pos, "a drill needs count: (a command printing count=N digest=X), or lab:")
		}
		if len(dr.Disaster) == 0 {
			d.add(dr.Pos, "a drill needs a disaster: (or lab:)")
		}
		if len(dr.RestorePoint) == 0 {
			d.add(dr.Pos, "a drill needs a restore_point: (or lab:)")
		}
	}
	if p := dr.Ports; p != nil {
		switch {
		case p.Has("count") && (p.Count < 1 || p.Count > 64):
			d.add(p.At("count"), "ports: count must be 1..64, not %d", p.Count)
		case !p.Has("count") && dr.Lab == nil:
			d.add(p.Pos, "ports: give count: (how many ports the drill needs)")
		}
		if p.Range != "" {
			if _, _, err := ParsePortRange(p.Range); err != nil {
				d.add(p.At("range"), "ports: %v", err)
			}
		}
	}
	nports := 0
	if dr.Ports != nil {
		nports = dr.Ports.Count
	}
	for _, group := range []struct {
		name string
		cmds []DrillCommand
	}{
		{"setup", dr.Setup}, {"load", dr.Load}, {"restore_point", dr.RestorePoint},
		{"after_restore_point", dr.AfterRestore}, {"disaster", dr.Disaster}, {"cleanup", dr.Cleanup},
	} {
		for i := range group.cmds {
			checkDrillCommand(d, &group.cmds[i], fmt.Sprintf("%s[%d]", group.name, i), nports)
		}
	}
	if dr.Count != nil {
		checkDrillCommand(d, dr.Count, "count", nports)
	}
	if dr.Verify != nil {
		for i := range dr.Verify.Health {
			checkDrillCommand(d, &dr.Verify.Health[i], fmt.Sprintf("verify.health[%d]", i), nports)
		}
	}
	if a := dr.Answers; a != nil {
		if a.File != "" && (a.Inputs.node != nil || a.Steps.node != nil) {
			d.add(a.At("file"), "answers: give either file: or inputs:/steps:, not both")
		}
		for _, p := range []Params{a.Inputs, a.Steps} {
			for k, v := range p.Values {
				if s, ok := v.(string); ok {
					checkDrillVars(d, p.At(k), s, nports)
				}
			}
		}
	}
	checkDrillVars(d, dr.At("inventory"), dr.Inventory, nports)
}

func checkDrillCommand(d *diags, c *DrillCommand, what string, nports int) {
	if c.Has("run") && strings.TrimSpace(c.Run) == "" {
		d.add(c.At("run"), "%s: empty command", what)
	}
	if strings.ContainsRune(c.Run, 0) {
		d.add(c.At("run"), "%s: command holds a NUL byte", what)
	}
	checkDrillVars(d, c.At("run"), c.Run, nports)
}

// checkDrillVars checks ${DRILL_PORT_i} references against the ports asked.
func checkDrillVars(d *diags, p Pos, s string, nports int) {
	for _, m := range drillVarRe.FindAllStringSubmatch(s, -1) {
		if rest, ok := strings.CutPrefix(m[1], "DRILL_PORT_"); ok {
			if i, err := strconv.Atoi(rest); err == nil && i >= nports {
				d.add(p, "${%s}: the drill asks for %d port(s) (ports: count), so DRILL_PORT_%d does not exist", m[1], nports, i)
			}
		}
	}
}

// ParsePortRange parses "LO-HI" (inclusive, 1024..65535).
func ParsePortRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		lo, err = strconv.Atoi(a)
		if err == nil {
			hi, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("port range %q: write LO-HI, e.g. 30000-30999", s)
	}
	if lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("port range %q: need 1024 ≤ LO ≤ HI ≤ 65535", s)
	}
	return lo, hi, nil
}

// ExpandDrillVars replaces ${NAME} by vars[NAME] in s; names not in vars are
// left as written (a shell may still expand them).
func ExpandDrillVars(s string, vars map[string]string) string {
	return drillVarRe.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// DrillSchema returns the JSON Schema (draft-07) of a drill file.
func DrillSchema() map[string]any {
	defs := map[string]any{}
	root := structSchema(reflect.TypeOf(Drill{}), defs)
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = SchemaBaseURL + "drill.schema.json"
	root["title"] = "drbook drill"
	root["definitions"] = defs
	return root
}

// CheckDrillAnswers checks a drill's inline answers against the runbook it
// recovers with: every answered input exists in the runbook (a typo is
// reported at the answer's line and column), and every input the runbook
// needs without a default is answered. A drill with an answers file, or a
// lab drill (its answers are built in), is not checked here.
func CheckDrillAnswers(dr *Drill, rb *Runbook) error {
	d := &diags{file: dr.File}
	if dr.Lab != nil || (dr.Answers != nil && dr.Answers.File != "") {
		return nil
	}
	var given map[string]any
	if dr.Answers != nil {
		given = dr.Answers.Inputs.Values
	}
	for name := range given {
		if rb.Input(name) == nil {
			d.add(dr.Answers.Inputs.At(name), "answers: runbook %s has no input %q%s", rb.Name, name, suggestName(name, inputNames(rb)))
		}
	}
	for _, in := range rb.Inputs {
		if _, ok := given[in.Name]; !ok && in.Default == nil && !in.Optional {
			p := dr.At("answers")
			d.add(p, "answers: runbook %s needs input %q (%s) and the drill does not answer it", rb.Name, in.Name, in.Type)
		}
	}
	return dedupe(d).err()
}

// CheckDrillNodes checks the on: of every drill command against an
// inventory: each name is a node or a group of it.
func CheckDrillNodes(dr *Drill, inv *Inventory) error {
	if inv == nil {
		return nil
	}
	d := &diags{file: dr.File}
	check := func(c *DrillCommand, what string) {
		for _, name := range c.On {
			if inv.Node(name) == nil && inv.Group(name) == nil {
				d.add(c.At("on"), "%s: no node or group %q in inventory %s%s", what, name, inv.File, suggestName(name, nodeNames(inv)))
			}
		}
	}
	for _, group := range []struct {
		name string
		cmds []DrillCommand
	}{
		{"setup", dr.Setup}, {"load", dr.Load}, {"restore_point", dr.RestorePoint},
		{"after_restore_point", dr.AfterRestore}, {"disaster", dr.Disaster}, {"cleanup", dr.Cleanup},
	} {
		for i := range group.cmds {
			check(&group.cmds[i], fmt.Sprintf("%s[%d]", group.name, i))
		}
	}
	if dr.Count != nil {
		check(dr.Count, "count")
	}
	if dr.Verify != nil {
		for i := range dr.Verify.Health {
			check(&dr.Verify.Health[i], fmt.Sprintf("verify.health[%d]", i))
		}
	}
	return dedupe(d).err()
}
