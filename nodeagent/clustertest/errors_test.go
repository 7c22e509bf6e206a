package clustertest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent"
)

// TestCLIErrorsPointTheRightWay: a stopped agent, a killed one, a hung one,
// a tiny --timeout and a join token of another cluster each get their own
// message and exit code; none of them says "quorum".
func TestCLIErrorsPointTheRightWay(t *testing.T) {
	c := newCluster(t, 1)
	n1 := c.nodes[0]
	other := newNode(t, "other1")
	var br nodeagent.BootstrapResult
	other.mustJSON(&br, "cluster", "create") // another cluster with its own CA
	foreign := token(t, other, "")
	joiner := newNode(t, "joiner")
	stopped := newNode(t, "stopped")
	stopped.stop() // SIGTERM: the agent removes its socket
	killed := newNode(t, "killed")
	killed.kill() // SIGKILL: the socket file stays, nobody listens
	hung := newNode(t, "hung")
	if err := hung.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hung.cmd.Process.Signal(syscall.SIGCONT) })

	tests := []struct {
		name     string
		n        *node
		args     []string
		code     int
		sentinel error
		want     []string
	}{
		{"stopped agent", stopped, []string{"status"}, nodeagent.ExitNotRunning, nodeagent.ErrAgentNotRunning,
			[]string{"agent not running (admin socket " + nodeagent.SocketPath(stopped.dir) + ": no such file)"}},
		{"killed agent", killed, []string{"status"}, nodeagent.ExitNotRunning, nodeagent.ErrAgentNotRunning,
			[]string{"agent not running (admin socket " + nodeagent.SocketPath(killed.dir) + ": connection refused)"}},
		{"zero timeout", n1, []string{"--timeout", "0s", "status"}, nodeagent.ExitTimeout, nodeagent.ErrTimeout,
			[]string{"timed out after 0s"}},
		{"tiny timeout", n1, []string{"--timeout", "1ms", "keys", "load", "--count", "20000"}, nodeagent.ExitTimeout, nodeagent.ErrTimeout,
			[]string{"timed out after 1ms"}},
		{"hung agent", hung, []string{"--timeout", "700ms", "status"}, nodeagent.ExitTimeout, nodeagent.ErrTimeout,
			[]string{"timed out after 700ms"}},
		{"token of another cluster", joiner, []string{"cluster", "join", "--peer", n1.api, "--token-file", foreign},
			nodeagent.ExitCAMismatch, nodeagent.ErrCAMismatch,
			[]string{"CA fingerprint does not match the token", "peer " + n1.api}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := tc.n.run(nil, tc.args...)
			took := time.Since(start)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, tc.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not say %q", r.stderr, w)
				}
			}
			if s := strings.ToLower(r.stderr); strings.Contains(s, "quorum") || strings.Contains(s, "leader") {
				t.Errorf("message sends the operator to quorum loss: %q", r.stderr)
			}
			var w struct {
				Error    string `json:"error"`
				Sentinel string `json:"sentinel"`
				ExitCode int    `json:"exit_code"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || w.ExitCode != tc.code || w.Sentinel != tc.sentinel.Error() {
				t.Errorf("error JSON %q (%v): want exit_code %d, sentinel %q", r.stdout, err, tc.code, tc.sentinel)
			}
			t.Logf("exit %d after %s: %s", r.code, took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
		})
	}
	// The refused join left the joiner clean: it joins the right cluster.
	var jr nodeagent.JoinResult
	joiner.mustJSON(&jr, "cluster", "join", "--peer", other.api, "--token-file", foreign)
	if !jr.Changed || jr.Suffrage != "voter" {
		t.Fatalf("join after the refused one: %+v", jr)
	}
}

// TestHealthAndMetricsBeforeJoin: an agent that is in no cluster answers
// /healthz with 503 and "not in a cluster", and serves /metrics (build
// info, drbook_cluster_member 0, no raft figures); after it joins, both
// report the cluster, over the cluster's CA. The plain-HTTP
// --metrics-listen address answers the same throughout.
func TestHealthAndMetricsBeforeJoin(t *testing.T) {
	c := newCluster(t, 1)
	plainAddr := freeAddr(t)
	fresh := newNode(t, "fresh", "--metrics-listen", plainAddr)
	plain := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + plainAddr + path)
		if err != nil {
			t.Fatalf("GET plain %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := plain("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not in a cluster") {
		t.Fatalf("plain healthz before join: %d %s", code, body)
	}
	if code, text := plain("/metrics"); code != http.StatusOK || !strings.Contains(text, "drbook_cluster_member 0\n") {
		t.Fatalf("plain metrics before join: %d\n%s", code, text)
	}
	if code, _ := plain("/v1/keys"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Fatalf("the plain listener serves more than health and metrics: %d", code)
	}
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402 -- the agent has only a provisional self-signed certificate before it joins
	defer insecure.CloseIdleConnections()
	get := func(hc *http.Client, path string) (int, string) {
		t.Helper()
		resp, err := hc.Get("https://" + fresh.api + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(insecure, "/healthz")
	var h struct {
		OK        bool   `json:"ok"`
		InCluster bool   `json:"in_cluster"`
		State     string `json:"state"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusServiceUnavailable || h.OK || h.InCluster ||
		h.State != "none" || !strings.Contains(h.Error, "not in a cluster") {
		t.Fatalf("healthz before join: %d %s (%v)", code, body, err)
	}
	code, text := get(insecure, "/metrics")
	if code != http.StatusOK || !strings.Contains(text, "drbook_cluster_member 0\n") ||
		!strings.Contains(text, `drbook_raft_state{state="none"} 1`) || !strings.Contains(text, "drbook_agent_build_info{") ||
		strings.Contains(text, "drbook_raft_term") || strings.Contains(text, " -1\n") {
		t.Fatalf("metrics before join: %d\n%s", code, text)
	}

	tf := token(t, c.nodes[0], "")
	var jr nodeagent.JoinResult
	fresh.mustJSON(&jr, "cluster", "join", "--peer", c.nodes[0].api, "--token-file", tf)
	// Now the API has the node's certificate: verify it against the CA.
	api := newAPIClient(t, filepath.Join(fresh.dir, "ca.pem"), "", 1)
	code, body = get(api.http, "/healthz")
	if code != http.StatusOK || !strings.Contains(body, `"in_cluster":true`) {
		t.Fatalf("healthz after join: %d %s", code, body)
	}
	code, text = get(api.http, "/metrics")
	if code != http.StatusOK || !strings.Contains(text, "drbook_cluster_member 1\n") || !strings.Contains(text, "drbook_raft_term ") ||
		!strings.Contains(text, "drbook_raft_voters 2\n") {
		t.Fatalf("metrics after join: %d\n%s", code, text)
	}
	if code, body := plain("/healthz"); code != http.StatusOK || !strings.Contains(body, `"in_cluster":true`) {
		t.Fatalf("plain healthz after join: %d %s", code, body)
	}
	if code, text := plain("/metrics"); code != http.StatusOK || !strings.Contains(text, "drbook_cluster_member 1\n") ||
		!strings.Contains(text, `drbook_agent_requests_total{code="200",endpoint="metrics-listener GET /metrics"} 1`) {
		t.Fatalf("plain metrics after join: %d\n%s", code, text)
	}
}

