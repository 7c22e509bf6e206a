// Package buildinfo says which build of drbook or drbook-agent is running:
// its semantic version, the commit it was built from, when it was built and
// with which Go toolchain.
//
// Release builds stamp the values with the linker (the Makefile does):
//
//	go build -ldflags "-X github.com/drbook/drbook/internal/buildinfo.version=v1.2.3 \
//	  -X github.com/drbook/drbook/internal/buildinfo.commit=$(git rev-parse HEAD) \
//	  -X github.com/drbook/drbook/internal/buildinfo.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/drbook
//
// A plain `go build` in a clone, or `go install MODULE/cmd/drbook@VERSION`,
// is not stamped: the values then come from what the Go toolchain records in
// every binary (runtime/debug.ReadBuildInfo: the module version, and
// vcs.revision, vcs.time and vcs.modified when built inside a git checkout
// with -buildvcs on, the default).
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set with -ldflags -X at build time (see the package comment).
var (
	version string
	commit  string
	date    string
)

// Source values of Info.Source.
const (
	// SourceLinker: the values were stamped with -ldflags -X.
	SourceLinker = "ldflags"
	// SourceToolchain: the values come from runtime/debug.ReadBuildInfo.
	SourceToolchain = "buildinfo"
)

// DevelVersion is the version of a build that has neither a stamped version
// nor a module version (go build outside a git checkout, with -buildvcs off).
const DevelVersion = "v0.0.0-devel"

// Info describes one build. The JSON field names are stable (the version
// commands print them with --output json); unknown values are "".
type Info struct {
	// Version is a semantic version: a release tag (v1.2.3), `git describe`
	// output (v1.2.3-4-gabcdef0), a Go pseudo-version, or DevelVersion.
	Version string `json:"version"`
	// Commit is the full git commit hash the binary was built from.
	Commit string `json:"commit"`
	// Modified is true when the working tree had uncommitted changes.
	Modified bool `json:"modified"`
	// CommitTime is the commit's time (RFC 3339), when the toolchain recorded it.
	CommitTime string `json:"commit_time"`
	// BuildDate is when the binary was built (RFC 3339); only stamped builds know it.
	BuildDate string `json:"build_date"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// Source says where Version and Commit came from: SourceLinker or SourceToolchain.
	Source string `json:"source"`
}

// Get returns the running binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, date, bi)
}

// resolve merges the stamped values with what the toolchain recorded; a
// stamped value wins.
func resolve(stampedVersion, stampedCommit, stampedDate string, bi *debug.BuildInfo) Info {
	in := Info{GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Source: SourceToolchain}
	var modSet bool
	if bi != nil {
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			in.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.time":
				in.CommitTime = s.Value
			case "vcs.modified":
				in.Modified, modSet = s.Value == "true", true
			}
		}
		if !modSet && strings.HasSuffix(in.Version, "+dirty") {
			in.Modified = true
		}
	}
	if stampedVersion != "" || stampedCommit != "" {
		in.Source = SourceLinker
	}
	if stampedVersion != "" {
		in.Version = stampedVersion
	}
	if stampedCommit != "" {
		c, dirty := strings.CutSuffix(stampedCommit, "-dirty")
		if c != in.Commit {
			// The toolchain's commit time belongs to another commit (or none).
			in.CommitTime = ""
		}
		in.Commit, in.Modified = c, dirty
	}
	in.BuildDate = stampedDate
	if in.Version == "" {
		in.Version = DevelVersion
	}
	return in
}

// Short is the commit's first 12 characters, or "unknown".
func (in Info) Short() string {
	switch {
	case in.Commit == "":
		return "unknown"
	case len(in.Commit) > 12:
		return in.Commit[:12]
	default:
		return in.Commit
	}
}

// String is a one-line summary: "v1.2.3 (commit 0123456789ab, go1.26.8 linux/amd64)".
func (in Info) String() string {
	c := in.Short()
	if in.Modified {
		c += "+dirty"
	}
	return in.Version + " (commit " + c + ", " + in.GoVersion + " " + in.Platform + ")"
}

// Text is the multi-line form the version commands print, headed by the
// program's name.
func (in Info) Text(program string) string {
	unknown := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	c := unknown(in.Commit)
	if in.Modified {
		c += " (uncommitted changes)"
	}
	built := unknown(in.BuildDate)
	if in.BuildDate == "" && in.Source == SourceToolchain {
		built = "unknown (not stamped: build with make build)"
	}
	var b strings.Builder
	b.WriteString(program + " " + in.Version + "\n")
	b.WriteString("  commit       " + c + "\n")
	if in.CommitTime != "" {
		b.WriteString("  commit time  " + in.CommitTime + "\n")
	}
	b.WriteString("  built        " + built + "\n")
	b.WriteString("  go           " + in.GoVersion + " " + in.Platform + "\n")
	return b.String()
}
