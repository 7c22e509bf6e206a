package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/steps"
)

// kindsMarkdown renders the reference of every step kind in reg: its
// description, targets, default timeout, parameters (from the kind's JSON
// Schema: type, required, default, description) and outputs. The published
// copy is docs/kinds.md (TestPublishedSchemaKindsDoc keeps it current).
func kindsMarkdown(reg *steps.Registry) []byte {
	var b strings.Builder
	b.WriteString("<!-- Generated from the step kind registry by `go test ./cmd/drbook -run Schema -update-schemas`\n" +
		"     (or `drbook schema kinds`). Do not edit by hand. -->\n\n")
	b.WriteString("# Step kinds\n\n")
	b.WriteString("Every kind a runbook's `run:` may name in this drbook, with its `with:`\n" +
		"parameters. Plugin kinds are not listed: `drbook plugins list` shows them.\n" +
		"The language around steps (templates, guards, `for_each:`, `until:`) is\n" +
		"described in [runbooks.md](runbooks.md).\n\n")
	names := reg.KindNames()
	for _, n := range names {
		fmt.Fprintf(&b, "- [`%s`](#%s)\n", n, anchor(n))
	}
	for _, n := range names {
		info, _ := reg.Kind(n)
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", n, strings.TrimSpace(info.Description))
		fmt.Fprintf(&b, "- **Runs on:** %s\n", targetsText(info.Targets))
		fmt.Fprintf(&b, "- **Default timeout:** %s\n", timeoutText(info))
		if info.Idempotent {
			b.WriteString("- **On resume:** idempotent: an interrupted execution runs again (`check:` is not used)\n")
		} else {
			b.WriteString("- **On resume:** an interrupted execution is decided by the step's `check:`, else by the operator\n")
		}
		if info.MaxParallel > 0 {
			fmt.Fprintf(&b, "- **At most** %d target(s) at once, whatever `serial:` says\n", info.MaxParallel)
		}
		b.WriteString("- **Outputs:** " + outputsText(info) + "\n\n")
		rows := paramRows("", info.Params)
		if len(rows) == 0 {
			b.WriteString("No parameters.\n")
			continue
		}
		b.WriteString("| parameter | type | required | default | description |\n|---|---|---|---|---|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", r.name, r.typ, r.required, r.def, cell(r.desc))
		}
	}
	return []byte(b.String())
}

func anchor(name string) string {
	return strings.NewReplacer(".", "", "_", "_").Replace(strings.ToLower(name))
}

func targetsText(t string) string {
	switch t {
	case runbooks.TargetsRequired:
		return "nodes: `on:` is required (or `for_each:` over nodes)"
	case runbooks.TargetsNone:
		return "no node: the operator (no `on:`)"
	}
	return "nodes, optionally (`on:` may be omitted)"
}

func timeoutText(info runbooks.KindInfo) string {
	switch {
	case info.DefaultTimeout.None():
		return "none: it waits for a person (set `timeout:` to bound it)"
	case info.DefaultTimeout > 0:
		return info.DefaultTimeout.String()
	}
	return engine.DefaultStepTimeout.String() + " (the engine's default)"
}

func outputsText(info runbooks.KindInfo) string {
	var names []string
	for _, o := range info.Outputs {
		n := "`" + o.Name + "`"
		if o.Secret {
			n += " (secret)"
		}
		names = append(names, n)
	}
	text := strings.Join(names, ", ")
	if info.DeclaredOutputs {
		if text != "" {
			text += "; and "
		}
		text += "those the step declares under `outputs:`, read from stdout"
	}
	if text == "" {
		return "none"
	}
	return text
}

type paramRow struct {
	name, typ, required, def, desc string
}

// paramRows flattens a JSON Schema's properties (nested objects as a.b).
func paramRows(prefix string, schema map[string]any) []paramRow {
	props, _ := schema["properties"].(map[string]any)
	req := map[string]bool{}
	if rl, ok := schema["required"].([]any); ok {
		for _, r := range rl {
			req[fmt.Sprint(r)] = true
		}
	}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// Required parameters first, each group in name order.
	slices.SortStableFunc(keys, func(a, b string) int {
		switch {
		case req[a] && !req[b]:
			return -1
		case req[b] && !req[a]:
			return 1
		}
		return 0
	})
	var rows []paramRow
	for _, k := range keys {
		p, _ := props[k].(map[string]any)
		r := paramRow{name: prefix + k, typ: schemaType(p), required: "", def: "", desc: fmt.Sprint(orEmpty(p["description"]))}
		if req[k] {
			r.required = "yes"
		}
		if d, ok := p["default"]; ok {
			r.def = fmt.Sprintf("`%v`", d)
		}
		if e, ok := p["enum"].([]any); ok {
			var vals []string
			for _, v := range e {
				vals = append(vals, fmt.Sprintf("`%v`", v))
			}
			r.desc = strings.TrimSpace(r.desc + " One of " + strings.Join(vals, ", ") + ".")
		}
		rows = append(rows, r)
		if _, nested := p["properties"]; nested {
			rows = append(rows, paramRows(prefix+k+".", p)...)
		}
	}
	return rows
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

func schemaType(p map[string]any) string {
	switch t := p["type"].(type) {
	case string:
		if t == "array" {
			if it, ok := p["items"].(map[string]any); ok {
				if s := schemaType(it); s != "any" {
					return "list of " + s
				}
			}
			return "list"
		}
		if t == "object" {
			if _, ok := p["properties"]; ok {
				return "mapping"
			}
			return "mapping of names to values"
		}
		return t
	case []any:
		var ts []string
		for _, x := range t {
			ts = append(ts, fmt.Sprint(x))
		}
		return strings.Join(ts, " or ")
	}
	return "any"
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
}
