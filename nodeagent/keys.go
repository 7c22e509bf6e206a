package nodeagent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/drbook/drbook/nodeagent/seal"
)

// KeySpec describes a key to create. Empty ID: the leader picks one; empty
// Material: 32 random bytes.
type KeySpec struct {
	ID       string `json:"id,omitempty"`
	Name     string `json:"name,omitempty"`
	Type     string `json:"type,omitempty"`
	Group    string `json:"group,omitempty"`
	Material []byte `json:"material,omitempty"`
}

// KeyInfo describes a key; Material is set only when asked for.
type KeyInfo struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Type     string    `json:"type,omitempty"`
	Group    string    `json:"group,omitempty"`
	Created  time.Time `json:"created"`
	Material []byte    `json:"material,omitempty"`
	SHA256   string    `json:"sha256,omitempty"`
}

// CreateResult reports one create: Created is false if the id existed.
type CreateResult struct {
	ID      string `json:"id"`
	Created bool   `json:"created"`
}

type createReq struct {
	Keys []KeySpec `json:"keys"`
}

func validKeyID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// CreateKeys creates keys through the leader. Material is sealed under the
// CMK on the leader before it enters the raft log.
func (a *Agent) CreateKeys(ctx context.Context, specs []KeySpec) ([]CreateResult, error) {
	for _, s := range specs {
		if s.ID != "" && !validKeyID(s.ID) {
			return nil, fmt.Errorf("%w: key id %q: use 1-128 characters of [A-Za-z0-9._-]", ErrUsage, s.ID)
		}
	}
	return onLeader(ctx, a, "keys_create", createReq{Keys: specs}, func(ctx context.Context) ([]CreateResult, error) {
		return a.createKeysLeader(ctx, specs)
	})
}

func (a *Agent) createKeysLeader(ctx context.Context, specs []KeySpec) ([]CreateResult, error) {
	cmk := a.currentCMK()
	now := time.Now().UnixNano()
	keys := make([]*Key, len(specs))
	for i, s := range specs {
		k := &Key{ID: s.ID, Name: s.Name, Type: s.Type, Group: s.Group, Created: now}
		if k.ID == "" {
			k.ID = randHex(16)
		}
		if k.Type == "" {
			k.Type = "aes256"
		}
		mat := s.Material
		if len(mat) == 0 {
			mat = make([]byte, 32)
			_, _ = rand.Read(mat)
		}
		sealed, err := seal.Seal(cmk, mat, keyAAD(k.ID))
		if err != nil {
			return nil, err
		}
		k.Sealed = sealed
		keys[i] = k
	}
	created, err := a.batcher.submit(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]CreateResult, len(keys))
	for i, k := range keys {
		out[i] = CreateResult{ID: k.ID, Created: created[i]}
	}
	return out, nil
}

// LoadResult is the answer of `keys load`.
type LoadResult struct {
	Created int     `json:"created"`
	Keys    int     `json:"keys"`
	Seconds float64 `json:"seconds"`
}

type loadReq struct {
	Count int    `json:"count"`
	Batch int    `json:"batch"`
	Group string `json:"group"`
}

// LoadKeys creates count synthetic keys in batches (for drills).
func (a *Agent) LoadKeys(ctx context.Context, count, batch int, group string) (LoadResult, error) {
	if count <= 0 || count > 10_000_000 {
		return LoadResult{}, fmt.Errorf("%w: --count must be 1..10000000", ErrUsage)
	}
	if batch <= 0 {
		batch = 1000
	}
	if group == "" {
		group = "drill"
	}
	req := loadReq{Count: count, Batch: batch, Group: group}
	return onLeader(ctx, a, "keys_load", req, func(ctx context.Context) (LoadResult, error) {
		start := time.Now()
		res := LoadResult{}
		var mu sync.Mutex
		var firstErr error
		sem := make(chan struct{}, 4)
		var wg sync.WaitGroup
		for done := 0; done < count; done += batch {
			n := min(batch, count-done)
			specs := make([]KeySpec, n)
			for i := range specs {
				specs[i] = KeySpec{Name: fmt.Sprintf("load-%d", done+i), Group: group}
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				out, err := a.createKeysLeader(ctx, specs)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				for _, r := range out {
					if r.Created {
						res.Created++
					}
				}
			}()
			mu.Lock()
			stop := firstErr != nil
			mu.Unlock()
			if stop {
				break
			}
		}
		wg.Wait()
		res.Keys = a.store.State().KeyCount()
		res.Seconds = time.Since(start).Seconds()
		return res, firstErr
	})
}

