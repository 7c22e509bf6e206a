package nodeagent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drbook/drbook/nodeagent/backup"
	"github.com/drbook/drbook/nodeagent/seal"
	"github.com/drbook/drbook/nodeagent/token"
)

// payloadMagic starts a backup payload (inside the encrypted file).
const payloadMagic = "DRBKPL01"

// payloadHeader is the cluster metadata inside a backup, CMK included; the
// whole payload is encrypted with the passphrase-derived key.
type payloadHeader struct {
	ClusterID string               `json:"cluster_id"`
	CMK       []byte               `json:"cmk"`
	CMKID     string               `json:"cmk_id"`
	APIKeys   []token.APIKeyRecord `json:"api_keys"`
	Created   time.Time            `json:"created"`
}

func encodePayload(h payloadHeader, keys []*Key) ([]byte, error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(keys)*128 + len(hb) + 32)
	buf.WriteString(payloadMagic)
	kw := newKeyWriter(&buf)
	if err := kw.bytes(hb); err != nil {
		return nil, err
	}
	if err := kw.writeKeys(keys); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodePayload(p []byte) (payloadHeader, []*Key, error) {
	var h payloadHeader
	if !bytes.HasPrefix(p, []byte(payloadMagic)) {
		return h, nil, errors.New("payload: bad magic")
	}
	kr := newKeyReader(bytes.NewReader(p[len(payloadMagic):]))
	hb, err := kr.bytes()
	if err != nil {
		return h, nil, fmt.Errorf("payload header: %w", err)
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, nil, fmt.Errorf("payload header: %w", err)
	}
	keys, err := kr.readKeys()
	if err != nil {
		return h, nil, err
	}
	if _, err := kr.r.ReadByte(); !errors.Is(err, io.EOF) {
		return h, nil, errors.New("payload: trailing data")
	}
	if len(h.CMK) != seal.KeySize || cmkID(h.CMK) != h.CMKID {
		return h, nil, errors.New("payload: malformed cluster master key")
	}
	return h, keys, nil
}

// BackupArgs are the arguments of backup_create. The passphrase travels
// only over the 0600 admin socket.
type BackupArgs struct {
	Out        string        `json:"out,omitempty"`
	Passphrase []byte        `json:"passphrase"`
	Keep       int           `json:"keep"`
	MaxAge     time.Duration `json:"max_age"`
}

// BackupResult is the answer of `backup create`.
type BackupResult struct {
	ID         string   `json:"id"`
	File       string   `json:"file"`
	Keys       int      `json:"keys"`
	Bytes      int64    `json:"bytes"`
	Seconds    float64  `json:"seconds"`
	Consistent bool     `json:"consistent"`
	Recorded   bool     `json:"recorded"`
	Pruned     []string `json:"pruned"`
}

func (a *Agent) backupDir() string { return filepath.Join(a.cfg.DataDir, backupsDir) }

// BackupCreate writes an encrypted full backup (keys, metadata, CMK),
// records it in the cluster, and applies retention to DATA/backups. Without
// a leader it still writes the backup from local state (consistent=false).
func (a *Agent) BackupCreate(ctx context.Context, args BackupArgs) (BackupResult, error) {
	start := time.Now()
	if len(args.Passphrase) == 0 {
		return BackupResult{}, fmt.Errorf("%w: a passphrase is required (--key-file or DRBOOK_BACKUP_PASSPHRASE)", ErrUsage)
	}
	n := a.nodeState()
	r := a.store.Raft()
	if n == nil || r == nil {
		return BackupResult{}, ErrNoClusterState
	}
	res := BackupResult{Consistent: true, Pruned: []string{}}
	if err := a.readBarrier(ctx); err != nil {
		if !errors.Is(err, ErrUnavailable) {
			return res, err
		}
		res.Consistent = false
	}
	applied := r.AppliedIndex()
	meta, keys := a.store.State().State()
	cmk := a.currentCMK()
	h := payloadHeader{ClusterID: meta.ClusterID, CMK: cmk, CMKID: cmkID(cmk), Created: start.UTC()}
	for _, k := range meta.APIKeys {
		h.APIKeys = append(h.APIKeys, k)
	}
	payload, err := encodePayload(h, keys)
	if err != nil {
		return res, fmt.Errorf("encode backup payload: %w", err)
	}
	res.ID = "bk-" + start.UTC().Format("20060102T150405.000Z") + "-" + randHex(2)
	res.ID = strings.ReplaceAll(res.ID, ".", "")
	res.File = args.Out
	if res.File == "" {
		if err := os.MkdirAll(a.backupDir(), 0o700); err != nil {
			return res, fmt.Errorf("create backup dir: %w", err)
		}
		res.File = filepath.Join(a.backupDir(), res.ID+".drbk")
	}
	bm := backup.Meta{ClusterID: meta.ClusterID, NodeID: a.cfg.NodeID, CreatedAt: start.UTC(), KeyCount: len(keys), AppliedIndex: applied}
	if err := backup.WriteFile(ctx, res.File, bm, payload, args.Passphrase, backup.DefaultKDF); err != nil {
		return res, fmt.Errorf("write backup: %w", err)
	}
	clear(payload)
	if fi, err := os.Stat(res.File); err == nil {
		res.Bytes = fi.Size()
	}
	res.Keys = len(keys)
	info := BackupInfo{ID: res.ID, Time: start.UTC(), Node: a.cfg.NodeID, Keys: len(keys)}
	if res.Consistent { // without a leader there is nowhere to record it
		if _, err := onLeader(ctx, a, "backup_recorded", info, func(ctx context.Context) (struct{}, error) {
			return a.recordBackup(ctx, info)
		}); err == nil {
			res.Recorded = true
		} else {
			a.log.WarnContext(ctx, "backup written but not recorded in the cluster", "err", err)
		}
	}
	pruned, err := a.prune(args.Keep, args.MaxAge)
	if err != nil {
		return res, err
	}
	res.Pruned = pruned
	res.Seconds = time.Since(start).Seconds()
	a.log.InfoContext(ctx, "backup written", "id", res.ID, "keys", res.Keys, "bytes", res.Bytes)
	return res, nil
}

