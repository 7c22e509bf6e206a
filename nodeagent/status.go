package nodeagent

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
)

// Member is one server of the raft configuration.
type Member struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	APIAddr  string `json:"api_address,omitempty"`
	Suffrage string `json:"suffrage"`
	Healthy  bool   `json:"healthy"`
	Leader   bool   `json:"leader"`
}

// LeaderRef names the leader.
type LeaderRef struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// LastBackup describes the last recorded backup.
type LastBackup struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	AgeSeconds float64   `json:"age_seconds"`
	Node       string    `json:"node"`
}

// Status is the answer of `status` (stable JSON, see cmd/drbook-agent).
type Status struct {
	NodeID           string            `json:"node_id"`
	ClusterID        string            `json:"cluster_id"`
	State            string            `json:"state"`
	Member           bool              `json:"member"`
	Removed          bool              `json:"removed"`
	Leader           LeaderRef         `json:"leader"`
	Members          []Member          `json:"members"`
	Voters           int               `json:"voters"`
	Healthy          int               `json:"healthy"`
	Keys             int               `json:"keys"`
	AppliedIndex     uint64            `json:"applied_index"`
	CommitIndex      uint64            `json:"commit_index"`
	Term             uint64            `json:"term"`
	LastBackup       *LastBackup       `json:"last_backup"`
	MembershipChange *MembershipChange `json:"membership_change"`
	RaftAddr         string            `json:"raft_address"`
	APIAddr          string            `json:"api_address"`
}

func raftStateName(r *raft.Raft) string {
	if r == nil {
		return "none"
	}
	switch r.State() {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

func suffrageName(s raft.ServerSuffrage) string {
	switch s {
	case raft.Voter:
		return "voter"
	case raft.Nonvoter:
		return "nonvoter"
	default:
		return "staging"
	}
}

// Status reports this node's view of the cluster; member health is probed
// over mutual TLS.
func (a *Agent) Status(ctx context.Context) (Status, error) {
	st := Status{NodeID: a.cfg.NodeID, State: "none", Members: []Member{}, RaftAddr: a.cfg.RaftAddr, APIAddr: a.cfg.APIAddr}
	n := a.nodeState()
	if n != nil {
		st.ClusterID, st.Removed = n.ClusterID, n.Removed
	}
	r := a.getRaft()
	if r == nil {
		return st, nil
	}
	st.State = raftStateName(r)
	st.AppliedIndex, st.CommitIndex, st.Term = r.AppliedIndex(), r.CommitIndex(), r.CurrentTerm()
	laddr, lid := r.LeaderWithID()
	st.Leader = LeaderRef{ID: string(lid), Address: string(laddr)}
	meta := a.fsm.Meta()
	st.Keys = a.fsm.KeyCount()
	st.MembershipChange = meta.Change
	if b := meta.LastBackup; b != nil {
		st.LastBackup = &LastBackup{ID: b.ID, Time: b.Time, AgeSeconds: time.Since(b.Time).Seconds(), Node: b.Node}
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return st, fmt.Errorf("raft configuration: %w", err)
	}
	servers := f.Configuration().Servers
	health := a.probeHealth(ctx, servers)
	for _, s := range servers {
		m := Member{ID: string(s.ID), Address: string(s.Address), Suffrage: suffrageName(s.Suffrage),
			Healthy: health[string(s.ID)], Leader: s.ID == lid}
		if ni, ok := meta.Nodes[m.ID]; ok {
			m.APIAddr = ni.APIAddr
		}
		if m.ID == a.cfg.NodeID {
			st.Member = true
		}
		if s.Suffrage == raft.Voter {
			st.Voters++
		}
		if m.Healthy {
			st.Healthy++
		}
		st.Members = append(st.Members, m)
	}
	return st, nil
}

func (a *Agent) health() healthInfo {
	r := a.getRaft()
	return healthInfo{OK: true, Raft: r != nil, State: raftStateName(r)}
}

// writeMetrics writes Prometheus text-format metrics.
func (a *Agent) writeMetrics(w io.Writer) {
	r := a.getRaft()
	state := raftStateName(r)
	fmt.Fprintln(w, "# HELP drbook_raft_state Raft state of this node (1 for the current state).")
	fmt.Fprintln(w, "# TYPE drbook_raft_state gauge")
	for _, s := range []string{"leader", "follower", "candidate", "shutdown", "none"} {
		v := 0
		if s == state {
			v = 1
		}
		fmt.Fprintf(w, "drbook_raft_state{state=%q} %d\n", s, v)
	}
	var applied, commit, term uint64
	if r != nil {
		applied, commit, term = r.AppliedIndex(), r.CommitIndex(), r.CurrentTerm()
	}
	fmt.Fprintln(w, "# HELP drbook_raft_applied_index Last log index applied to the FSM.")
	fmt.Fprintln(w, "# TYPE drbook_raft_applied_index gauge")
	fmt.Fprintf(w, "drbook_raft_applied_index %d\n", applied)
	fmt.Fprintln(w, "# HELP drbook_raft_commit_index Last committed log index.")
	fmt.Fprintln(w, "# TYPE drbook_raft_commit_index gauge")
	fmt.Fprintf(w, "drbook_raft_commit_index %d\n", commit)
	fmt.Fprintln(w, "# HELP drbook_raft_term Current raft term.")
	fmt.Fprintln(w, "# TYPE drbook_raft_term gauge")
	fmt.Fprintf(w, "drbook_raft_term %d\n", term)
	fmt.Fprintln(w, "# HELP drbook_keys Number of keys in the store.")
	fmt.Fprintln(w, "# TYPE drbook_keys gauge")
	fmt.Fprintf(w, "drbook_keys %d\n", a.fsm.KeyCount())
	fmt.Fprintln(w, "# HELP drbook_last_backup_age_seconds Age of the last recorded backup (-1 if none).")
	fmt.Fprintln(w, "# TYPE drbook_last_backup_age_seconds gauge")
	age := -1.0
	if b := a.fsm.Meta().LastBackup; b != nil {
		age = time.Since(b.Time).Seconds()
	}
	fmt.Fprintf(w, "drbook_last_backup_age_seconds %g\n", age)
	fmt.Fprintln(w, "# HELP drbook_api_refused_total HTTPS API requests refused before their body was used, by reason.")
	fmt.Fprintln(w, "# TYPE drbook_api_refused_total counter")
	for i, name := range refusedNames {
		fmt.Fprintf(w, "drbook_api_refused_total{reason=%q} %d\n", name, a.refused[i].Load())
	}
}
