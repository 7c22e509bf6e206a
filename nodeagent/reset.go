// Reset: delete a non-member node's data directory and exit.

package nodeagent

import (
	"context"
	"fmt"
	"os"
	"time"
)

// ResetResult is the answer of `cluster reset --delete-data`.
type ResetResult struct {
	Changed bool   `json:"changed"`
	Message string `json:"message"`
	Deleted string `json:"deleted,omitempty"`
	Exiting bool   `json:"exiting"`
}

// Reset deletes all of this node's data, refusing while it is a member. On
// success the agent exits after answering (its socket lives in the data
// directory).
func (a *Agent) Reset(ctx context.Context, deleteData bool) (ResetResult, error) {
	if !deleteData {
		return ResetResult{}, fmt.Errorf("%w: reset needs --delete-data", ErrUsage)
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	n := a.nodeState()
	if n == nil {
		return ResetResult{Message: "node has no cluster state; nothing changed"}, nil
	}
	if a.isMember(ctx) {
		return ResetResult{}, fmt.Errorf("%w: node %s is a member of cluster %s", ErrResetMember, n.NodeID, n.ClusterID)
	}
	if err := a.store.Shutdown(); err != nil {
		a.log.WarnContext(ctx, "stop raft before reset", "err", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	a.stopAPI(sctx)
	cancel()
	if err := os.RemoveAll(a.cfg.DataDir); err != nil {
		return ResetResult{}, fmt.Errorf("delete data dir: %w", err)
	}
	a.mu.Lock()
	a.node, a.cmk = nil, nil
	a.mu.Unlock()
	a.log.InfoContext(ctx, "node reset: data directory deleted; agent exits", "data", a.cfg.DataDir)
	return ResetResult{Changed: true, Message: "data directory deleted; the agent exits", Deleted: a.cfg.DataDir, Exiting: true}, nil
}
