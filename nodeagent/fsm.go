package nodeagent

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drbook/drbook/nodeagent/token"
)

// NodeInfo is what the cluster knows of one member besides raft.
type NodeInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	// CertSHA256 is the hex SHA-256 of the node certificate the cluster
	// issued; it is revoked when the node is removed.
	CertSHA256 string `json:"cert_sha256,omitempty"`
}

// BackupInfo records the last backup taken anywhere in the cluster.
type BackupInfo struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Node string    `json:"node"`
	Keys int       `json:"keys"`
}

// MembershipChange marks a removal in progress (one node at a time).
type MembershipChange struct {
	Op      string    `json:"op"`
	NodeID  string    `json:"node_id"`
	Started time.Time `json:"started"`
	// Term is the raft term of the leader that began the change (a marker
	// no removal runs is cleared by the next removal on the leader).
	Term uint64 `json:"term,omitempty"`
}

// ClusterMeta is the replicated cluster metadata. Secrets appear only hashed
// (tokens, API keys) or sealed under the CMK (the CA private key).
type ClusterMeta struct {
	ClusterID    string                        `json:"cluster_id"`
	Founder      string                        `json:"founder"`
	Created      time.Time                     `json:"created"`
	CACertPEM    []byte                        `json:"ca_cert_pem"`
	CAKeySealed  []byte                        `json:"ca_key_sealed"`
	CMKID        string                        `json:"cmk_id"`
	Tokens       map[string]token.Record       `json:"tokens"`
	APIKeys      map[string]token.APIKeyRecord `json:"api_keys"`
	Nodes        map[string]NodeInfo           `json:"nodes"`
	LastBackup   *BackupInfo                   `json:"last_backup,omitempty"`
	Change       *MembershipChange             `json:"change,omitempty"`
	RestoredAt   time.Time                     `json:"restored_at,omitzero"`
	RestoredFrom string                        `json:"restored_from,omitempty"`
	// Revoked maps the certificate fingerprints of removed nodes to their
	// node ids; those certificates are refused by raft and internal calls.
	Revoked map[string]string          `json:"revoked,omitempty"`
	Extra   map[string]json.RawMessage `json:"extra,omitempty"`
}

// command opcodes: the first byte of every raft log entry.
const (
	opInit byte = iota + 1
	opKeysCreate
	opKeysDelete
	opTokenAdd
	opTokenUse
	opNodePut
	opNodeDelete
	opBackupRecorded
	opChangeBegin
	opChangeEnd
	opRestore
)

// initCmd seeds the cluster metadata at bootstrap.
type initCmd struct {
	Meta   ClusterMeta        `json:"meta"`
	APIKey token.APIKeyRecord `json:"api_key"`
}

// tokenRetryWindow is how long after its use a join token still admits
// the same node id again (a joiner retrying after a lost answer); any other
// node is refused at once.
const tokenRetryWindow = 10 * time.Minute

// tokenUseCmd marks a join token used; Now is the leader's clock.
type tokenUseCmd struct {
	ID     string    `json:"id"`
	UsedBy string    `json:"used_by"`
	Now    time.Time `json:"now"`
}

// restoreHeader precedes the keys of an opRestore entry. NewCMKSealed is the
// backup's CMK sealed under the cluster's current CMK.
type restoreHeader struct {
	NewCMKSealed []byte               `json:"new_cmk_sealed"`
	NewCMKID     string               `json:"new_cmk_id"`
	CAKeySealed  []byte               `json:"ca_key_sealed"`
	At           time.Time            `json:"at"`
	APIKeys      []token.APIKeyRecord `json:"api_keys"`
	From         string               `json:"from"`
}

// cmkAdopter lets the FSM switch the node's CMK when a restore is applied.
type cmkAdopter interface {
	// CMKID identifies the node's current CMK.
	CMKID() string
	// AdoptCMK opens sealedUnderCurrent with the current CMK, re-seals it
	// with the node key and makes it current.
	AdoptCMK(sealedUnderCurrent []byte, id string) error
}

// createResult is the FSM answer to opKeysCreate: one flag per key.
type createResult struct{ Created []bool }

// deleteResult is the FSM answer to opKeysDelete: one flag per id.
type deleteResult struct{ Deleted []bool }

