// Package library holds the disaster-recovery runbooks shipped with drbook,
// embedded in the binary and addressed as library:NAME.
package library

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.yaml drills/*.yaml
var files embed.FS

// Prefix marks a runbook path as one of the shipped runbooks.
const Prefix = "library:"

// Names lists the shipped runbooks, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// Source returns a shipped runbook's YAML.
func Source(name string) ([]byte, bool) {
	b, err := files.ReadFile(strings.TrimPrefix(name, Prefix) + ".yaml")
	return b, err == nil
}
