// Force-new: recover from lost quorum by rewriting the raft configuration
// to this node alone.

package nodeagent

import (
	"context"
	"fmt"
	"time"
)

// ForceNewResult is the answer of `cluster force-new`.
type ForceNewResult struct {
	Changed bool   `json:"changed"`
	Message string `json:"message"`
	Keys    int    `json:"keys"`
}

// ForceNew recovers from lost quorum: raft stops, its configuration is
// rewritten to this node alone (raft.RecoverCluster) and raft restarts as a
// working one-node cluster with every committed entry.
func (a *Agent) ForceNew(ctx context.Context) (ForceNewResult, error) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	n := a.nodeState()
	r := a.store.Raft()
	if n == nil || r == nil {
		return ForceNewResult{}, ErrNoClusterState
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return ForceNewResult{}, err
	}
	servers := f.Configuration().Servers
	if len(servers) == 1 && string(servers[0].ID) == n.NodeID {
		return ForceNewResult{Message: "already a one-node cluster; nothing changed", Keys: a.store.State().KeyCount()}, nil
	}
	if _, lid := r.LeaderWithID(); lid != "" {
		return ForceNewResult{}, fmt.Errorf("%w: leader is %s", ErrQuorumPresent, lid)
	}
	if err := a.store.Shutdown(); err != nil {
		return ForceNewResult{}, err
	}
	if err := a.recoverAlone(); err != nil {
		// Bring raft back as it was so the node is not left stopped.
		_ = a.startRaft(ctx, false)
		return ForceNewResult{}, err
	}
	if err := a.startRaft(ctx, false); err != nil {
		return ForceNewResult{}, err
	}
	if _, _, _, err := a.leaderAPIAddr(ctx, 10*time.Second); err != nil {
		return ForceNewResult{}, err
	}
	for id := range a.store.State().Meta().Nodes {
		if id != n.NodeID {
			_, _ = applyJSON(ctx, a.store, opNodeDelete, id)
		}
	}
	_, _ = applyJSON(ctx, a.store, opChangeEnd, struct{}{})
	a.log.InfoContext(ctx, "forced a new one-node cluster", "keys", a.store.State().KeyCount())
	return ForceNewResult{Changed: true, Message: "now a one-node cluster with every committed key", Keys: a.store.State().KeyCount()}, nil
}

// recoverAlone rewrites the stopped raft's configuration to this node
// alone.
func (a *Agent) recoverAlone() error {
	server, client := a.raftTLS()
	return a.store.RecoverAlone(server, client)
}
