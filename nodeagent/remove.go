// Removal: one node at a time on the leader, quorum-checked, with a
// membership-change marker that every path ends, and the removed node's
// side (markRemoved).

package nodeagent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RemoveResult is the answer of `cluster remove`.
type RemoveResult struct {
	Changed bool   `json:"changed"`
	Message string `json:"message"`
	NodeID  string `json:"node_id"`
	Voters  int    `json:"voters"`
}

type removeReq struct {
	NodeID string `json:"node_id"`
	Force  bool   `json:"force"`
}

// Remove removes a node from the cluster (on the leader): one node at a
// time, refusing to lose quorum unless forced, idempotent for a node
// already gone.
func (a *Agent) Remove(ctx context.Context, nodeID string, force bool) (RemoveResult, error) {
	req := removeReq{NodeID: nodeID, Force: force}
	return onLeader(ctx, a, "remove", req, func(ctx context.Context) (RemoveResult, error) { return a.removeLeader(ctx, req) })
}

func (a *Agent) removeLeader(ctx context.Context, req removeReq) (RemoveResult, error) {
	res := RemoveResult{NodeID: req.NodeID}
	if !a.changeMu.TryLock() {
		return res, fmt.Errorf("%w: a removal is running on the leader", ErrMembershipChange)
	}
	defer a.changeMu.Unlock()
	r := a.store.Raft()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return res, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	servers := f.Configuration().Servers
	if err := a.clearStaleChange(ctx, r, servers); err != nil {
		return res, err
	}
	meta := a.store.State().Meta()
	if c := meta.Change; c != nil && c.NodeID != req.NodeID {
		return res, fmt.Errorf("%w: %s of %s since %s", ErrMembershipChange, c.Op, c.NodeID, c.Started.Format(time.RFC3339))
	}
	idx := slices.IndexFunc(servers, func(s raft.Server) bool { return string(s.ID) == req.NodeID })
	if idx < 0 {
		if meta.Change != nil || hasNode(meta, req.NodeID) {
			_, _ = applyJSON(ctx, a.store, opNodeDelete, req.NodeID)
			_, _ = applyJSON(ctx, a.store, opChangeEnd, struct{}{})
		}
		res.Voters = countVoters(servers)
		res.Message = "node is not a member; nothing changed"
		return res, nil
	}
	for _, s := range servers {
		if s.Suffrage == raft.Nonvoter && string(s.ID) != req.NodeID {
			return res, fmt.Errorf("%w: node %s is joining (non-voter)", ErrMembershipChange, s.ID)
		}
	}
	if servers[idx].Suffrage == raft.Voter && countVoters(servers) == 1 {
		return res, fmt.Errorf("%w: %s is the only voter (reset the node instead, or join another node first)", ErrLastVoter, req.NodeID)
	}
	if req.NodeID == a.cfg.NodeID {
		// Removing the leader: hand leadership over, then let the new
		// leader run the removal (and tell this node).
		if err := a.store.TransferLeadership(); err != nil {
			return res, fmt.Errorf("%w: transfer leadership before removing the leader: %w", ErrUnavailable, err)
		}
		a.changeMu.Unlock()
		defer a.changeMu.Lock()
		return onLeader(ctx, a, "remove", req, func(ctx context.Context) (RemoveResult, error) {
			return RemoveResult{}, &notSentError{fmt.Errorf("%w: leadership did not move", ErrUnavailable)}
		})
	}
	if servers[idx].Suffrage == raft.Voter && !req.Force {
		health := a.probeHealth(ctx, servers)
		remaining, healthy := 0, 0
		for _, s := range servers {
			if s.Suffrage != raft.Voter || string(s.ID) == req.NodeID {
				continue
			}
			remaining++
			if health[string(s.ID)] {
				healthy++
			}
		}
		if remaining == 0 || healthy < remaining/2+1 {
			return res, fmt.Errorf("%w: %d of %d remaining voters healthy, need %d", ErrQuorumLoss, healthy, remaining, remaining/2+1)
		}
	}
	end, err := a.beginChange(ctx, r, MembershipChange{Op: "remove", NodeID: req.NodeID, Started: time.Now()})
	if err != nil {
		return res, err
	}
	// Every way out of here ends the change: the marker never outlives
	// the removal that set it.
	defer end()
	if err := a.store.RemoveServer(req.NodeID); err != nil {
		return res, fmt.Errorf("%w: remove server: %w", ErrUnavailable, err)
	}
	a.log.InfoContext(ctx, "removed node", "member", req.NodeID)
	if n, ok := meta.Nodes[req.NodeID]; ok {
		nctx, cancel := context.WithTimeout(ctx, removalNoticeTimeout)
		if err := a.internalCall(nctx, n.APIAddr, "removed", struct{}{}, nil); err != nil {
			a.log.WarnContext(ctx, "could not tell removed node", "member", req.NodeID, "err", err)
		}
		cancel()
	}
	if _, err := applyJSON(ctx, a.store, opNodeDelete, req.NodeID); err != nil {
		return res, err
	}
	res.Changed = true
	res.Voters = countVoters(servers) - 1
	res.Message = "node removed from the cluster"
	return res, nil
}

