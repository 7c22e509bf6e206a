package nodeagent

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drbook/drbook/internal/buildinfo"
)

// BuildInfo names the running build in drbook_agent_build_info.
type BuildInfo struct {
	Version   string
	Commit    string
	GoVersion string
}

// DefaultBuildInfo is the running binary's build as `version` reports it
// (internal/buildinfo: stamped by make build, else the toolchain's record),
// with "unknown" for a commit nothing recorded.
func DefaultBuildInfo() BuildInfo {
	bi := buildinfo.Get()
	commit := bi.Commit
	if commit == "" {
		commit = "unknown"
	}
	return BuildInfo{Version: bi.Version, Commit: commit, GoVersion: bi.GoVersion}
}

// metrics is the agent's Prometheus registry: Go and process collectors,
// the agent's state read at scrape time (agentCollector) and the request
// counters and latencies of the HTTPS API and the admin socket.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	backups  *prometheus.CounterVec
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drbook_agent_requests_total",
			Help: "Requests answered, by endpoint (HTTPS API route or \"admin <verb>\") and HTTP status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drbook_agent_request_duration_seconds",
			Help:    "Time to answer a request, by endpoint and HTTP status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint", "code"}),
		backups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drbook_backups_created_total",
			Help: "Backups this agent process tried to write, by result (ok or error).",
		}, []string{"result"}),
	}
	m.backups.WithLabelValues("ok")
	m.backups.WithLabelValues("error")
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.latency, m.backups,
		&agentCollector{a: a, store: a.store},
	)
	return m
}

// handler serves the registry in the Prometheus text format (or
// OpenMetrics when asked).
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observe counts one answered request.
func (m *metrics) observe(endpoint string, code int, d time.Duration) {
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(endpoint, c).Inc()
	m.latency.WithLabelValues(endpoint, c).Observe(d.Seconds())
}

// instrument counts and times every request by endpoint (label from
// endpointOf, so unknown paths cannot grow the label set) and status code.
func (m *metrics) instrument(endpointOf func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		m.observe(endpointOf(r), code, time.Since(start))
	})
}

// apiEndpoint names an HTTPS API request by its route: the ServeMux
// pattern, with the verb for a known internal call; anything else is
// "other".
func (a *Agent) apiEndpoint(mux *http.ServeMux) func(*http.Request) string {
	return func(r *http.Request) string {
		_, pattern := mux.Handler(r)
		switch pattern {
		case "", "/":
			return "other"
		case "POST /v1/internal/{verb}":
			verb := strings.TrimPrefix(r.URL.Path, "/v1/internal/")
			if _, ok := a.verbs[verb]; ok {
				return "POST /v1/internal/" + verb
			}
			return "other"
		}
		return pattern
	}
}

// agentCollector reports the agent's state when scraped. Metrics that only
// exist in a cluster (raft indexes, keys) are absent before the node
// belongs to one, and the last backup's time is absent until the first
// backup: no sentinel values.
//
// Raft and the applied state are read through the Store interface; the
// node's own state (membership, refusals, backup files) from the agent.
type agentCollector struct {
	a     *Agent
	store Store
}