// FSM is the replicated state machine: keys and cluster metadata.
type FSM struct {
	// index is the raft index of the last command applied (or restored);
	// raft's own applied index runs ahead of the FSM goroutine.
	index atomic.Uint64

	mu   sync.RWMutex
	keys map[string]*Key
	meta ClusterMeta
	cmk  cmkAdopter
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty FSM; cmk may be nil in tools that never apply a
// restore.
func NewFSM(cmk cmkAdopter) *FSM {
	return &FSM{keys: make(map[string]*Key), meta: emptyMeta(), cmk: cmk}
}

func emptyMeta() ClusterMeta {
	return ClusterMeta{Tokens: map[string]token.Record{}, APIKeys: map[string]token.APIKeyRecord{}, Nodes: map[string]NodeInfo{}}
}

func encodeJSONCmd(op byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return append([]byte{op}, b...), nil
}

func encodeKeysCmd(op byte, keys []*Key) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(op)
	if err := newKeyWriter(&buf).writeKeys(keys); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeRestoreCmd(h restoreHeader, keys []*Key) ([]byte, error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(keys)*128 + len(hb) + 16)
	buf.WriteByte(opRestore)
	var lb [binary.MaxVarintLen64]byte
	buf.Write(lb[:binary.PutUvarint(lb[:], uint64(len(hb)))])
	buf.Write(hb)
	if err := newKeyWriter(&buf).writeKeys(keys); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// applyFunc applies the body of one command (the entry without its opcode
// byte) to the FSM, under its write lock. It returns nil, an error value or
// a result struct, which raft hands back to the Apply caller.
type applyFunc func(f *FSM, body []byte) any

// appliers maps each opcode to its apply function: one function per
// operation, so adding an operation is adding a constant, an encoder and
// a line here. An opcode absent from the table is answered with an error
// (never a panic): a newer leader's entry on an older follower.
var appliers = [...]applyFunc{
	opInit:           (*FSM).applyInit,
	opKeysCreate:     (*FSM).applyKeysCreate,
	opKeysDelete:     (*FSM).applyKeysDelete,
	opTokenAdd:       (*FSM).applyTokenAdd,
	opTokenUse:       (*FSM).applyTokenUse,
	opNodePut:        (*FSM).applyNodePut,
	opNodeDelete:     (*FSM).applyNodeDelete,
	opBackupRecorded: (*FSM).applyBackupRecorded,
	opChangeBegin:    (*FSM).applyChangeBegin,
	opChangeEnd:      (*FSM).applyChangeEnd,
	opRestore:        (*FSM).applyRestore,
}

// Apply applies one committed log entry. It returns an error value or a
// result struct; it never panics on a malformed entry.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	op, body := l.Data[0], l.Data[1:]
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.index.Store(l.Index)
	if int(op) >= len(appliers) || appliers[op] == nil {
		return fmt.Errorf("unknown command opcode %d", op)
	}
	return appliers[op](f, body)
}

// decodeCmd decodes a JSON command body into a T.
func decodeCmd[T any](body []byte) (T, error) {
	var v T
	err := json.Unmarshal(body, &v)
	return v, err
}

func (f *FSM) applyInit(body []byte) any {
	c, err := decodeCmd[initCmd](body)
	if err != nil {
		return err
	}
	m := c.Meta
	if m.Tokens == nil {
		m.Tokens = map[string]token.Record{}
	}
	if m.APIKeys == nil {
		m.APIKeys = map[string]token.APIKeyRecord{}
	}
	if m.Nodes == nil {
		m.Nodes = map[string]NodeInfo{}
	}
	m.APIKeys[c.APIKey.ID] = c.APIKey
	f.meta = m
	return nil
}

func (f *FSM) applyKeysCreate(body []byte) any {
	keys, err := newKeyReader(bytes.NewReader(body)).readKeys()
	if err != nil {
		return err
	}
	res := createResult{Created: make([]bool, len(keys))}
	for i, k := range keys {
		if _, ok := f.keys[k.ID]; ok {
			continue
		}
		f.keys[k.ID] = k
		res.Created[i] = true
	}
	return res
}