func (a *Agent) recordBackup(ctx context.Context, info BackupInfo) (struct{}, error) {
	_, err := applyJSON(ctx, a.store, opBackupRecorded, info)
	return struct{}{}, err
}

// prune applies retention (count and age) to DATA/backups.
func (a *Agent) prune(keep int, maxAge time.Duration) ([]string, error) {
	if keep == 0 {
		keep = backup.DefaultKeep
	}
	if maxAge == 0 {
		maxAge = backup.DefaultMaxAge
	}
	entries, err := a.BackupList(context.Background())
	if err != nil {
		return nil, err
	}
	var es []backup.Entry
	for _, e := range entries {
		es = append(es, backup.Entry{ID: e.ID, Path: e.File, CreatedAt: e.Created, Size: e.Bytes})
	}
	out := []string{}
	for _, e := range backup.Prune(es, keep, maxAge, time.Now()) {
		if err := os.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return out, fmt.Errorf("prune backup %s: %w", e.ID, err)
		}
		out = append(out, e.ID)
	}
	return out, nil
}

// BackupEntry describes a backup file in DATA/backups.
type BackupEntry struct {
	ID        string    `json:"id"`
	File      string    `json:"file"`
	Created   time.Time `json:"created"`
	Keys      int       `json:"keys"`
	Bytes     int64     `json:"bytes"`
	ClusterID string    `json:"cluster_id"`
	NodeID    string    `json:"node_id"`
}

