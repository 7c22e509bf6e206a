package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/drbook/drbook/internal/buildinfo"
)

// TestVersionCommand runs `drbook-agent version` in process, as text and
// as JSON: it needs no daemon and its JSON carries every field.
func TestVersionCommand(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		json bool
	}{
		{"text", []string{"version"}, false},
		{"json long flag", []string{"version", "--output", "json"}, true},
		{"json short flag", []string{"-o", "json", "version"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			o := &opts{stdout: &out, stderr: &errb}
			root := newRoot(o)
			root.SetArgs(append(tt.args, "--data", t.TempDir()))
			if err := root.Execute(); err != nil {
				t.Fatalf("version: %v (stderr %q)", err, errb.String())
			}
			want := buildinfo.Get()
			if !tt.json {
				if !strings.HasPrefix(out.String(), "drbook-agent "+want.Version+"\n") || !strings.Contains(out.String(), runtime.Version()) {
					t.Fatalf("text output:\n%s", out.String())
				}
				return
			}
			var raw map[string]any
			if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out.String())
			}
			for _, k := range []string{"version", "commit", "modified", "commit_time", "build_date", "go_version", "platform", "source"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("JSON lacks %q: %s", k, out.String())
				}
			}
			var got buildinfo.Info
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("JSON %+v, want %+v", got, want)
			}
		})
	}
}
