// Helpers shared by the cluster operations (bootstrap.go, tokens.go,
// join.go, remove.go, reset.go, forcenew.go): membership checks, peers,
// health and retries.

package nodeagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net"
	"slices"
	"time"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// certHosts returns the SANs for a node certificate.
func certHosts(addrs ...string) []string {
	hosts := []string{"localhost", "127.0.0.1"}
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err == nil && h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// healthInfo is the answer of /healthz (503 unless raft runs) and the
// internal health verb.
type healthInfo struct {
	OK    bool   `json:"ok"`
	Raft  bool   `json:"raft"`
	State string `json:"state"`
	// InCluster is false before the node joins or bootstraps a cluster
	// and after it was removed; Error then says so.
	InCluster bool   `json:"in_cluster"`
	Leader    string `json:"leader,omitempty"`
	Error     string `json:"error,omitempty"`
}

// rememberPeers records the members' API addresses in node.json when they
// changed (called from the leadership watcher).
func (a *Agent) rememberPeers() {
	peers := map[string]string{}
	for id, n := range a.store.State().Meta().Nodes {
		peers[id] = n.APIAddr
	}
	if len(peers) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.node == nil || a.node.Removed || maps.Equal(a.node.Peers, peers) {
		return
	}
	n := *a.node
	n.Peers = peers
	if err := saveNodeFile(a.cfg.DataDir, &n); err != nil {
		a.log.Warn("remember peers", "err", err)
		return
	}
	a.node = &n
}

// membershipInfo is the answer of the internal membership verb.
type membershipInfo struct {
	Servers   []string `json:"servers"`
	HasLeader bool     `json:"has_leader"`
}

func (a *Agent) membership() (membershipInfo, error) {
	r := a.store.Raft()
	if r == nil {
		return membershipInfo{}, ErrNoClusterState
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return membershipInfo{}, err
	}
	mi := membershipInfo{HasLeader: r.Leader() != ""}
	for _, s := range f.Configuration().Servers {
		mi.Servers = append(mi.Servers, string(s.ID))
	}
	return mi, nil
}

// stillMemberPerPeers asks the other members whether this node is still in
// their configuration; it answers true unless a peer with a leader says no.
func (a *Agent) stillMemberPerPeers(ctx context.Context) bool {
	peers := map[string]string{}
	if n := a.nodeState(); n != nil {
		maps.Copy(peers, n.Peers)
	}
	for id, n := range a.store.State().Meta().Nodes {
		peers[id] = n.APIAddr
	}
	for id, addr := range peers {
		if id == a.cfg.NodeID {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		var mi membershipInfo
		err := a.internalCall(pctx, addr, "membership", struct{}{}, &mi)
		cancel()
		if err == nil && mi.HasLeader && !slices.Contains(mi.Servers, a.cfg.NodeID) {
			return false
		}
	}
	return true
}

// isMember reports whether this node still belongs to a cluster.
func (a *Agent) isMember(ctx context.Context) bool {
	n := a.nodeState()
	if n == nil || n.Removed {
		return false
	}
	if a.store.Raft() == nil {
		return true
	}
	if _, ok := a.store.SelfSuffrage(); !ok {
		return false
	}
	return a.stillMemberPerPeers(ctx)
}