func (f *FSM) applyKeysDelete(body []byte) any {
	ids, err := decodeCmd[[]string](body)
	if err != nil {
		return err
	}
	res := deleteResult{Deleted: make([]bool, len(ids))}
	for i, id := range ids {
		if _, ok := f.keys[id]; ok {
			delete(f.keys, id)
			res.Deleted[i] = true
		}
	}
	return res
}

func (f *FSM) applyTokenAdd(body []byte) any {
	r, err := decodeCmd[token.Record](body)
	if err != nil {
		return err
	}
	f.meta.Tokens[r.ID] = r
	// Forget tokens long expired so metadata stays small.
	for id, t := range f.meta.Tokens {
		if t.Expires.Before(r.Created.Add(-7 * 24 * time.Hour)) {
			delete(f.meta.Tokens, id)
		}
	}
	return nil
}

func (f *FSM) applyTokenUse(body []byte) any {
	c, err := decodeCmd[tokenUseCmd](body)
	if err != nil {
		return err
	}
	r, ok := f.meta.Tokens[c.ID]
	switch {
	case !ok:
		return ErrTokenInvalid
	case !r.UsedAt.IsZero() && r.UsedBy == c.UsedBy && c.Now.Sub(r.UsedAt) < tokenRetryWindow:
		return nil // the same joiner retrying after a lost answer
	case !r.UsedAt.IsZero():
		return ErrTokenUsed
	case !c.Now.Before(r.Expires):
		return ErrTokenExpired
	}
	r.UsedAt, r.UsedBy = c.Now, c.UsedBy
	f.meta.Tokens[c.ID] = r
	return nil
}

func (f *FSM) applyNodePut(body []byte) any {
	n, err := decodeCmd[NodeInfo](body)
	if err != nil {
		return err
	}
	f.meta.Nodes[n.ID] = n
	return nil
}

func (f *FSM) applyNodeDelete(body []byte) any {
	id, err := decodeCmd[string](body)
	if err != nil {
		return err
	}
	if n, ok := f.meta.Nodes[id]; ok && n.CertSHA256 != "" {
		if f.meta.Revoked == nil {
			f.meta.Revoked = map[string]string{}
		}
		f.meta.Revoked[n.CertSHA256] = id
	}
	delete(f.meta.Nodes, id)
	return nil
}

func (f *FSM) applyBackupRecorded(body []byte) any {
	b, err := decodeCmd[BackupInfo](body)
	if err != nil {
		return err
	}
	f.meta.LastBackup = &b
	return nil
}

func (f *FSM) applyChangeBegin(body []byte) any {
	c, err := decodeCmd[MembershipChange](body)
	if err != nil {
		return err
	}
	if f.meta.Change != nil && f.meta.Change.NodeID != c.NodeID {
		return ErrMembershipChange
	}
	f.meta.Change = &c
	return nil
}

func (f *FSM) applyChangeEnd([]byte) any {
	f.meta.Change = nil
	return nil
}

func (f *FSM) applyRestore(body []byte) any {
	r := bytes.NewReader(body)
	n, err := binary.ReadUvarint(r)
	if err != nil || n > maxField {
		return fmt.Errorf("restore header: %v", err)
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(r, hb); err != nil {
		return err
	}
	var h restoreHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return err
	}
	if len(f.keys) > 0 {
		return ErrRestoreTarget
	}
	keys, err := newKeyReader(r).readKeys()
	if err != nil {
		return err
	}
	if f.cmk != nil && f.cmk.CMKID() != h.NewCMKID {
		if err := f.cmk.AdoptCMK(h.NewCMKSealed, h.NewCMKID); err != nil {
			return fmt.Errorf("adopt restored CMK: %w", err)
		}
	}
	for _, k := range keys {
		f.keys[k.ID] = k
	}
	f.meta.CMKID = h.NewCMKID
	f.meta.CAKeySealed = h.CAKeySealed
	f.meta.RestoredAt = h.At
	f.meta.RestoredFrom = h.From
	for _, k := range h.APIKeys {
		f.meta.APIKeys[k.ID] = k
	}
	return nil
}

