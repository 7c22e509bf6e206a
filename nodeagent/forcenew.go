// Force-new: recover from lost quorum by rewriting the raft configuration
// to this node alone.

package nodeagent

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
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
	r := a.getRaft()
	if n == nil || r == nil {
		return ForceNewResult{}, ErrNoClusterState
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return ForceNewResult{}, err
	}
	servers := f.Configuration().Servers
	if len(servers) == 1 && string(servers[0].ID) == n.NodeID {
		return ForceNewResult{Message: "already a one-node cluster; nothing changed", Keys: a.fsm.KeyCount()}, nil
	}
	if _, lid := r.LeaderWithID(); lid != "" {
		return ForceNewResult{}, fmt.Errorf("%w: leader is %s", ErrQuorumPresent, lid)
	}
	if err := a.stopRaft(); err != nil {
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
	for id := range a.fsm.Meta().Nodes {
		if id != n.NodeID {
			_, _ = a.applyJSON(ctx, opNodeDelete, id)
		}
	}
	_, _ = a.applyJSON(ctx, opChangeEnd, struct{}{})
	a.log.InfoContext(ctx, "forced a new one-node cluster", "keys", a.fsm.KeyCount())
	return ForceNewResult{Changed: true, Message: "now a one-node cluster with every committed key", Keys: a.fsm.KeyCount()}, nil
}

func (a *Agent) recoverAlone() error {
	store, snaps, err := a.openStores()
	if err != nil {
		return err
	}
	defer store.Close()
	a.mu.RLock()
	server, client := a.apiTLS.Clone(), a.clientTLS
	a.mu.RUnlock()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	trans, err := a.newTransport(server, client)
	if err != nil {
		return err
	}
	defer trans.Close()
	cfg := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(a.cfg.NodeID), Address: raft.ServerAddress(a.cfg.RaftAddr), Suffrage: raft.Voter}}}
	if err := raft.RecoverCluster(a.raftConfig(), NewFSM(a), store, store, snaps, trans, cfg); err != nil {
		return fmt.Errorf("recover cluster: %w", err)
	}
	return nil
}