type idsReq struct {
	IDs []string `json:"ids"`
}

// DeleteResult is the answer of `keys delete`.
type DeleteResult struct {
	ID      string `json:"id"`
	Changed bool   `json:"changed"`
}

// DeleteKey deletes a key through the leader; ErrNotFound if absent.
func (a *Agent) DeleteKey(ctx context.Context, id string) (DeleteResult, error) {
	return onLeader(ctx, a, "keys_delete", idsReq{IDs: []string{id}}, func(ctx context.Context) (DeleteResult, error) {
		v, err := applyJSON(ctx, a.store, opKeysDelete, []string{id})
		if err != nil {
			return DeleteResult{}, err
		}
		if r, ok := v.(deleteResult); !ok || len(r.Deleted) != 1 || !r.Deleted[0] {
			return DeleteResult{ID: id}, fmt.Errorf("%w: key %s", ErrNotFound, id)
		}
		return DeleteResult{ID: id, Changed: true}, nil
	})
}

func (a *Agent) maybeBarrier(ctx context.Context, stale bool) error {
	if a.store.Raft() == nil {
		return ErrNoClusterState
	}
	if stale {
		return nil
	}
	return a.readBarrier(ctx)
}

// GetKey returns one key, with its material if withMaterial.
func (a *Agent) GetKey(ctx context.Context, id string, withMaterial, stale bool) (KeyInfo, error) {
	if err := a.maybeBarrier(ctx, stale); err != nil {
		return KeyInfo{}, err
	}
	k, ok := a.store.State().Get(id)
	if !ok {
		return KeyInfo{}, fmt.Errorf("%w: key %s", ErrNotFound, id)
	}
	mat, err := seal.Open(a.currentCMK(), k.Sealed, keyAAD(k.ID))
	if err != nil {
		return KeyInfo{}, fmt.Errorf("open key %s: %w", id, err)
	}
	ki := keyInfo(k)
	sum := sha256.Sum256(mat)
	ki.SHA256 = hex.EncodeToString(sum[:])
	if withMaterial {
		ki.Material = mat
	}
	return ki, nil
}

func keyInfo(k *Key) KeyInfo {
	return KeyInfo{ID: k.ID, Name: k.Name, Type: k.Type, Group: k.Group, Created: time.Unix(0, k.Created).UTC()}
}

// ListKeys lists keys (no material), sorted by id.
func (a *Agent) ListKeys(ctx context.Context, stale bool) ([]KeyInfo, error) {
	if err := a.maybeBarrier(ctx, stale); err != nil {
		return nil, err
	}
	keys := a.store.State().Keys()
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = keyInfo(k)
	}
	return out, nil
}

// CountResult is the answer of `keys count`.
type CountResult struct {
	Keys int `json:"keys"`
}

// CountKeys counts keys.
func (a *Agent) CountKeys(ctx context.Context, stale bool) (CountResult, error) {
	if err := a.maybeBarrier(ctx, stale); err != nil {
		return CountResult{}, err
	}
	return CountResult{Keys: a.store.State().KeyCount()}, nil
}

// ManifestEntry is one key of a manifest.
type ManifestEntry struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
}

// Manifest lists every key id with the SHA-256 of its material, sorted by
// id, and a digest over all of them.
type Manifest struct {
	Count  int             `json:"count"`
	Digest string          `json:"digest"`
	Keys   []ManifestEntry `json:"keys"`
}

// KeyManifest computes the manifest of the current keys.
func (a *Agent) KeyManifest(ctx context.Context, stale bool) (Manifest, error) {
	if err := a.maybeBarrier(ctx, stale); err != nil {
		return Manifest{}, err
	}
	keys := a.store.State().Keys()
	cmk := a.currentCMK()
	m := Manifest{Count: len(keys), Keys: make([]ManifestEntry, len(keys))}
	for i, k := range keys {
		mat, err := seal.Open(cmk, k.Sealed, keyAAD(k.ID))
		if err != nil {
			return Manifest{}, fmt.Errorf("open key %s: %w", k.ID, err)
		}
		sum := sha256.Sum256(mat)
		m.Keys[i] = ManifestEntry{ID: k.ID, SHA256: hex.EncodeToString(sum[:])}
	}
	m.Digest = manifestDigest(m.Keys)
	return m, nil
}

