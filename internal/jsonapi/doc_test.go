package jsonapi

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/json.md")

const (
	docPath    = "../../docs/json.md"
	beginMark  = "<!-- BEGIN GENERATED: go test ./internal/jsonapi -run TestDocAgrees -update -->"
	endMark    = "<!-- END GENERATED -->"
	repoPrefix = "github.com/drbook/drbook/"
)

// comments reads the field comments of the struct types in the packages
// the contract's types come from: comments[type][field].
func comments(t *testing.T, types []reflect.Type) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	dirs := map[string]bool{}
	for _, typ := range types {
		dirs["../../"+strings.TrimPrefix(typ.PkgPath(), repoPrefix)] = true
	}
	for dir := range dirs {
		fset := token.NewFileSet()
		paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		type pkg struct {
			Name  string
			Files []*ast.File
		}
		var pkgs []pkg
		for _, path := range paths {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			pkgs = append(pkgs, pkg{Name: f.Name.Name, Files: []*ast.File{f}})
		}
		for _, p := range pkgs {
			for _, f := range p.Files {
				ast.Inspect(f, func(n ast.Node) bool {
					ts, ok := n.(*ast.TypeSpec)
					if !ok {
						return true
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						return true
					}
					key := p.Name + "." + ts.Name.Name
					if out[key] == nil {
						out[key] = map[string]string{}
					}
					for _, fld := range st.Fields.List {
						text := ""
						if fld.Doc != nil {
							text = fld.Doc.Text()
						} else if fld.Comment != nil {
							text = fld.Comment.Text()
						}
						text = strings.Join(strings.Fields(text), " ")
						for _, nm := range fld.Names {
							out[key][nm.Name] = text
						}
					}
					return true
				})
			}
		}
	}
	return out
}

// generate renders the tables of every documented type and of the types
// they contain.
func generate(t *testing.T) string {
	t.Helper()
	var all []reflect.Type
	seen := map[reflect.Type]bool{}
	var collect func(reflect.Type)
	collect = func(typ reflect.Type) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		all = append(all, typ)
		for _, f := range Fields(typ) {
			all = append(all, f.Owner)
			if f.Elem != nil {
				collect(f.Elem)
			}
		}
	}
	for _, d := range Documented {
		collect(d.Type)
	}
	for _, d := range Payloads {
		collect(d.Type)
	}
	notes := comments(t, all)
	var b bytes.Buffer
	done := map[reflect.Type]bool{}
	var section func(title string, typ reflect.Type)
	section = func(title string, typ reflect.Type) {
		if done[typ] {
			return
		}
		done[typ] = true
		fmt.Fprintf(&b, "### %s\n\n", title)
		b.WriteString("| field | type | always | meaning |\n|---|---|---|---|\n")
		var nested []reflect.Type
		for _, f := range Fields(typ) {
			always := "yes"
			if f.Optional {
				always = "no"
			}
			owner := f.Owner.String() // "jsonapi.RunRow"
			note := notes[owner][f.GoName]
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Name, f.Type, always, strings.ReplaceAll(note, "|", `\|`))
			if f.Elem != nil {
				nested = append(nested, f.Elem)
			}
		}
		b.WriteString("\n")
		for _, n := range nested {
			section("object "+n.Name(), n)
		}
	}
	for _, d := range Documented {
		section(d.Title+" ("+d.Type.Name()+")", d.Type)
	}
	for _, d := range Payloads {
		section("data of "+d.Event+" ("+d.Type.String()+")", d.Type)
	}
	return b.String()
}

// TestDocAgrees keeps docs/json.md in agreement with the types: its
// generated part must be what the types generate now.
func TestDocAgrees(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		t.Fatalf("%s: markers %q … %q missing", docPath, beginMark, endMark)
	}
	want := s[:i+len(beginMark)] + "\n\n" + generate(t) + s[j:]
	if *update {
		if err := os.WriteFile(docPath, []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != s {
		t.Errorf("%s is stale: run go test ./internal/jsonapi -run TestDocAgrees -update", docPath)
	}
}

// TestFieldsFollowTheRules: every field of every documented type is
// snake_case, a duration is an integer named *_ms, and a time is a string
// (never a time.Time marshalled with its zone).
func TestFieldsFollowTheRules(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var check func(reflect.Type)
	check = func(typ reflect.Type) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		for _, f := range Fields(typ) {
			if strings.ContainsFunc(f.Name, func(r rune) bool { return unicode.IsUpper(r) || r == '-' || r == ' ' }) {
				t.Errorf("%s.%s: json name %q is not snake_case", f.Owner, f.GoName, f.Name)
			}
			st, _ := f.Owner.FieldByName(f.GoName)
			ft := st.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.String() == "time.Duration" {
				t.Errorf("%s.%s: a time.Duration (nanoseconds): use integer milliseconds named *_ms", f.Owner, f.GoName)
			}
			if strings.HasSuffix(f.Name, "_ms") && f.Type != "integer" && f.Type != "integer or null" {
				t.Errorf("%s.%s: %s is %s, want integer", f.Owner, f.GoName, f.Name, f.Type)
			}
			if f.Owner.PkgPath() == reflect.TypeFor[Header]().PkgPath() && ft == timeType {
				t.Errorf("%s.%s: use Time() strings (RFC 3339 UTC), not time.Time", f.Owner, f.GoName)
			}
			if f.Elem != nil {
				check(f.Elem)
			}
		}
	}
	for _, d := range Documented {
		if fs := Fields(d.Type); len(fs) == 0 || fs[0].Name != "schema" {
			t.Errorf("%s: first field is not schema", d.Type)
		}
		check(d.Type)
	}
	for _, d := range Payloads {
		check(d.Type)
	}
}
