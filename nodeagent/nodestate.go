package nodeagent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/drbook/drbook/internal/capread"
	"github.com/drbook/drbook/nodeagent/seal"
)

// nodeFile is the node's own persistent identity (DATA/node.json, 0600).
// Private material in it is sealed with the node sealing key (DATA/node.key).
type nodeFile struct {
	NodeID    string `json:"node_id"`
	ClusterID string `json:"cluster_id"`
	Founder   bool   `json:"founder"`
	CACertPEM []byte `json:"ca_cert_pem"`
	CertPEM   []byte `json:"cert_pem"`
	KeySealed []byte `json:"tls_key_sealed"`
	CMKSealed []byte `json:"cmk_sealed"`
	CMKID     string `json:"cmk_id"`
	Removed   bool   `json:"removed,omitempty"`
	// Peers caches the members' API addresses (id -> addr) so that a node
	// restarted with stale state can still ask its peers whether it is a
	// member before its FSM catches up.
	Peers map[string]string `json:"peers,omitempty"`
}

const (
	nodeFileName = "node.json"
	nodeKeyName  = "node.key"
	socketName   = "admin.sock"
	caFileName   = "ca.pem"
	raftDirName  = "raft"
	backupsDir   = "backups"
)

func tlsKeyAAD(nodeID string) []byte   { return []byte("drbook/tls-key/" + nodeID) }
func cmkAAD(nodeID string) []byte      { return []byte("drbook/cmk/" + nodeID) }
func caKeyAAD(clusterID string) []byte { return []byte("drbook/ca-key/" + clusterID) }
func keyAAD(id string) []byte          { return []byte("drbook/key/" + id) }
func transferAAD(id string) []byte     { return []byte("drbook/cmk-transfer/" + id) }

// cmkID identifies a CMK without revealing it.
func cmkID(cmk []byte) string {
	h := sha256.Sum256(append([]byte("drbook/cmk-id\x00"), cmk...))
	return hex.EncodeToString(h[:8])
}

// certSHA256 returns the hex SHA-256 of a PEM certificate's DER, or "".
func certSHA256(certPEM []byte) string {
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return ""
	}
	return derSHA256(b.Bytes)
}

func derSHA256(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// maxNodeFileBytes bounds DATA/node.json.
const maxNodeFileBytes = 1 << 20

// loadNodeFile reads DATA/node.json; it returns (nil, nil) if absent.
func loadNodeFile(dir string) (*nodeFile, error) {
	// The agent's own state file: a few hundred bytes; the cap keeps a
	// device or FIFO put in its place from being read without end.
	b, err := capread.ReadFile(filepath.Join(dir, nodeFileName), maxNodeFileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read node state: %w", err)
	}
	var n nodeFile
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("parse node state: %w", err)
	}
	return &n, nil
}

// saveNodeFile writes DATA/node.json atomically with mode 0600.
func saveNodeFile(dir string, n *nodeFile) error {
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("encode node state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, nodeFileName), b, 0o600); err != nil {
		return fmt.Errorf("write node state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, caFileName), n.CACertPEM, 0o644); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	return nil
}

// writeFileAtomic writes through a temporary file, fsyncs and renames.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// sealCMK seals the CMK with the node key for storage in node.json.
func sealCMK(nodeKey []byte, nodeID string, cmk []byte) ([]byte, error) {
	return seal.Seal(nodeKey, cmk, cmkAAD(nodeID))
}

// openCMK opens the node's sealed CMK.
func openCMK(nodeKey []byte, n *nodeFile) ([]byte, error) {
	cmk, err := seal.Open(nodeKey, n.CMKSealed, cmkAAD(n.NodeID))
	if err != nil {
		return nil, fmt.Errorf("open sealed CMK with node key: %w", err)
	}
	return cmk, nil
}
