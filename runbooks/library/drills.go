package library

import (
	"io/fs"
	"sort"
	"strings"
)

// DrillPrefix marks a drill path as one of the shipped drills.
const DrillPrefix = "library:"

// DrillNames lists the shipped drills (runbooks/library/drills/*.yaml), sorted.
func DrillNames() []string {
	entries, _ := fs.ReadDir(files, "drills")
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
		}
	}
	sort.Strings(out)
	return out
}

// DrillSource returns a shipped drill's YAML.
func DrillSource(name string) ([]byte, bool) {
	b, err := files.ReadFile("drills/" + strings.TrimPrefix(name, DrillPrefix) + ".yaml")
	return b, err == nil
}
