package sdk

import (
	"errors"
	"testing"
	"time"
)

// TestParamGetters: params arrive JSON-decoded (numbers as float64,
// templates rendered to strings); the getters accept both and refuse the
// rest with ErrBadParams.
func TestParamGetters(t *testing.T) {
	r := &Request{Params: map[string]any{
		"s": "x", "n": float64(3), "ns": "4", "frac": 1.5, "b": true, "bs": "false",
		"d": "90s", "bad": []any{1}, "empty": "",
	}}
	tests := []struct {
		name    string
		get     func() (any, error)
		want    any
		wantErr bool
	}{
		{"string", func() (any, error) { return r.String("s") }, "x", false},
		{"string of number", func() (any, error) { return r.String("n") }, "3", false},
		{"string absent", func() (any, error) { return r.String("none") }, "", false},
		{"string of list", func() (any, error) { return r.String("bad") }, "", true},
		{"int", func() (any, error) { return r.Int("n", 0) }, 3, false},
		{"int from template", func() (any, error) { return r.Int("ns", 0) }, 4, false},
		{"int default", func() (any, error) { return r.Int("none", 7) }, 7, false},
		{"int fraction", func() (any, error) { return r.Int("frac", 0) }, 0, true},
		{"bool", func() (any, error) { return r.Bool("b", false) }, true, false},
		{"bool from template", func() (any, error) { return r.Bool("bs", true) }, false, false},
		{"bool of string", func() (any, error) { return r.Bool("s", false) }, false, true},
		{"duration", func() (any, error) { return r.Duration("d", 0) }, 90 * time.Second, false},
		{"duration default", func() (any, error) { return r.Duration("none", time.Second) }, time.Second, false},
		{"duration bad", func() (any, error) { return r.Duration("s", 0) }, time.Duration(0), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.get()
			if tc.wantErr {
				if !errors.Is(err, ErrBadParams) {
					t.Fatalf("err %v, want ErrBadParams", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v (%v), want %v", got, err, tc.want)
			}
		})
	}
	if err := r.Require("s", "n"); err != nil {
		t.Errorf("require present: %v", err)
	}
	if err := r.Require("s", "empty"); !errors.Is(err, ErrBadParams) {
		t.Errorf("require empty: %v", err)
	}
}

// TestObjectSchema: the schema helpers build drbook's JSON Schema subset.
func TestObjectSchema(t *testing.T) {
	s := Object(Props{"a": String("A"), "n": Integer("N")}, "a")
	if s["type"] != "object" || s["additionalProperties"] != false {
		t.Errorf("schema %v", s)
	}
	req, _ := s["required"].([]any)
	if len(req) != 1 || req[0] != "a" {
		t.Errorf("required %v", s["required"])
	}
	if empty := Object(nil); empty["properties"] == nil || empty["required"] != nil {
		t.Errorf("empty schema %v", empty)
	}
}