func manifestDigest(entries []ManifestEntry) string {
	h := sha256.New()
	for _, e := range entries {
		h.Write([]byte(e.ID))
		h.Write([]byte{' '})
		h.Write([]byte(e.SHA256))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyResult compares the current keys with a manifest.
type VerifyResult struct {
	OK       bool     `json:"ok"`
	Expected int      `json:"expected"`
	Actual   int      `json:"actual"`
	Missing  []string `json:"missing"`
	Extra    []string `json:"extra"`
	Changed  []string `json:"changed"`
	Digest   string   `json:"digest"`
}

// VerifyManifest compares the current keys with want.
func (a *Agent) VerifyManifest(ctx context.Context, want Manifest, stale bool) (VerifyResult, error) {
	got, err := a.KeyManifest(ctx, stale)
	if err != nil {
		return VerifyResult{}, err
	}
	return CompareManifests(want, got), nil
}

// CompareManifests reports keys missing from, extra in, or changed in got
// relative to want.
func CompareManifests(want, got Manifest) VerifyResult {
	res := VerifyResult{Expected: len(want.Keys), Actual: len(got.Keys), Missing: []string{}, Extra: []string{}, Changed: []string{}, Digest: got.Digest}
	wm := make(map[string]string, len(want.Keys))
	for _, e := range want.Keys {
		wm[e.ID] = e.SHA256
	}
	for _, e := range got.Keys {
		w, ok := wm[e.ID]
		switch {
		case !ok:
			res.Extra = append(res.Extra, e.ID)
		case w != e.SHA256:
			res.Changed = append(res.Changed, e.ID)
		}
		delete(wm, e.ID)
	}
	for _, e := range want.Keys {
		if _, ok := wm[e.ID]; ok {
			res.Missing = append(res.Missing, e.ID)
		}
	}
	res.OK = len(res.Missing) == 0 && len(res.Extra) == 0 && len(res.Changed) == 0
	return res
}

// batcher coalesces concurrent key creates on the leader into few raft
// entries.
type batcher struct {
	store Store
	ch    chan *batchItem
	quit  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type batchItem struct {
	keys []*Key
	done chan batchDone
}

type batchDone struct {
	created []bool
	err     error
}

const maxBatchKeys = 2048

func newBatcher(store Store) *batcher {
	b := &batcher{store: store, ch: make(chan *batchItem, 1024), quit: make(chan struct{})}
	b.wg.Add(1)
	go b.loop()
	return b
}

func (b *batcher) close() {
	b.once.Do(func() { close(b.quit) })
	b.wg.Wait()
}

func (b *batcher) submit(ctx context.Context, keys []*Key) ([]bool, error) {
	it := &batchItem{keys: keys, done: make(chan batchDone, 1)}
	select {
	case b.ch <- it:
	case <-b.quit:
		return nil, fmt.Errorf("%w: agent shutting down", ErrUnavailable)
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	select {
	case d := <-it.done:
		return d.created, d.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: create not confirmed: %w", ErrUnavailable, ctx.Err())
	}
}

func (b *batcher) loop() {
	defer b.wg.Done()
	sem := make(chan struct{}, 8)
	for {
		var first *batchItem
		select {
		case first = <-b.ch:
		case <-b.quit:
			return
		}
		items := []*batchItem{first}
		n := len(first.keys)
	drain:
		for n < maxBatchKeys {
			select {
			case it := <-b.ch:
				items = append(items, it)
				n += len(it.keys)
			default:
				break drain
			}
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			b.run(items, n)
		}()
	}
}

func (b *batcher) run(items []*batchItem, n int) {
	all := make([]*Key, 0, n)
	for _, it := range items {
		all = append(all, it.keys...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res createResult
	cmd, err := encodeKeysCmd(opKeysCreate, all)
	if err == nil {
		var v any
		v, err = b.store.Apply(ctx, cmd)
		if err == nil {
			var ok bool
			if res, ok = v.(createResult); !ok || len(res.Created) != len(all) {
				err = fmt.Errorf("unexpected create result %T", v)
			}
		}
	}
	off := 0
	for _, it := range items {
		d := batchDone{err: err}
		if err == nil {
			d.created = res.Created[off : off+len(it.keys)]
		}
		off += len(it.keys)
		it.done <- d
	}
}