// TestRemoveLastVoterLeavesNoMarker is the regression test of the stuck
// "membership change in progress" marker: removing the only voter (even
// with --force) is refused by its own rule and leaves no marker, so the
// removal of another node later goes through.
func TestRemoveLastVoterLeavesNoMarker(t *testing.T) {
	c := newCluster(t, 1)
	n1 := c.nodes[0]
	for range 2 { // refused twice: still no marker
		n1.expectCode(nodeagent.ExitRefused, "remove-keeps-a-voter", nil, "cluster", "remove", "--node", n1.id, "--force")
	}
	if st := n1.status(); st.MembershipChange != nil || st.Voters != 1 || st.State != "leader" {
		t.Fatalf("status after the refused removal: %+v", st)
	}
	c.add("node2", n1)
	n3 := c.add("node3", n1)
	var rr nodeagent.RemoveResult
	n1.mustJSON(&rr, "cluster", "remove", "--node", n3.id)
	if !rr.Changed || rr.Voters != 2 {
		t.Fatalf("removal after the refused one: %+v", rr)
	}
	if st := n1.status(); st.MembershipChange != nil || st.Voters != 2 {
		t.Fatalf("status after the removal: %+v", st)
	}
}

// TestLeaderDiesMidRemoval: the leader is killed while a removal it began
// is still recorded as in progress (the removed node is frozen, so its
// notice waits). The new leader's next removal clears the dead leader's
// marker instead of refusing by remove-one-at-a-time.
func TestLeaderDiesMidRemoval(t *testing.T) {
	c := newCluster(t, 4)
	l := c.leader(10 * time.Second)
	var victim *node
	for _, n := range c.nodes {
		if n != l {
			victim = n
			break
		}
	}
	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	first := make(chan result, 1)
	go func() { first <- l.run(nil, "--timeout", "60s", "cluster", "remove", "--node", victim.id) }()
	waitFor(t, 15*time.Second, "removal applied, marker still set", func() error {
		var st nodeagent.Status
		if err := l.tryJSON(&st, "status"); err != nil {
			return err
		}
		if st.MembershipChange == nil {
			return errors.New("no marker")
		}
		if slices.ContainsFunc(st.Members, func(m nodeagent.Member) bool { return m.ID == victim.id }) {
			return errors.New("victim still in the configuration")
		}
		return nil
	})
	l.kill()
	<-first
	victim.kill()
	var alive []*node
	for _, n := range c.nodes {
		if n != l && n != victim {
			alive = append(alive, n)
		}
	}
	c2 := &cluster{t: t, nodes: alive}
	nl := c2.leader(20 * time.Second)
	// The dead leader's marker reached the others (it was committed).
	if st := nl.status(); st.MembershipChange == nil || st.MembershipChange.NodeID != victim.id {
		t.Fatalf("the new leader does not see the dead leader's marker: %+v", st)
	}
	// Remove the dead old leader: 2 of the 2 remaining voters are healthy.
	var rr nodeagent.RemoveResult
	waitFor(t, 20*time.Second, "removal of the dead leader", func() error {
		r := nl.run(nil, "cluster", "remove", "--node", l.id)
		switch r.code {
		case 0:
			return jsonUnmarshal(r.stdout, &rr)
		case nodeagent.ExitRefused:
			t.Fatalf("removal refused after the leader died: %s", r.stderr)
		}
		return fmt.Errorf("exit %d: %s", r.code, r.stderr) // an election may still run
	})
	if !rr.Changed || rr.Voters != 2 {
		t.Fatalf("remove dead leader: %+v", rr)
	}
	st := nl.status()
	if st.MembershipChange != nil || st.Voters != 2 || len(st.Members) != 2 {
		t.Fatalf("status after clearing the stale marker: %+v", st)
	}
	if b, _ := os.ReadFile(nl.logf.Name()); !strings.Contains(string(b), `"msg":"cleared a stale membership change"`) {
		t.Error("the new leader did not log clearing the stale marker")
	}
}
