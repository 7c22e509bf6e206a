package nodeagent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drbook/drbook/nodeagent/pki"
	"github.com/drbook/drbook/nodeagent/seal"
	"github.com/drbook/drbook/nodeagent/token"
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

// BootstrapResult is the answer of `cluster create`.
type BootstrapResult struct {
	Changed       bool   `json:"changed"`
	Message       string `json:"message"`
	NodeID        string `json:"node_id"`
	ClusterID     string `json:"cluster_id"`
	CAFingerprint string `json:"ca_fingerprint"`
	CACertFile    string `json:"ca_cert_file"`
	// APIKey is shown once, when it is created.
	APIKey string `json:"api_key,omitempty"`
}

// Bootstrap creates a new single-node cluster: cluster id, CA, CMK, this
// node's certificate and the first API key. It is idempotent on the node
// that founded the cluster and refused on any other node with state.
func (a *Agent) Bootstrap(ctx context.Context) (BootstrapResult, error) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if n := a.nodeState(); n != nil {
		if !n.Founder || n.Removed {
			return BootstrapResult{}, fmt.Errorf("%w: node %s holds state of cluster %s", ErrHasClusterState, n.NodeID, n.ClusterID)
		}
		return a.finishBootstrap(ctx, n, nil)
	}
	now := time.Now()
	clusterID := randHex(8)
	ca, err := pki.NewCA(clusterID, now)
	if err != nil {
		return BootstrapResult{}, fmt.Errorf("create CA: %w", err)
	}
	cmk, err := seal.NewKey()
	if err != nil {
		return BootstrapResult{}, err
	}
	n, err := a.newNodeFile(clusterID, ca, cmk, now)
	if err != nil {
		return BootstrapResult{}, err
	}
	n.Founder = true
	if err := saveNodeFile(a.cfg.DataDir, n); err != nil {
		return BootstrapResult{}, err
	}
	if err := a.adoptNode(n); err != nil {
		return BootstrapResult{}, err
	}
	if err := a.startRaft(ctx, true); err != nil {
		return BootstrapResult{}, err
	}
	if err := a.startAPI(); err != nil {
		return BootstrapResult{}, err
	}
	return a.finishBootstrap(ctx, n, ca)
}

// newNodeFile issues this node's certificate and seals its secrets.
func (a *Agent) newNodeFile(clusterID string, ca *pki.CA, cmk []byte, now time.Time) (*nodeFile, error) {
	certPEM, keyPEM, err := ca.Issue(a.cfg.NodeID, certHosts(a.cfg.RaftAddr, a.cfg.APIAddr), now)
	if err != nil {
		return nil, fmt.Errorf("issue node certificate: %w", err)
	}
	return a.sealNodeFile(clusterID, ca.CertPEM, certPEM, keyPEM, cmk)
}

func (a *Agent) sealNodeFile(clusterID string, caPEM, certPEM, keyPEM, cmk []byte) (*nodeFile, error) {
	keySealed, err := seal.Seal(a.nodeKey, keyPEM, tlsKeyAAD(a.cfg.NodeID))
	if err != nil {
		return nil, err
	}
	cmkSealed, err := sealCMK(a.nodeKey, a.cfg.NodeID, cmk)
	if err != nil {
		return nil, err
	}
	return &nodeFile{NodeID: a.cfg.NodeID, ClusterID: clusterID, CACertPEM: caPEM, CertPEM: certPEM,
		KeySealed: keySealed, CMKSealed: cmkSealed, CMKID: cmkID(cmk)}, nil
}

// finishBootstrap makes sure the raft configuration and the cluster
// metadata exist (resuming an interrupted bootstrap), and reports.
func (a *Agent) finishBootstrap(ctx context.Context, n *nodeFile, ca *pki.CA) (BootstrapResult, error) {
	res := BootstrapResult{NodeID: n.NodeID, ClusterID: n.ClusterID, CACertFile: a.cfg.DataDir + "/" + caFileName}
	if fp, err := pki.Fingerprint(n.CACertPEM); err == nil {
		res.CAFingerprint = hex.EncodeToString(fp)
	}
	r := a.getRaft()
	if r == nil {
		return res, ErrNoClusterState
	}
	if cf := r.GetConfiguration(); cf.Error() == nil && len(cf.Configuration().Servers) == 0 {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(n.NodeID), Address: raft.ServerAddress(a.cfg.RaftAddr), Suffrage: raft.Voter}}}
		if err := r.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return res, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	if _, _, _, err := a.leaderAPIAddr(ctx, 10*time.Second); err != nil {
		return res, err
	}
	if a.fsm.Meta().ClusterID != "" {
		res.Message = "cluster already bootstrapped on this node; nothing changed"
		return res, nil
	}
	if ca == nil {
		return res, fmt.Errorf("bootstrap of cluster %s was interrupted before its CA was stored; reset the node and bootstrap again", n.ClusterID)
	}
	now := time.Now()
	caKeySealed, err := seal.Seal(a.currentCMK(), ca.KeyPEM, caKeyAAD(n.ClusterID))
	if err != nil {
		return res, err
	}
	plain, rec, err := token.NewAPIKey(now, "bootstrap")
	if err != nil {
		return res, err
	}
	meta := emptyMeta()
	meta.ClusterID, meta.Founder, meta.Created = n.ClusterID, n.NodeID, now
	meta.CACertPEM, meta.CAKeySealed, meta.CMKID = n.CACertPEM, caKeySealed, n.CMKID
	meta.Nodes[n.NodeID] = NodeInfo{ID: n.NodeID, RaftAddr: a.cfg.RaftAddr, APIAddr: a.cfg.APIAddr, CertSHA256: certSHA256(n.CertPEM)}
	if _, err := a.applyJSON(ctx, opInit, initCmd{Meta: meta, APIKey: rec}); err != nil {
		return res, fmt.Errorf("store cluster metadata: %w", err)
	}
	res.Changed, res.APIKey = true, plain
	res.Message = "cluster created; the API key is shown only once"
	a.log.InfoContext(ctx, "cluster bootstrapped", "cluster_id", n.ClusterID)
	return res, nil
}

