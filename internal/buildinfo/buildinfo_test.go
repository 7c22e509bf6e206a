package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	const rev = "918e58b6e85a81e2a8a096ada1cdc81cf3581e70"
	vcs := func(modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261129152029-918e58b6e85a+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
				{Key: "vcs.time", Value: "2026-11-29T15:20:29Z"}, {Key: "vcs.modified", Value: modified}}}
	}
	tests := []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  Info
	}{
		{name: "stamped by make build", version: "v1.2.3-4-g918e58b", commit: rev, date: "2026-11-29T16:00:00Z", bi: vcs("false"),
			want: Info{Version: "v1.2.3-4-g918e58b", Commit: rev, CommitTime: "2026-11-29T15:20:29Z", BuildDate: "2026-11-29T16:00:00Z", GoVersion: "go1.26.8", Source: SourceLinker}},
		{name: "stamped dirty, toolchain without vcs", version: "v1.2.3", commit: rev + "-dirty", date: "2026-11-29T16:00:00Z", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			want: Info{Version: "v1.2.3", Commit: rev, Modified: true, BuildDate: "2026-11-29T16:00:00Z", GoVersion: "go1.26.8", Source: SourceLinker}},
		{name: "go build in a checkout", bi: vcs("true"),
			want: Info{Version: "v0.0.0-20261129152029-918e58b6e85a+dirty", Commit: rev, Modified: true, CommitTime: "2026-11-29T15:20:29Z", GoVersion: "go1.26.8", Source: SourceToolchain}},
		{name: "go install module@version", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}},
			want: Info{Version: "v1.4.0", GoVersion: "go1.26.8", Source: SourceToolchain}},
		{name: "nothing known", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			want: Info{Version: DevelVersion, GoVersion: runtime.Version(), Source: SourceToolchain}},
		{name: "no build info at all", bi: nil,
			want: Info{Version: DevelVersion, GoVersion: runtime.Version(), Source: SourceToolchain}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			got := resolve(tt.version, tt.commit, tt.date, tt.bi)
			if got != tt.want {
				t.Fatalf("resolve:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	in := Info{Version: "v1.2.3", Commit: "918e58b6e85a81e2a8a096ada1cdc81cf3581e70", Modified: true, GoVersion: "go1.26.8", Platform: "linux/arm64", Source: SourceToolchain}
	got := in.Text("drbook")
	for _, want := range []string{"drbook v1.2.3\n", "918e58b6e85a81e2a8a096ada1cdc81cf3581e70 (uncommitted changes)", "not stamped", "go1.26.8 linux/arm64"} {
		if !strings.Contains(got, want) {
			t.Errorf("Text() lacks %q:\n%s", want, got)
		}
	}
	if s := in.String(); s != "v1.2.3 (commit 918e58b6e85a+dirty, go1.26.8 linux/arm64)" {
		t.Errorf("String() = %q", s)
	}
	if s := (Info{}).Short(); s != "unknown" {
		t.Errorf("Short() of an empty Info = %q", s)
	}
}