// BackupList lists DATA/backups, newest first, from the files' plaintext
// headers (no passphrase needed).
func (a *Agent) BackupList(ctx context.Context) ([]BackupEntry, error) {
	des, err := os.ReadDir(a.backupDir())
	if errors.Is(err, fs.ErrNotExist) {
		return []BackupEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	out := []BackupEntry{}
	for _, de := range des {
		name := de.Name()
		if !strings.HasSuffix(name, ".drbk") || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(a.backupDir(), name)
		e := BackupEntry{ID: strings.TrimSuffix(name, ".drbk"), File: path}
		if fi, err := de.Info(); err == nil {
			e.Bytes = fi.Size()
			e.Created = fi.ModTime().UTC()
		}
		// #nosec G304 -- a backup file in the agent's backup directory, listed by the agent itself
		if f, err := os.Open(path); err == nil {
			if m, err := backup.ReadMeta(bufio.NewReader(f)); err == nil {
				e.Created, e.Keys, e.ClusterID, e.NodeID = m.CreatedAt, m.KeyCount, m.ClusterID, m.NodeID
			}
			f.Close()
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(x, y BackupEntry) int { return y.Created.Compare(x.Created) })
	return out, nil
}

// BackupDeleteArgs are the arguments of backup_delete.
type BackupDeleteArgs struct {
	ID string `json:"id"`
}

// BackupDeleteResult is the answer of `backup delete`.
type BackupDeleteResult struct {
	ID      string `json:"id"`
	Changed bool   `json:"changed"`
}

// BackupDelete deletes DATA/backups/ID.drbk.
func (a *Agent) BackupDelete(ctx context.Context, id string) (BackupDeleteResult, error) {
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return BackupDeleteResult{}, fmt.Errorf("%w: bad backup id %q", ErrUsage, id)
	}
	err := os.Remove(filepath.Join(a.backupDir(), id+".drbk"))
	if errors.Is(err, fs.ErrNotExist) {
		return BackupDeleteResult{ID: id}, fmt.Errorf("%w: backup %s", ErrNotFound, id)
	}
	if err != nil {
		return BackupDeleteResult{}, fmt.Errorf("delete backup: %w", err)
	}
	return BackupDeleteResult{ID: id, Changed: true}, nil
}

// RestoreArgs are the arguments of restore.
type RestoreArgs struct {
	File       string `json:"file"`
	Passphrase []byte `json:"passphrase"`
}

// RestoreResult is the answer of `restore`.
type RestoreResult struct {
	Changed         bool      `json:"changed"`
	Message         string    `json:"message"`
	Keys            int       `json:"keys"`
	ClusterID       string    `json:"cluster_id"`
	SourceClusterID string    `json:"source_cluster_id"`
	BackupCreated   time.Time `json:"backup_created"`
	Seconds         float64   `json:"seconds"`
}

// Restore verifies the whole backup, then (only onto a freshly bootstrapped
// single-node cluster with no keys) adopts its keys and CMK through raft.
func (a *Agent) Restore(ctx context.Context, args RestoreArgs) (RestoreResult, error) {
	start := time.Now()
	if args.File == "" || len(args.Passphrase) == 0 {
		return RestoreResult{}, fmt.Errorf("%w: a backup file and a passphrase are required", ErrUsage)
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if _, err := os.Stat(args.File); errors.Is(err, fs.ErrNotExist) {
		return RestoreResult{}, fmt.Errorf("%w: backup file %s", ErrNotFound, args.File)
	}
	bm, payload, err := backup.ReadFile(args.File, args.Passphrase)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("%w: %w", ErrBackupRejected, err)
	}
	h, keys, err := decodePayload(payload)
	clear(payload)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("%w: %w", ErrBackupRejected, err)
	}
	defer clear(h.CMK)
	n := a.nodeState()
	r := a.store.Raft()
	if n == nil || r == nil {
		return RestoreResult{}, fmt.Errorf("%w: node has no cluster; bootstrap first", ErrRestoreTarget)
	}
	res := RestoreResult{ClusterID: n.ClusterID, SourceClusterID: h.ClusterID, BackupCreated: bm.CreatedAt, Keys: a.store.State().KeyCount()}
	if _, _, self, err := a.leaderAPIAddr(ctx, 5*time.Second); err != nil || !self {
		return res, fmt.Errorf("%w: this node is not the leader of a single-node cluster", ErrRestoreTarget)
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return res, err
	}
	if servers := f.Configuration().Servers; len(servers) != 1 || servers[0].ID != raft.ServerID(n.NodeID) {
		return res, fmt.Errorf("%w: cluster has %d members", ErrRestoreTarget, len(servers))
	}
	meta := a.store.State().Meta()
	if meta.RestoredFrom == bm.PayloadSHA256 && meta.CMKID == h.CMKID {
		res.Message = "this backup was already restored; nothing changed"
		return res, nil
	}
	if cnt := a.store.State().KeyCount(); cnt > 0 {
		return res, fmt.Errorf("%w: cluster already holds %d keys", ErrRestoreTarget, cnt)
	}
	cur := a.currentCMK()
	caKey, err := seal.Open(cur, meta.CAKeySealed, caKeyAAD(meta.ClusterID))
	if err != nil {
		return res, fmt.Errorf("open CA key: %w", err)
	}
	caKeySealed, err := seal.Seal(h.CMK, caKey, caKeyAAD(meta.ClusterID))
	clear(caKey)
	if err != nil {
		return res, err
	}
	transfer, err := seal.Seal(cur, h.CMK, transferAAD(h.CMKID))
	if err != nil {
		return res, err
	}
	cmd, err := encodeRestoreCmd(restoreHeader{NewCMKSealed: transfer, NewCMKID: h.CMKID, CAKeySealed: caKeySealed,
		At: time.Now().UTC(), APIKeys: h.APIKeys, From: bm.PayloadSHA256}, keys)
	if err != nil {
		return res, err
	}
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := a.store.Apply(actx, cmd); err != nil {
		return res, fmt.Errorf("apply restore: %w", err)
	}
	res.Changed, res.Keys = true, a.store.State().KeyCount()
	res.Message = "backup restored: keys and cluster master key adopted"
	res.Seconds = time.Since(start).Seconds()
	a.log.InfoContext(ctx, "backup restored", "keys", res.Keys, "source_cluster", h.ClusterID)
	return res, nil
}