// Meta returns a deep-enough copy of the cluster metadata.
func (f *FSM) Meta() ClusterMeta {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := f.meta
	m.Tokens = make(map[string]token.Record, len(f.meta.Tokens))
	for k, v := range f.meta.Tokens {
		m.Tokens[k] = v
	}
	m.APIKeys = make(map[string]token.APIKeyRecord, len(f.meta.APIKeys))
	for k, v := range f.meta.APIKeys {
		m.APIKeys[k] = v
	}
	m.Nodes = make(map[string]NodeInfo, len(f.meta.Nodes))
	for k, v := range f.meta.Nodes {
		m.Nodes[k] = v
	}
	m.Revoked = make(map[string]string, len(f.meta.Revoked))
	for k, v := range f.meta.Revoked {
		m.Revoked[k] = v
	}
	return m
}

// IsRevoked reports whether a node certificate (hex SHA-256 of its DER) was
// revoked by a removal.
func (f *FSM) IsRevoked(fp string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.meta.Revoked[fp]
	return ok
}

// Index returns the raft index of the last command the FSM applied.
func (f *FSM) Index() uint64 { return f.index.Load() }

// KeyCount returns the number of keys.
func (f *FSM) KeyCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.keys)
}

// Get returns one key (shared, never mutated).
func (f *FSM) Get(id string) (*Key, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	k, ok := f.keys[id]
	return k, ok
}

// Keys returns every key sorted by id.
func (f *FSM) Keys() []*Key {
	f.mu.RLock()
	keys := make([]*Key, 0, len(f.keys))
	for _, k := range f.keys {
		keys = append(keys, k)
	}
	f.mu.RUnlock()
	sort.Slice(keys, func(i, j int) bool { return keys[i].ID < keys[j].ID })
	return keys
}

// State returns a consistent copy of metadata and keys (keys unsorted).
func (f *FSM) State() (ClusterMeta, []*Key) {
	m := f.Meta()
	f.mu.RLock()
	keys := make([]*Key, 0, len(f.keys))
	for _, k := range f.keys {
		keys = append(keys, k)
	}
	f.mu.RUnlock()
	return m, keys
}

const snapshotMagic = "DRBKSNP1"

// Snapshot captures the state cheaply: keys are immutable, so the snapshot
// holds pointers taken under the read lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	mb, err := json.Marshal(f.meta)
	if err != nil {
		return nil, fmt.Errorf("snapshot metadata: %w", err)
	}
	keys := make([]*Key, 0, len(f.keys))
	for _, k := range f.keys {
		keys = append(keys, k)
	}
	return &fsmSnapshot{meta: mb, keys: keys, index: f.index.Load()}, nil
}

// Restore replaces the state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 256<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return errors.New("restore snapshot: bad magic")
	}
	index, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("restore snapshot index: %w", err)
	}
	kr := newKeyReader(br)
	mb, err := kr.bytes()
	if err != nil {
		return fmt.Errorf("restore snapshot metadata: %w", err)
	}
	meta := emptyMeta()
	if err := json.Unmarshal(mb, &meta); err != nil {
		return fmt.Errorf("restore snapshot metadata: %w", err)
	}
	if meta.Tokens == nil {
		meta.Tokens = map[string]token.Record{}
	}
	if meta.APIKeys == nil {
		meta.APIKeys = map[string]token.APIKeyRecord{}
	}
	if meta.Nodes == nil {
		meta.Nodes = map[string]NodeInfo{}
	}
	keys, err := kr.readKeys()
	if err != nil {
		return fmt.Errorf("restore snapshot keys: %w", err)
	}
	m := make(map[string]*Key, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	f.mu.Lock()
	f.keys, f.meta = m, meta
	f.index.Store(index)
	f.mu.Unlock()
	return nil
}

type fsmSnapshot struct {
	meta  []byte
	keys  []*Key
	index uint64
}

// Persist writes the snapshot; it cancels the sink on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	err := func() error {
		bw := bufio.NewWriterSize(sink, 1<<20)
		if _, err := bw.WriteString(snapshotMagic); err != nil {
			return err
		}
		kw := newKeyWriter(bw)
		if err := kw.uvarint(s.index); err != nil {
			return err
		}
		if err := kw.bytes(s.meta); err != nil {
			return err
		}
		return kw.writeKeys(s.keys)
	}()
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release is a no-op.
func (s *fsmSnapshot) Release() {}

// APIKey returns the stored API key record with the given id.
func (f *FSM) APIKey(id string) (token.APIKeyRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.meta.APIKeys[id]
	return r, ok
}
