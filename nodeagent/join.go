// Joining: the joiner side (token over a pinned channel, credentials,
// raft as non-voter, wait for promotion) and the leader side (token check,
// certificate, non-voter add, promotion of caught-up non-voters).

package nodeagent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drbook/drbook/nodeagent/pki"
	"github.com/drbook/drbook/nodeagent/seal"
	"github.com/drbook/drbook/nodeagent/token"
)

// JoinResult is the answer of `cluster join`.
type JoinResult struct {
	Changed   bool   `json:"changed"`
	Message   string `json:"message"`
	NodeID    string `json:"node_id"`
	ClusterID string `json:"cluster_id"`
	Suffrage  string `json:"suffrage"`
}

// joinRequest is sent by a joiner to /v1/join (token auth, pinned TLS).
type joinRequest struct {
	Token    string `json:"token"`
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

// joinResponse carries the joiner's credentials and the CMK over the
// authenticated channel.
type joinResponse struct {
	ClusterID string `json:"cluster_id"`
	CACertPEM []byte `json:"ca_cert_pem"`
	CertPEM   []byte `json:"cert_pem"`
	KeyPEM    []byte `json:"key_pem"`
	CMK       []byte `json:"cmk"`
}

// Join makes this node a member of the cluster reachable at peer (its API
// address): it proves the token over a channel pinned to the token's CA
// fingerprint, receives its certificate and the CMK, seals the CMK with its
// node key, starts raft as a non-voter and waits to be promoted to voter.
func (a *Agent) Join(ctx context.Context, peer, tok string) (JoinResult, error) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	p, err := token.Parse(tok)
	if err != nil {
		return JoinResult{}, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
	res := JoinResult{NodeID: a.cfg.NodeID}
	if n := a.nodeState(); n != nil {
		fp, _ := pki.Fingerprint(n.CACertPEM)
		if n.Removed || !bytes.Equal(fp, p.CAFingerprint) {
			return res, fmt.Errorf("%w: node %s holds state of cluster %s", ErrHasClusterState, n.NodeID, n.ClusterID)
		}
		res.ClusterID = n.ClusterID
		if s, ok := a.store.SelfSuffrage(); ok && s == raft.Voter {
			res.Suffrage, res.Message = "voter", "already a member of this cluster; nothing changed"
			return res, nil
		}
		// Resume an interrupted join: ask to be added, then wait.
		if err := a.joinAdd(ctx, peer); err != nil {
			return res, err
		}
		return a.waitVoter(ctx, res)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, fmt.Errorf("%w: dial peer %s: %w", ErrUnavailable, addr, err)
			}
			conn := tls.Client(raw, pki.PinnedClientConfig(p.CAFingerprint))
			if err := conn.HandshakeContext(ctx); err != nil {
				raw.Close()
				if errors.Is(err, pki.ErrFingerprintMismatch) {
					return nil, fmt.Errorf("%w: peer %s is not the cluster the token was made for (wrong --peer, or a token of another cluster): %w", ErrCAMismatch, addr, err)
				}
				return nil, fmt.Errorf("%w: peer %s is not the cluster pinned by the token: %w", ErrTokenInvalid, addr, err)
			}
			return conn, nil
		},
	}}
	defer client.CloseIdleConnections()
	var jr joinResponse
	req := joinRequest{Token: tok, NodeID: a.cfg.NodeID, RaftAddr: a.cfg.RaftAddr, APIAddr: a.cfg.APIAddr}
	if err := retryUnavailable(ctx, joinRetry, func() error {
		return doJSON(ctx, client, http.MethodPost, "https://"+peer+"/v1/join", req, &jr)
	}); err != nil {
		return res, fmt.Errorf("join via %s: %w", peer, err)
	}
	if cmkID(jr.CMK) == "" || len(jr.CMK) != seal.KeySize {
		return res, errors.New("join: peer sent a malformed cluster master key")
	}
	n, err := a.sealNodeFile(jr.ClusterID, jr.CACertPEM, jr.CertPEM, jr.KeyPEM, jr.CMK)
	clear(jr.CMK)
	clear(jr.KeyPEM)
	if err != nil {
		return res, err
	}
	if err := saveNodeFile(a.cfg.DataDir, n); err != nil {
		return res, err
	}
	if err := a.adoptNode(n); err != nil {
		return res, err
	}
	if err := a.startRaft(ctx, false); err != nil {
		return res, err
	}
	if err := a.startAPI(); err != nil {
		return res, err
	}
	res.ClusterID = n.ClusterID
	if err := a.joinAdd(ctx, peer); err != nil {
		return res, err
	}
	res.Changed = true
	return a.waitVoter(ctx, res)
}

// joinAddReq asks the leader (over mutual TLS) to add the caller as a
// non-voter.
type joinAddReq struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

func (a *Agent) joinAdd(ctx context.Context, peer string) error {
	req := joinAddReq{NodeID: a.cfg.NodeID, RaftAddr: a.cfg.RaftAddr, APIAddr: a.cfg.APIAddr}
	return retryUnavailable(ctx, joinRetry, func() error {
		return a.internalCall(ctx, peer, "join_add", req, nil)
	})
}

// joinRetry bounds how long a joiner retries a step that failed because
// the cluster was briefly unavailable (e.g. a leader change).
const joinRetry = 15 * time.Second

