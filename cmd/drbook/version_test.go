package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/buildinfo"
)

// semverRe is semver.org's regular expression with Go's leading "v".
var semverRe = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

func TestVersionCommand(t *testing.T) {
	for _, output := range []string{"text", "json"} {
		t.Run(output, func(t *testing.T) {
			var out bytes.Buffer
			root := newRootCmd()
			root.SetOut(&out)
			root.SetArgs([]string{"version", "--output", output})
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			want := buildinfo.Get()
			if output == "text" {
				if !strings.HasPrefix(out.String(), "drbook "+want.Version+"\n") || !strings.Contains(out.String(), want.GoVersion) {
					t.Fatalf("text output:\n%s", out.String())
				}
				return
			}
			var got buildinfo.Info
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out.String())
			}
			if got != want {
				t.Fatalf("JSON %+v, want %+v", got, want)
			}
		})
	}
	if code := exitCode(func() error {
		root := newRootCmd()
		root.SetOut(&bytes.Buffer{})
		root.SetArgs([]string{"version", "extra"})
		return root.Execute()
	}()); code != exitUsage {
		t.Errorf("version with an argument: exit %d, want %d", code, exitUsage)
	}
}

// TestMakeBuildStampsVersion builds both binaries the way README says
// (make build) and checks that `version` names this checkout's commit, a
// semantic version and the build date, stamped by the linker.
func TestMakeBuildStampsVersion(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	head, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD (the test runs in a git checkout): %v", err)
	}
	commit := strings.TrimSpace(string(head))
	bin := t.TempDir()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC().Add(-time.Second)
	mk := exec.Command("make", "-C", repo, "build", "BIN="+bin, "GO="+gobin)
	if b, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, b)
	}
	for _, name := range []string{"drbook", "drbook-agent"} {
		out, err := exec.Command(filepath.Join(bin, name), "version", "-o", "json").Output()
		if err != nil {
			t.Fatalf("%s version -o json: %v", name, err)
		}
		var in buildinfo.Info
		if err := json.Unmarshal(out, &in); err != nil {
			t.Fatalf("%s version: not JSON: %v\n%s", name, err, out)
		}
		if in.Commit != commit || in.Source != buildinfo.SourceLinker {
			t.Errorf("%s: commit %q source %q, want %q from ldflags", name, in.Commit, in.Source, commit)
		}
		if !semverRe.MatchString(in.Version) {
			t.Errorf("%s: version %q is not a semantic version", name, in.Version)
		}
		built, err := time.Parse(time.RFC3339, in.BuildDate)
		if err != nil || built.Before(before.Truncate(time.Second)) || built.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s: build date %q (%v), want the time of this build", name, in.BuildDate, err)
		}
		text, err := exec.Command(filepath.Join(bin, name), "version").Output()
		if err != nil || !strings.Contains(string(text), commit) {
			t.Errorf("%s version (text) does not name commit %s: %v\n%s", name, commit, err, text)
		}
	}
}