// TokenResult is the answer of `token create`.
type TokenResult struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

// TokenCreate issues a join token on the leader (stored hashed).
func (a *Agent) TokenCreate(ctx context.Context, ttl time.Duration) (TokenResult, error) {
	return onLeader(ctx, a, "token_create", tokenCreateReq{TTL: ttl}, func(ctx context.Context) (TokenResult, error) {
		meta := a.fsm.Meta()
		fp, err := pki.Fingerprint(meta.CACertPEM)
		if err != nil {
			return TokenResult{}, err
		}
		plain, rec, err := token.New(time.Now(), ttl, fp)
		if err != nil {
			return TokenResult{}, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		if _, err := a.applyJSON(ctx, opTokenAdd, rec); err != nil {
			return TokenResult{}, err
		}
		return TokenResult{Token: plain, ID: rec.ID, Expires: rec.Expires}, nil
	})
}

type tokenCreateReq struct {
	TTL time.Duration `json:"ttl"`
}

// TokenInfo describes a join token without its secret.
type TokenInfo struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	State   string    `json:"state"`
	UsedAt  time.Time `json:"used_at,omitzero"`
	UsedBy  string    `json:"used_by,omitempty"`
}

// TokenList lists join tokens (no secrets, no hashes).
func (a *Agent) TokenList(ctx context.Context) ([]TokenInfo, error) {
	if a.getRaft() == nil {
		return nil, ErrNoClusterState
	}
	now := time.Now()
	out := []TokenInfo{}
	for _, t := range a.fsm.Meta().Tokens {
		st := "valid"
		switch {
		case !t.UsedAt.IsZero():
			st = "used"
		case !now.Before(t.Expires):
			st = "expired"
		}
		out = append(out, TokenInfo{ID: t.ID, Created: t.Created, Expires: t.Expires, State: st, UsedAt: t.UsedAt, UsedBy: t.UsedBy})
	}
	slices.SortFunc(out, func(x, y TokenInfo) int { return x.Created.Compare(y.Created) })
	return out, nil
}

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
		if s, ok := a.selfInConfig(); ok && s == raft.Voter {
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
		if s, ok := a.selfInConfig(); ok && s == raft.Voter {
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

// selfInConfig returns this node's suffrage in the latest local
// configuration.
func (a *Agent) selfInConfig() (raft.ServerSuffrage, bool) {
	r := a.getRaft()
	if r == nil {
		return 0, false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return 0, false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == a.cfg.NodeID {
			return s.Suffrage, true
		}
	}
	return 0, false
}

// joinLeader runs on the leader for /v1/join: token checked with the
// leader's clock, marked used through raft, certificate issued.
func (a *Agent) joinLeader(ctx context.Context, req joinRequest) (joinResponse, error) {
	p, err := token.Parse(req.Token)
	if err != nil {
		return joinResponse{}, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
	meta := a.fsm.Meta()
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
	r := a.getRaft()
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
	if _, err := a.applyJSON(ctx, opTokenUse, tokenUseCmd{ID: p.ID, UsedBy: req.NodeID, Now: now}); err != nil {
		return joinResponse{}, err
	}
	info := NodeInfo{ID: req.NodeID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, CertSHA256: certSHA256(certPEM)}
	if _, err := a.applyJSON(ctx, opNodePut, info); err != nil {
		return joinResponse{}, err
	}
	a.log.InfoContext(ctx, "join token accepted", "token_id", p.ID, "joiner", req.NodeID)
	cmk := append([]byte(nil), a.currentCMK()...)
	return joinResponse{ClusterID: meta.ClusterID, CACertPEM: meta.CACertPEM, CertPEM: certPEM, KeyPEM: keyPEM, CMK: cmk}, nil
}

func mapTokenErr(err error) error {
	switch {
	case errors.Is(err, token.ErrExpired):
		return fmt.Errorf("%w: %w", ErrTokenExpired, err)
	case errors.Is(err, token.ErrUsed):
		return fmt.Errorf("%w: %w", ErrTokenUsed, err)
	default:
		return fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
}

// joinAddLeader adds an authenticated node as a non-voter (idempotent).
func (a *Agent) joinAddLeader(ctx context.Context, peerID string, req joinAddReq) (struct{}, error) {
	if peerID != req.NodeID {
		return struct{}{}, fmt.Errorf("%w: certificate of %s cannot add %s", ErrTokenInvalid, peerID, req.NodeID)
	}
	info := NodeInfo{ID: req.NodeID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}
	if old, ok := a.fsm.Meta().Nodes[req.NodeID]; ok {
		info.CertSHA256 = old.CertSHA256
	}
	if _, err := a.applyJSON(ctx, opNodePut, info); err != nil {
		return struct{}{}, err
	}
	r := a.getRaft()
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == req.NodeID && string(s.Address) == req.RaftAddr {
				return struct{}{}, nil
			}
		}
	}
	if err := r.AddNonvoter(raft.ServerID(req.NodeID), raft.ServerAddress(req.RaftAddr), 0, 10*time.Second).Error(); err != nil {
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
	if !a.ready.Load() {
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
		meta := a.fsm.Meta()
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
			if err := r.AddVoter(s.ID, s.Address, 0, 5*time.Second).Error(); err != nil {
				a.log.Warn("promote non-voter", "member", s.ID, "err", err)
				continue
			}
			a.log.Info("promoted non-voter to voter", "member", s.ID, "applied", ai.AppliedIndex, "commit", commit)
		}
	}()
}

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
	r := a.getRaft()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return res, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	servers := f.Configuration().Servers
	if err := a.clearStaleChange(ctx, r, servers); err != nil {
		return res, err
	}
	meta := a.fsm.Meta()
	if c := meta.Change; c != nil && c.NodeID != req.NodeID {
		return res, fmt.Errorf("%w: %s of %s since %s", ErrMembershipChange, c.Op, c.NodeID, c.Started.Format(time.RFC3339))
	}
	idx := slices.IndexFunc(servers, func(s raft.Server) bool { return string(s.ID) == req.NodeID })
	if idx < 0 {
		if meta.Change != nil || hasNode(meta, req.NodeID) {
			_, _ = a.applyJSON(ctx, opNodeDelete, req.NodeID)
			_, _ = a.applyJSON(ctx, opChangeEnd, struct{}{})
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
		if err := r.LeadershipTransfer().Error(); err != nil {
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
	if err := r.RemoveServer(raft.ServerID(req.NodeID), 0, 10*time.Second).Error(); err != nil {
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
	if _, err := a.applyJSON(ctx, opNodeDelete, req.NodeID); err != nil {
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
	if _, err := a.applyJSON(ctx, opChangeBegin, c); err != nil {
		return nil, err
	}
	return func() {
		// The request's context may be cancelled already: the marker
		// still has to go.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := a.applyJSON(ectx, opChangeEnd, struct{}{}); err != nil {
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
	c := a.fsm.Meta().Change
	if c == nil {
		return nil
	}
	gone := !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == c.NodeID })
	if gone && c.Op == "remove" {
		if _, err := a.applyJSON(ctx, opNodeDelete, c.NodeID); err != nil {
			return err
		}
	}
	if _, err := a.applyJSON(ctx, opChangeEnd, struct{}{}); err != nil {
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
	meta := a.fsm.Meta()
	out := make(map[string]bool, len(servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range servers {
		id := string(s.ID)
		if id == a.cfg.NodeID {
			mu.Lock()
			out[id] = a.getRaft() != nil
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

// markRemoved runs on a node told it was removed: it stops raft and records
// that it is no longer a member.
func (a *Agent) markRemoved(ctx context.Context) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	n := a.nodeState()
	if n == nil || n.Removed {
		return
	}
	if s, ok := a.selfInConfig(); ok && s == raft.Voter && a.stillMemberPerPeers(ctx) {
		a.log.WarnContext(ctx, "removal notice ignored: peers still list this node")
		return
	}
	if err := a.stopRaft(); err != nil {
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

// rememberPeers records the members' API addresses in node.json when they
// changed (called from the leadership watcher).
func (a *Agent) rememberPeers() {
	peers := map[string]string{}
	for id, n := range a.fsm.Meta().Nodes {
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
	r := a.getRaft()
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
	for id, n := range a.fsm.Meta().Nodes {
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
	if a.getRaft() == nil {
		return true
	}
	if _, ok := a.selfInConfig(); !ok {
		return false
	}
	return a.stillMemberPerPeers(ctx)
}

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
	if err := a.stopRaft(); err != nil {
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
