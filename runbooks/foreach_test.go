package runbooks_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
)

// TestGroupFilters: groups.<name>, map and format build strings from a
// group's (or a nodes input's) fields and vars; item reads the for_each
// item and, when it names a node, that node.
func TestGroupFilters(t *testing.T) {
	sc := testScope(t).WithItem(runbooks.Value{V: "node3"})
	tests := []struct {
		tpl, want string
		secret    bool
	}{
		{`{{ groups.all | join(",") }}`, "node1,node2,node3", false},
		{`{{ groups.all | length }}`, "3", false},
		{`{{ groups.all[1] }}`, "node2", false},
		{`{{ groups.all | map("api") | join(" ") }}`, "127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003", false},
		{`{{ groups.all | map("vars.api") | join(",") }}`, "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", false},
		{`--initial-cluster {{ groups.all | format("{name}=http://{api}") | join(",") | quote }}`,
			"--initial-cluster node1=http://127.0.0.1:7001,node2=http://127.0.0.1:7002,node3=http://127.0.0.1:7003", false},
		{`{{ inputs.joiners | format("{host}:{port}") | join(",") }}`, "127.0.0.1:0,127.0.0.1:0", false},
		{`{{ inputs.seed | map("api") }}`, "127.0.0.1:7001", false},
		{`{{ groups.all | map("api") | quote }}`, "127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003", false},
		{`{{ item }} at {{ item.api }} ({{ item.name | upper }})`, "node3 at 127.0.0.1:7003 (NODE3)", false},
		{`{{ inputs.seed | format("{name}:{api}") }}`, "node1:127.0.0.1:7001", false},
	}
	for _, tt := range tests {
		got, secret, err := runbooks.RenderString(tt.tpl, sc)
		if err != nil {
			t.Errorf("%s: %v", tt.tpl, err)
			continue
		}
		if got != tt.want || secret != tt.secret {
			t.Errorf("%s = %q (secret %v), want %q (secret %v)", tt.tpl, got, secret, tt.want, tt.secret)
		}
	}
	bad := []struct{ tpl, want string }{
		{`{{ groups.all | map("peer_url") }}`, `node "node1" has no field or var "peer_url"`},
		{`{{ groups.none }}`, `no group "none"`},
		{`{{ groups.all | format("{name") }}`, "unclosed {"},
		{`{{ groups.all | map("") }}`, "map needs a node field"},
	}
	for _, tt := range bad {
		_, _, err := runbooks.RenderString(tt.tpl, sc)
		if !errors.Is(err, runbooks.ErrTemplate) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.tpl, err, tt.want)
		}
	}
	// An item that is not a node has no fields.
	plain := testScope(t).WithItem(runbooks.Value{V: "https://x"})
	if _, _, err := runbooks.RenderString("{{ item.host }}", plain); err == nil || !strings.Contains(err.Error(), "is not a node") {
		t.Errorf("item.host of a plain item: err = %v", err)
	}
	if _, _, err := runbooks.RenderString("{{ item }}", testScope(t)); err == nil || !strings.Contains(err.Error(), "only defined in a step with for_each") {
		t.Errorf("item outside for_each: err = %v", err)
	}
	// A secret list stays secret through map and join.
	sec := testScope(t)
	sec.Inputs["hidden"] = runbooks.Value{V: []string{"node1"}, Secret: true}
	if _, secret, err := runbooks.RenderString(`{{ inputs.hidden | map("api") | join(",") }}`, sec); err != nil || !secret {
		t.Errorf("map of a secret list: secret %v, err %v; want secret", secret, err)
	}
}

// TestForEachItems: a group name or a list template gives the items; a
// secret, a string, an empty or repeated item is refused.
func TestForEachItems(t *testing.T) {
	sc := testScope(t)
	sc.Inputs["dup"] = runbooks.Value{V: []string{"a", "a"}}
	sc.Inputs["hidden"] = runbooks.Value{V: []string{"node1"}, Secret: true}
	tests := []struct {
		forEach string
		want    string // items joined by ",", or the error
		ok      bool
	}{
		{"all", "node1,node2,node3", true},
		{"{{ inputs.joiners }}", "node2,node3", true},
		{`{{ groups.all | map("api") }}`, "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", true},
		{"alll", `"alll" is not a group`, false},
		{"{{ inputs.seed }}", "needs a list, got a string", false},
		{"{{ inputs.dup }}", `item "a" appears twice`, false},
		{"{{ inputs.hidden }}", "derive from a secret", false},
	}
	for _, tt := range tests {
		items, err := runbooks.ForEachItems(tt.forEach, sc)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: %v", tt.forEach, err)
		case tt.ok && strings.Join(items, ",") != tt.want:
			t.Errorf("%s = %v, want %s", tt.forEach, items, tt.want)
		case !tt.ok && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: err = %v, want %q", tt.forEach, err, tt.want)
		}
	}
}

// FuzzTemplateFilters evaluates arbitrary templates, the group filters
// among them, against a scope with an inventory and an item: no input may
// panic, and an error is always an ErrTemplate.
func FuzzTemplateFilters(f *testing.F) {
	for _, seed := range []string{
		`{{ groups.all | format("{name}=http://{api}") | join(",") }}`,
		`{{ groups.all | map("vars.api") | quote }}`,
		`{{ item.api }} {{ inputs.joiners | map("name") | length }}`,
		`{{ groups.all | format("{") }}`, `{{ item | map("") }}`, `{{ groups }}`,
	} {
		f.Add(seed)
	}
	src, err := os.ReadFile("../testdata/inventories/three.yaml")
	if err != nil {
		f.Fatal(err)
	}
	inv, err := runbooks.ParseInventory("three.yaml", src)
	if err != nil {
		f.Fatal(err)
	}
	sc := (&runbooks.RunScope{
		Inputs:    map[string]runbooks.Value{"joiners": {V: []string{"node2", "node3"}}, "seed": {V: "node1"}},
		Steps:     map[string]*runbooks.StepValues{},
		Inventory: inv,
	}).WithItem(runbooks.Value{V: "node2"})
	f.Fuzz(func(t *testing.T, tpl string) {
		if _, _, err := runbooks.RenderString(tpl, sc); err != nil && !errors.Is(err, runbooks.ErrTemplate) {
			t.Fatalf("%q: error %v is not an ErrTemplate", tpl, err)
		}
	})
}
