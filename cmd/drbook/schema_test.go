package main

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
)

// TestPublishedSchemas keeps runbooks/schema/*.json in agreement with the Go
// types: the published files must equal what the types generate now
// (regenerate with: go run ./cmd/drbook schema runbook > runbooks/schema/runbook.schema.json),
// and every field the loader accepts must be a property in the schema.
func TestPublishedSchemas(t *testing.T) {
	for _, which := range []string{"runbook", "inventory", "drill", "config"} {
		want, err := schemaJSON(which)
		if err != nil {
			t.Fatal(err)
		}
		path := "../../runbooks/schema/" + which + ".schema.json"
		if *updateSchemas {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./cmd/drbook -run Schema -update-schemas)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is stale: regenerate it with go test ./cmd/drbook -run Schema -update-schemas", path)
		}
		var doc struct {
			Definitions map[string]json.RawMessage `json:"definitions"`
		}
		if err := json.Unmarshal(got, &doc); err != nil {
			t.Fatal(err)
		}
		for typ, fields := range runbooks.SchemaFields() {
			raw, ok := doc.Definitions[typ]
			if !ok {
				if (which == "runbook" && typ != "Inventory") || (which == "inventory" && typ != "Runbook") {
					continue
				}
				continue
			}
			props := propertyNames(t, raw)
			sort.Strings(fields)
			if !slices.Equal(props, fields) {
				t.Errorf("%s: schema properties of %s %v != loader fields %v", which, typ, props, fields)
			}
		}
	}
}

func propertyNames(t *testing.T, raw json.RawMessage) []string {
	var obj struct {
		Properties map[string]any    `json:"properties"`
		OneOf      []json.RawMessage `json:"oneOf"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	if obj.Properties == nil && len(obj.OneOf) > 0 {
		return propertyNames(t, obj.OneOf[len(obj.OneOf)-1])
	}
	var names []string
	for k := range obj.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// TestPublishedSchemaKindsDoc keeps docs/kinds.md, the step kind reference,
// equal to what the kind registry generates now (regenerate with
// go test ./cmd/drbook -run Schema -update-schemas).
func TestPublishedSchemaKindsDoc(t *testing.T) {
	want := kindsMarkdown(newRegistry())
	path := "../../docs/kinds.md"
	if *updateSchemas {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/drbook -run Schema -update-schemas)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is stale: regenerate it with go test ./cmd/drbook -run Schema -update-schemas", path)
	}
	// Every kind and every parameter is in it.
	reg := newRegistry()
	for _, n := range reg.KindNames() {
		info, _ := reg.Kind(n)
		if !strings.Contains(string(got), "\n## "+n+"\n") {
			t.Errorf("%s lacks kind %s", path, n)
		}
		for _, r := range paramRows("", info.Params) {
			if !strings.Contains(string(got), "| `"+r.name+"` |") {
				t.Errorf("%s lacks parameter %s of %s", path, r.name, n)
			}
		}
	}
}
