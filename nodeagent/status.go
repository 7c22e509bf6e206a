package nodeagent

import (
	"context"
	"fmt"
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
	info := a.store.Info()
	if !info.Running {
		return st, nil
	}
	st.State = info.State
	st.AppliedIndex, st.CommitIndex, st.Term = info.AppliedIndex, info.CommitIndex, info.Term
	lid := raft.ServerID(info.LeaderID)
	st.Leader = LeaderRef{ID: info.LeaderID, Address: info.LeaderAddr}
	state := a.store.State()
	meta := state.Meta()
	st.Keys = state.KeyCount()
	st.MembershipChange = meta.Change
	if b := meta.LastBackup; b != nil {
		st.LastBackup = &LastBackup{ID: b.ID, Time: b.Time, AgeSeconds: time.Since(b.Time).Seconds(), Node: b.Node}
	}
	if err := info.ConfigErr; err != nil {
		return st, fmt.Errorf("raft configuration: %w", err)
	}
	servers := info.Servers
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
	info := a.store.Info()
	h := healthInfo{OK: info.Running, Raft: info.Running, State: info.State, Leader: info.LeaderID}
	n := a.nodeState()
	h.InCluster = n != nil && !n.Removed
	switch {
	case n == nil:
		h.Error = "not in a cluster (run cluster create or cluster join)"
	case n.Removed:
		h.Error = "not in a cluster: this node was removed from cluster " + n.ClusterID
	case !info.Running:
		h.Error = "raft is not running"
	}
	return h
}
