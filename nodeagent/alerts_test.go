package nodeagent

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// promtool returns the promtool binary; CI installs it (Debian's
// prometheus package), elsewhere a missing one skips.
func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (CI installs Debian's prometheus package in .ci/run)")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	return bin
}

// TestAlertRules checks the example alerting rules in docs/alerts.yaml
// with promtool, and runs their unit tests (docs/alerts_test.yaml: a
// backup older than a day, none at all, no leader, a failed backup).
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = "../docs"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
}

// TestAlertRulesNameExportedMetrics: every drbook_* metric the example
// alerts and docs/monitoring.md use is one the agent exports.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	m := newMetrics(&Agent{})
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range []prometheus.Collector{m.requests, m.latency, m.backups, &agentCollector{}} {
			c.Describe(ch)
		}
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	exported := map[string]bool{}
	for d := range ch {
		if s := fq.FindStringSubmatch(d.String()); s != nil {
			exported[s[1]] = true
		}
	}
	if !exported["drbook_agent_build_info"] || !exported["drbook_last_backup_timestamp_seconds"] {
		t.Fatalf("exported metrics not found: %v", exported)
	}
	name := regexp.MustCompile(`drbook_[a-z_]+`)
	for _, file := range []string{"../docs/alerts.yaml", "../docs/monitoring.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		used := 0
		for _, n := range name.FindAllString(string(b), -1) {
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if s, ok := strings.CutSuffix(n, suffix); ok && exported[s] {
					base = s
				}
			}
			if !exported[base] {
				t.Errorf("%s names %s, which the agent does not export", file, n)
			}
			used++
		}
		if used == 0 {
			t.Errorf("%s names no drbook metric", file)
		}
	}
}
