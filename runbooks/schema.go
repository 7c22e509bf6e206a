package runbooks

import (
	"reflect"
	"strings"
)

// JSON Schemas for editors (the VS Code YAML extension and others): they are
// generated from the same struct tags the loader decodes with, so the schema
// and the loader cannot disagree. runbooks/schema/*.json are the published
// copies; a test regenerates them and fails if they drifted.

// SchemaBaseURL is where the published schemas are referenced from.
const SchemaBaseURL = "https://drbook.dev/schema/"

// RunbookSchema returns the JSON Schema (draft-07) of a runbook, with each
// step kind's `with:` parameters attached by `run:`.
func RunbookSchema(cat KindCatalog) map[string]any {
	defs := map[string]any{}
	root := structSchema(reflect.TypeOf(Runbook{}), defs)
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = SchemaBaseURL + "runbook.schema.json"
	root["title"] = "drbook runbook"
	root["definitions"] = defs
	step := defs["Step"].(map[string]any)
	var names []any
	var branches []any
	if cat != nil {
		for _, name := range cat.KindNames() {
			info, _ := cat.Kind(name)
			names = append(names, name)
			with := info.Params
			if with == nil {
				with = map[string]any{"type": "object", "additionalProperties": false}
			}
			branches = append(branches, map[string]any{
				"if":   map[string]any{"properties": map[string]any{"run": map[string]any{"const": name}}, "required": []any{"run"}},
				"then": map[string]any{"properties": map[string]any{"with": with}},
			})
		}
	}
	props := step["properties"].(map[string]any)
	if len(names) > 0 {
		run := props["run"].(map[string]any)
		run["examples"] = names
		step["allOf"] = branches
	}
	return root
}

// InventorySchema returns the JSON Schema (draft-07) of an inventory.
func InventorySchema() map[string]any {
	defs := map[string]any{}
	root := structSchema(reflect.TypeOf(Inventory{}), defs)
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = SchemaBaseURL + "inventory.schema.json"
	root["title"] = "drbook inventory"
	root["definitions"] = defs
	return root
}

func typeSchema(t reflect.Type, defs map[string]any) map[string]any {
	switch t {
	case durationType:
		return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`}
	case listType:
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "string"},
			map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		}}
	case paramsType:
		return map[string]any{"type": "object"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Pointer:
		return typeSchema(t.Elem(), defs)
	case reflect.Interface:
		return map[string]any{}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": typeSchema(t.Elem(), defs)}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": typeSchema(t.Elem(), defs)}
	case reflect.Struct:
		name := t.Name()
		if _, ok := defs[name]; !ok {
			defs[name] = map[string]any{} // reserve against recursion
			defs[name] = structSchema(t, defs)
		}
		return map[string]any{"$ref": "#/definitions/" + name}
	}
	return map[string]any{}
}

func structSchema(t reflect.Type, defs map[string]any) map[string]any {
	props := map[string]any{}
	var required []any
	var shorthand map[string]any
	for _, fi := range structFields(t) {
		if fi.isKey {
			continue
		}
		f := t.Field(fi.index)
		var s map[string]any
		if fi.keyed {
			s = map[string]any{"type": "object", "additionalProperties": typeSchema(f.Type.Elem(), defs)}
		} else {
			s = typeSchema(f.Type, defs)
		}
		if fi.doc != "" {
			s["description"] = fi.doc
		}
		if len(fi.enum) > 0 {
			e := make([]any, len(fi.enum))
			for i, v := range fi.enum {
				e[i] = v
			}
			s["enum"] = e
		}
		if fi.pattern != nil {
			s["pattern"] = fi.pattern.String()
		}
		if fi.none && f.Type == durationType {
			s["pattern"] = `^(none|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
		}
		props[fi.name] = s
		if fi.required {
			required = append(required, fi.name)
		}
		if fi.scalar {
			shorthand = typeSchema(f.Type, defs)
		}
	}
	obj := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		obj["required"] = required
	}
	if shorthand != nil {
		return map[string]any{"oneOf": []any{shorthand, obj}}
	}
	return obj
}

// SchemaFields lists, for each model struct reachable from Runbook,
// Inventory, Drill and OperatorConfig, the field names the loader accepts. Tests compare it with the
// published schemas.
func SchemaFields() map[string][]string {
	out := map[string][]string{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == srcType || t == paramsType || !strings.HasPrefix(t.PkgPath(), "github.com/drbook/drbook/runbooks") {
			return
		}
		if _, seen := out[t.Name()]; seen {
			return
		}
		out[t.Name()] = nil
		for _, fi := range structFields(t) {
			if fi.name != "" {
				out[t.Name()] = append(out[t.Name()], fi.name)
			}
			walk(t.Field(fi.index).Type)
		}
	}
	walk(reflect.TypeOf(Runbook{}))
	walk(reflect.TypeOf(Inventory{}))
	walk(reflect.TypeOf(Drill{}))
	walk(reflect.TypeOf(OperatorConfig{}))
	return out
}
