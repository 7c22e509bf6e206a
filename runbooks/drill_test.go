package runbooks

import (
	"errors"
	"strings"
	"testing"
)

const drillHead = "apiVersion: drbook/v1\nkind: Drill\nname: d\nrunbook: library:x\n"

// TestParseDrill: valid drills load with their commands; each broken one is
// refused at the line and column of its problem.
func TestParseDrill(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string // "line:col: text" pieces; none: valid
	}{
		{"commands", "ports: 2\ncount: {run: echo count=1 digest=x, on: n1}\nrestore_point: [cp a b]\ndisaster:\n  - {run: 'kill \"${DRILL_PORT_1}\"', on: [n1, n2], may_fail: true}\n", nil},
		{"lab", "lab: {disaster: total-loss}\n", nil},
		{"lab with commands", "lab: {disaster: total-loss}\nsetup: [true]\n", []string{"6:8: setup: a lab drill builds its own system"}},
		{"no count", "restore_point: [x]\ndisaster: [y]\n", []string{"1:1: a drill needs count:"}},
		{"bad lab disaster", "lab: {disaster: meteor}\n", []string{"5:17: drill.lab.disaster: \"meteor\" is not one of"}},
		{"port beyond count", "ports: 1\ncount: echo ${DRILL_PORT_1}\nrestore_point: [x]\ndisaster: [y]\n", []string{"6:8: ${DRILL_PORT_1}: the drill asks for 1 port(s)"}},
		{"port without ports", "count: x\nrestore_point: [x]\ndisaster: ['rm ${DRILL_PORT_0}']\n", []string{"7:12: ${DRILL_PORT_0}: the drill asks for 0 port(s)"}},
		{"bad range", "ports: {count: 1, range: 9-8}\ncount: x\nrestore_point: [x]\ndisaster: [y]\n", []string{"5:26: ports: port range \"9-8\""}},
		{"too many ports", "ports: 65\ncount: x\nrestore_point: [x]\ndisaster: [y]\n", []string{"5:8: ports: count must be 1..64"}},
		{"answers both", "count: x\nrestore_point: [x]\ndisaster: [y]\nanswers: {file: a.yaml, inputs: {n: 1}}\n", []string{"8:17: answers: give either file:"}},
		{"unknown field", "count: x\nrestore_point: [x]\ndisaster: [y]\nverfy: {}\n", []string{"8:1: unknown field \"verfy\""}},
		{"missing runbook", "", []string{"missing required field \"runbook\""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := drillHead + tc.body
			if tc.name == "missing runbook" {
				src = "apiVersion: drbook/v1\nkind: Drill\nname: d\nlab: {disaster: node-loss}\n"
			}
			dr, err := ParseDrill("d.yaml", []byte(src))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("valid drill refused: %v", err)
				}
				if dr.Name != "d" || dr.SHA256 == "" {
					t.Errorf("drill %+v", dr)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("broken drill: err %v, want Diagnostics", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestParseDrillCommands: a command is a string or a mapping; on: takes a
// node or a list.
func TestParseDrillCommands(t *testing.T) {
	dr, err := ParseDrill("d.yaml", []byte(drillHead+"count: {run: c, on: n1}\nrestore_point: [snap]\ndisaster:\n  - {run: k, on: [n1, n2], timeout: 5s, name: kill}\ncleanup: [stop]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if dr.RestorePoint[0].Run != "snap" || len(dr.Disaster[0].On) != 2 || dr.Disaster[0].Timeout.D().Seconds() != 5 || dr.Disaster[0].Name != "kill" || dr.Cleanup[0].Run != "stop" {
		t.Errorf("decoded %+v %+v", dr.RestorePoint, dr.Disaster)
	}
	if p := dr.Disaster[0].At("on"); p.Line != 8 {
		t.Errorf("on: at %+v, want line 8", p)
	}
}

func TestExpandDrillVars(t *testing.T) {
	vars := map[string]string{"DRILL_DIR": "/w", "DRILL_PORT_0": "30001"}
	tests := []struct{ in, want string }{
		{"${DRILL_DIR}/snap", "/w/snap"},
		{"127.0.0.1:${DRILL_PORT_0}", "127.0.0.1:30001"},
		{"$DRILL_DIR ${HOME} ${DRILL_NOPE}", "$DRILL_DIR ${HOME} ${DRILL_NOPE}"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := ExpandDrillVars(tc.in, vars); got != tc.want {
			t.Errorf("ExpandDrillVars(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"30000-30999", 30000, 30999, true},
		{"1024-1024", 1024, 1024, true},
		{"80-90", 0, 0, false},
		{"30000-70000", 0, 0, false},
		{"31000-30000", 0, 0, false},
		{"30000", 0, 0, false},
		{"a-b", 0, 0, false},
	}
	for _, tc := range tests {
		lo, hi, err := ParsePortRange(tc.in)
		if (err == nil) != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("ParsePortRange(%q) = %d, %d, %v", tc.in, lo, hi, err)
		}
	}
}