// beginChange records c as the membership change in progress (through
// raft) and returns the function that ends it. The caller must call end
// on every path (defer it): a marker left behind would refuse every later
// removal by remove-one-at-a-time.
func (a *Agent) beginChange(ctx context.Context, r *raft.Raft, c MembershipChange) (end func(), err error) {
	c.Term = r.CurrentTerm()
	if _, err := applyJSON(ctx, a.store, opChangeBegin, c); err != nil {
		return nil, err
	}
	return func() {
		// The request's context may be cancelled already: the marker
		// still has to go.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := applyJSON(ectx, a.store, opChangeEnd, struct{}{}); err != nil {
			// Leadership was lost: the next leader sees a marker of an
			// earlier term and clears it (clearStaleChange).
			a.log.WarnContext(ctx, "end membership change", "op", c.Op, "member", c.NodeID, "err", err)
		}
	}, nil
}

// clearStaleChange ends a membership change that no removal is running:
// it is called by the ready leader holding changeMu, so no change runs on
// this leader, and an earlier leader can no longer commit one (the new
// leader's barrier settled its entries). Such a marker was left by a
// leader that died or lost leadership mid-change, or whose end failed. If
// the removal had gone through, its metadata is finished too.
func (a *Agent) clearStaleChange(ctx context.Context, r *raft.Raft, servers []raft.Server) error {
	c := a.store.State().Meta().Change
	if c == nil {
		return nil
	}
	gone := !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == c.NodeID })
	if gone && c.Op == "remove" {
		if _, err := applyJSON(ctx, a.store, opNodeDelete, c.NodeID); err != nil {
			return err
		}
	}
	if _, err := applyJSON(ctx, a.store, opChangeEnd, struct{}{}); err != nil {
		return err
	}
	a.log.InfoContext(ctx, "cleared a stale membership change", "op", c.Op, "member", c.NodeID,
		"change_term", c.Term, "term", r.CurrentTerm())
	return nil
}

// removalNoticeTimeout bounds how long a removal waits for the removed
// node to acknowledge (the removal stays "in progress" meanwhile).
const removalNoticeTimeout = 5 * time.Second

func hasNode(m ClusterMeta, id string) bool { _, ok := m.Nodes[id]; return ok }

func countVoters(servers []raft.Server) int {
	n := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// probeHealth asks every member's /healthz (over mutual TLS) concurrently.
func (a *Agent) probeHealth(ctx context.Context, servers []raft.Server) map[string]bool {
	meta := a.store.State().Meta()
	out := make(map[string]bool, len(servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range servers {
		id := string(s.ID)
		if id == a.cfg.NodeID {
			mu.Lock()
			out[id] = a.store.Raft() != nil
			mu.Unlock()
			continue
		}
		n, ok := meta.Nodes[id]
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
			defer cancel()
			var h healthInfo
			err := a.internalCall(pctx, n.APIAddr, "health", struct{}{}, &h)
			mu.Lock()
			out[id] = err == nil && h.Raft
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// markRemoved runs on a node told it was removed: it stops raft and records
// that it is no longer a member.
func (a *Agent) markRemoved(ctx context.Context) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	n := a.nodeState()
	if n == nil || n.Removed {
		return
	}
	if s, ok := a.store.SelfSuffrage(); ok && s == raft.Voter && a.stillMemberPerPeers(ctx) {
		a.log.WarnContext(ctx, "removal notice ignored: peers still list this node")
		return
	}
	if err := a.store.Shutdown(); err != nil {
		a.log.WarnContext(ctx, "stop raft after removal", "err", err)
	}
	cp := *n
	cp.Removed = true
	if err := saveNodeFile(a.cfg.DataDir, &cp); err != nil {
		a.log.ErrorContext(ctx, "record removal", "err", err)
		return
	}
	a.mu.Lock()
	a.node = &cp
	a.mu.Unlock()
	a.log.InfoContext(ctx, "node removed from cluster; raft stopped")
}