// retryUnavailable runs fn until it succeeds, fails with anything but
// ErrUnavailable, or d passes. Only idempotent steps may use it.
func retryUnavailable(ctx context.Context, d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || !errors.Is(err, ErrUnavailable) || IsRule(err) || errors.Is(err, ErrCAMismatch) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitVoter waits until the leader promoted this node to voter.
func (a *Agent) waitVoter(ctx context.Context, res JoinResult) (JoinResult, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if s, ok := a.store.SelfSuffrage(); ok && s == raft.Voter {
			a.rememberPeers()
			res.Suffrage = "voter"
			if res.Changed {
				res.Message = "joined the cluster and promoted to voter"
			} else {
				res.Message = "join resumed; node is a voter"
			}
			return res, nil
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("%w: joined as non-voter but not promoted within 60s", ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// joinLeader runs on the leader for /v1/join: token checked with the
// leader's clock, marked used through raft, certificate issued.
func (a *Agent) joinLeader(ctx context.Context, req joinRequest) (joinResponse, error) {
	p, err := token.Parse(req.Token)
	if err != nil {
		return joinResponse{}, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
	meta := a.store.State().Meta()
	rec, ok := meta.Tokens[p.ID]
	if !ok {
		return joinResponse{}, fmt.Errorf("%w: unknown token id %s", ErrTokenInvalid, p.ID)
	}
	now := time.Now()
	if err := rec.Check(p.Secret, now); err != nil {
		retry := errors.Is(err, token.ErrUsed) && rec.UsedBy == req.NodeID && now.Sub(rec.UsedAt) < tokenRetryWindow
		if !retry {
			return joinResponse{}, mapTokenErr(err)
		}
	}
	r := a.store.Raft()
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == req.NodeID {
				return joinResponse{}, fmt.Errorf("%w: %s at %s", ErrNodeIDInUse, s.ID, s.Address)
			}
		}
	}
	caKey, err := seal.Open(a.currentCMK(), meta.CAKeySealed, caKeyAAD(meta.ClusterID))
	if err != nil {
		return joinResponse{}, fmt.Errorf("open CA key: %w", err)
	}
	ca, err := pki.LoadCA(meta.CACertPEM, caKey)
	if err != nil {
		return joinResponse{}, err
	}
	certPEM, keyPEM, err := ca.Issue(req.NodeID, certHosts(req.RaftAddr, req.APIAddr), now)
	if err != nil {
		return joinResponse{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if _, err := applyJSON(ctx, a.store, opTokenUse, tokenUseCmd{ID: p.ID, UsedBy: req.NodeID, Now: now}); err != nil {
		return joinResponse{}, err
	}
	info := NodeInfo{ID: req.NodeID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, CertSHA256: certSHA256(certPEM)}
	if _, err := applyJSON(ctx, a.store, opNodePut, info); err != nil {
		return joinResponse{}, err
	}
	a.log.InfoContext(ctx, "join token accepted", "token_id", p.ID, "joiner", req.NodeID)
	cmk := append([]byte(nil), a.currentCMK()...)
	return joinResponse{ClusterID: meta.ClusterID, CACertPEM: meta.CACertPEM, CertPEM: certPEM, KeyPEM: keyPEM, CMK: cmk}, nil
}

// joinAddLeader adds an authenticated node as a non-voter (idempotent).
func (a *Agent) joinAddLeader(ctx context.Context, peerID string, req joinAddReq) (struct{}, error) {
	if peerID != req.NodeID {
		return struct{}{}, fmt.Errorf("%w: certificate of %s cannot add %s", ErrTokenInvalid, peerID, req.NodeID)
	}
	info := NodeInfo{ID: req.NodeID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}
	if old, ok := a.store.State().Meta().Nodes[req.NodeID]; ok {
		info.CertSHA256 = old.CertSHA256
	}
	if _, err := applyJSON(ctx, a.store, opNodePut, info); err != nil {
		return struct{}{}, err
	}
	r := a.store.Raft()
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == req.NodeID && string(s.Address) == req.RaftAddr {
				return struct{}{}, nil
			}
		}
	}
	if err := a.store.AddNonvoter(req.NodeID, req.RaftAddr); err != nil {
		return struct{}{}, fmt.Errorf("%w: add non-voter: %w", ErrUnavailable, err)
	}
	a.log.InfoContext(ctx, "added non-voter", "member", req.NodeID, "raft_addr", req.RaftAddr)
	return struct{}{}, nil
}

// appliedInfo is the answer of the internal applied verb.
type appliedInfo struct {
	AppliedIndex uint64 `json:"applied_index"`
}

// maybeSelfMaintain runs on the leader's watcher tick: it promotes
// non-voters that caught up (like etcd learners).
func (a *Agent) maybeSelfMaintain(r *raft.Raft) {
	if !a.store.Ready() {
		return
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	var pending []raft.Server
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Nonvoter {
			pending = append(pending, s)
		}
	}
	if len(pending) == 0 || !a.promoting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer a.promoting.Store(false)
		meta := a.store.State().Meta()
		for _, s := range pending {
			n, ok := meta.Nodes[string(s.ID)]
			if !ok {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			var ai appliedInfo
			err := a.internalCall(ctx, n.APIAddr, "applied", struct{}{}, &ai)
			cancel()
			if err != nil {
				continue
			}
			commit := r.CommitIndex()
			if ai.AppliedIndex+a.cfg.PromoteLag < commit {
				continue
			}
			if err := a.store.AddVoter(string(s.ID), string(s.Address)); err != nil {
				a.log.Warn("promote non-voter", "member", s.ID, "err", err)
				continue
			}
			a.log.Info("promoted non-voter to voter", "member", s.ID, "applied", ai.AppliedIndex, "commit", commit)
		}
	}()
}
