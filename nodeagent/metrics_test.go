package nodeagent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeMetrics returns what the agent's /metrics handler answers.
func scrapeMetrics(t testing.TB, a *Agent) string {
	t.Helper()
	w := httptest.NewRecorder()
	a.metrics.handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body.Bytes())
	}
	return w.Body.String()
}

// parseMetrics parses the Prometheus text format strictly (a malformed
// exposition fails the test).
func parseMetrics(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("invalid exposition: %v\n%s", err, text)
	}
	return fams
}

// gaugeValue returns the value of the only sample of a gauge or counter
// family, and whether the family is present.
func sampleValue(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	f, ok := fams[name]
	if !ok || len(f.Metric) == 0 {
		return 0, false
	}
	m := f.Metric[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Untyped != nil:
		return m.Untyped.GetValue(), true
	}
	return 0, false
}

// promtoolCheck runs `promtool check metrics` on text when promtool is
// installed (CI installs Debian's prometheus package): a parse error or a
// lint finding (missing help, counter without _total, ...) fails.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: exposition checked with the Go parser only")
		return
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	t.Logf("promtool check metrics: ok %s", bytes.TrimSpace(out))
}

// TestMetricsAndHealthBeforeAndAfterBootstrap: a fresh agent answers
// /healthz (503, "not in a cluster") and /metrics over HTTPS before it is in
// a cluster; after bootstrap and a backup the raft, key and backup metrics
// appear, with no -1 sentinels, and requests are counted by endpoint and
// code.
func TestMetricsAndHealthBeforeAndAfterBootstrap(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	ctx := context.Background()
	build := BuildInfo{Version: "v9.8.7-test", Commit: "0123456789abcdef", GoVersion: "go-test"}
	a, err := New(ctx, Config{DataDir: t.TempDir(), NodeID: "metrics1", APIAddr: free(), RaftAddr: free(),
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogLevel: "off", Build: build})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	// A scraper that does not know the cluster's CA yet (there is none).
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402 -- test client of a provisional self-signed certificate
	defer hc.CloseIdleConnections()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get("https://" + a.cfg.APIAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := get("/healthz")
	var h healthInfo
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusServiceUnavailable || h.InCluster || h.OK ||
		!strings.Contains(h.Error, "not in a cluster") {
		t.Fatalf("healthz before a cluster: %d %s (%v)", code, body, err)
	}
	code, text := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics before a cluster: %d %s", code, text)
	}
	fams := parseMetrics(t, text)
	if v, ok := sampleValue(fams, "drbook_cluster_member"); !ok || v != 0 {
		t.Errorf("drbook_cluster_member before a cluster: %v %v", v, ok)
	}
	for _, absent := range []string{"drbook_raft_term", "drbook_raft_commit_index", "drbook_keys", "drbook_last_backup_timestamp_seconds"} {
		if _, ok := fams[absent]; ok {
			t.Errorf("%s present before the node is in a cluster", absent)
		}
	}
	bi := fams["drbook_agent_build_info"]
	if bi == nil || len(bi.Metric) != 1 {
		t.Fatalf("no drbook_agent_build_info:\n%s", text)
	}
	labels := map[string]string{}
	for _, l := range bi.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != build.Version || labels["commit"] != build.Commit || labels["goversion"] != build.GoVersion {
		t.Errorf("build info labels %v, want %+v", labels, build)
	}
	for _, fam := range []string{"go_goroutines", "process_resident_memory_bytes", "process_start_time_seconds"} {
		if _, ok := fams[fam]; !ok {
			t.Errorf("no %s (Go and process collectors)", fam)
		}
	}

	if _, err := a.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	// Existing connections keep the provisional certificate; a new one
	// gets the cluster's.
	hc.CloseIdleConnections()
	waitReady(t, a)
	code, body = get("/healthz")
	h = healthInfo{}
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusOK || !h.InCluster || h.State != "leader" || h.Error != "" {
		t.Fatalf("healthz in a cluster: %d %s", code, body)
	}
	if _, err := a.CreateKeys(ctx, []KeySpec{{Name: "a"}, {Name: "b"}}); err != nil {
		t.Fatal(err)
	}
	fams = parseMetrics(t, scrapeMetrics(t, a))
	if _, ok := fams["drbook_last_backup_timestamp_seconds"]; ok {
		t.Error("last backup timestamp present before any backup")
	}
	before := time.Now()
	br, err := a.BackupCreate(ctx, BackupArgs{Passphrase: []byte("metrics test passphrase")})
	if err != nil {
		t.Fatal(err)
	}
	code, text = get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	promtoolCheck(t, text)
	fams = parseMetrics(t, text)
	want := map[string]float64{"drbook_cluster_member": 1, "drbook_keys": 2, "drbook_raft_has_leader": 1,
		"drbook_raft_voters": 1, "drbook_membership_change_in_progress": 0, "drbook_backup_files": 1}
	for name, v := range want {
		if got, ok := sampleValue(fams, name); !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	if v, _ := sampleValue(fams, "drbook_raft_term"); v < 1 {
		t.Errorf("drbook_raft_term %v", v)
	}
	commit, _ := sampleValue(fams, "drbook_raft_commit_index")
	applied, _ := sampleValue(fams, "drbook_raft_applied_index")
	if commit < 3 || applied < 3 || applied > commit {
		t.Errorf("commit %v applied %v", commit, applied)
	}
	ts, ok := sampleValue(fams, "drbook_last_backup_timestamp_seconds")
	if !ok || ts < float64(before.Add(-time.Second).Unix()) || ts > float64(time.Now().Add(time.Second).Unix()) {
		t.Errorf("last backup timestamp %v (present %v), backup made at %v", ts, ok, before.Unix())
	}
	fi, err := os.Stat(br.File)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := sampleValue(fams, "drbook_backup_files_bytes"); v != float64(fi.Size()) {
		t.Errorf("drbook_backup_files_bytes %v, file has %d", v, fi.Size())
	}
	for name, f := range fams {
		for _, m := range f.Metric {
			if (m.Gauge != nil && m.Gauge.GetValue() < 0) || (m.Counter != nil && m.Counter.GetValue() < 0) {
				t.Errorf("%s has a negative sample: %v", name, m)
			}
		}
	}
	// Requests by endpoint and code: two healthz answers (503 then 200).
	reqs := fams["drbook_agent_requests_total"]
	counts := map[string]float64{}
	for _, m := range reqs.GetMetric() {
		var ep, c string
		for _, l := range m.Label {
			switch l.GetName() {
			case "endpoint":
				ep = l.GetValue()
			case "code":
				c = l.GetValue()
			}
		}
		counts[ep+" "+c] = m.Counter.GetValue()
	}
	if counts["GET /healthz 503"] != 1 || counts["GET /healthz 200"] != 1 || counts["GET /metrics 200"] < 1 {
		t.Errorf("request counts %v", counts)
	}
	if _, ok := fams["drbook_agent_request_duration_seconds"]; !ok {
		t.Error("no request latency histogram")
	}
}

func waitReady(t *testing.T, a *Agent) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !a.store.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("agent never became a ready leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