var (
	descBuild = prometheus.NewDesc("drbook_agent_build_info",
		"Build of the running agent (value 1).", []string{"version", "commit", "goversion"}, nil)
	descMember = prometheus.NewDesc("drbook_cluster_member",
		"1 if this node holds the state of a cluster it was not removed from, else 0 (not in a cluster).", nil, nil)
	descState = prometheus.NewDesc("drbook_raft_state",
		"Raft state of this node (1 for the current state; \"none\" when not in a cluster).", []string{"state"}, nil)
	descHasLeader = prometheus.NewDesc("drbook_raft_has_leader",
		"1 if this node knows a leader, else 0.", nil, nil)
	descTerm = prometheus.NewDesc("drbook_raft_term",
		"Current raft term.", nil, nil)
	descCommit = prometheus.NewDesc("drbook_raft_commit_index",
		"Last committed raft log index known to this node.", nil, nil)
	descApplied = prometheus.NewDesc("drbook_raft_applied_index",
		"Last raft log index applied to the key store (FSM).", nil, nil)
	descLastContact = prometheus.NewDesc("drbook_raft_last_contact_seconds",
		"Seconds since this follower last heard from the leader (absent on the leader and before the first contact).", nil, nil)
	descVoters = prometheus.NewDesc("drbook_raft_voters",
		"Voters in the raft configuration this node knows.", nil, nil)
	descChange = prometheus.NewDesc("drbook_membership_change_in_progress",
		"1 while a membership change (removal) is recorded as running.", nil, nil)
	descKeys = prometheus.NewDesc("drbook_keys",
		"Keys in the store (this node's applied state).", nil, nil)
	descLastBackup = prometheus.NewDesc("drbook_last_backup_timestamp_seconds",
		"Unix time of the last backup recorded in the cluster (absent until the first backup).", nil, nil)
	descBackupFiles = prometheus.NewDesc("drbook_backup_files",
		"Backup files in this node's DATA/backups.", nil, nil)
	descBackupBytes = prometheus.NewDesc("drbook_backup_files_bytes",
		"Total size of the backup files in this node's DATA/backups.", nil, nil)
	descRefused = prometheus.NewDesc("drbook_api_refused_total",
		"HTTPS API requests refused before their body was used, by reason.", []string{"reason"}, nil)
)

// Describe implements prometheus.Collector.
func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descMember, descState, descHasLeader, descTerm, descCommit,
		descApplied, descLastContact, descVoters, descChange, descKeys, descLastBackup, descBackupFiles,
		descBackupBytes, descRefused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := a.cfg.Build
	gauge(descBuild, 1, b.Version, b.Commit, b.GoVersion)
	n := a.nodeState()
	info := c.store.Info()
	member := 0.0
	if n != nil && !n.Removed {
		member = 1
	}
	gauge(descMember, member)
	for _, s := range []string{"leader", "follower", "candidate", "shutdown", "none"} {
		v := 0.0
		if s == info.State {
			v = 1
		}
		gauge(descState, v, s)
	}
	for i, name := range refusedNames {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(a.refused[i].Load()), name)
	}
	files, bytes := a.backupFiles()
	gauge(descBackupFiles, float64(files))
	gauge(descBackupBytes, float64(bytes))
	if !info.Running {
		return
	}
	hasLeader := 0.0
	if info.LeaderID != "" {
		hasLeader = 1
	}
	gauge(descHasLeader, hasLeader)
	gauge(descTerm, float64(info.Term))
	gauge(descCommit, float64(info.CommitIndex))
	state := c.store.State()
	gauge(descApplied, float64(state.Index()))
	if !info.LastContact.IsZero() {
		gauge(descLastContact, time.Since(info.LastContact).Seconds())
	}
	if info.ConfigErr == nil {
		gauge(descVoters, float64(countVoters(info.Servers)))
	}
	meta := state.Meta()
	change := 0.0
	if meta.Change != nil {
		change = 1
	}
	gauge(descChange, change)
	gauge(descKeys, float64(state.KeyCount()))
	if lb := meta.LastBackup; lb != nil {
		gauge(descLastBackup, float64(lb.Time.UnixNano())/1e9)
	}
}

// backupFiles counts the backup files in DATA/backups and their bytes
// (directory entries only; no file is opened).
func (a *Agent) backupFiles() (files int, bytes int64) {
	des, err := os.ReadDir(a.backupDir())
	if err != nil {
		return 0, 0
	}
	for _, de := range des {
		name := de.Name()
		if !strings.HasSuffix(name, ".drbk") || strings.HasPrefix(name, ".") {
			continue
		}
		files++
		if fi, err := de.Info(); err == nil {
			bytes += fi.Size()
		}
	}
	return files, bytes
}
