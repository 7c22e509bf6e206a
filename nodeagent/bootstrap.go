// Cluster creation: `cluster create` founds a one-node cluster (CA, CMK,
// node certificate, first API key) and resumes an interrupted bootstrap.

package nodeagent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drbook/drbook/nodeagent/pki"
	"github.com/drbook/drbook/nodeagent/seal"
	"github.com/drbook/drbook/nodeagent/token"
)

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
	r := a.store.Raft()
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
	if a.store.State().Meta().ClusterID != "" {
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
	if _, err := applyJSON(ctx, a.store, opInit, initCmd{Meta: meta, APIKey: rec}); err != nil {
		return res, fmt.Errorf("store cluster metadata: %w", err)
	}
	res.Changed, res.APIKey = true, plain
	res.Message = "cluster created; the API key is shown only once"
	a.log.InfoContext(ctx, "cluster bootstrapped", "cluster_id", n.ClusterID)
	return res, nil
}
