package nodeagent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drbook/drbook/nodeagent/token"
)

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func applyAt(f *FSM, idx uint64, data []byte) any {
	return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
}

func testKeys(n int, prefix string) []*Key {
	keys := make([]*Key, n)
	for i := range keys {
		keys[i] = &Key{ID: fmt.Sprintf("%s%06d", prefix, i), Name: "n", Type: "aes256", Group: "g",
			Created: int64(i), Sealed: bytes.Repeat([]byte{byte(i)}, 61)}
	}
	return keys
}

// fakeCMK records adoptions.
type fakeCMK struct {
	id      string
	adopted int
	fail    bool
}

func (c *fakeCMK) CMKID() string { return c.id }
func (c *fakeCMK) AdoptCMK(_ []byte, id string) error {
	if c.fail {
		return errors.New("cannot open")
	}
	c.id = id
	c.adopted++
	return nil
}

func TestFSMApply(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := token.Record{ID: "t1", Hash: bytes.Repeat([]byte{1}, 32), Created: now, Expires: now.Add(time.Hour)}
	tests := []struct {
		name  string
		setup [][]byte
		cmd   []byte
		want  any // error sentinel, or a result
	}{
		{"create", nil, must(encodeKeysCmd(opKeysCreate, testKeys(2, "a"))), createResult{Created: []bool{true, true}}},
		{"create duplicate in batch and store",
			[][]byte{must(encodeKeysCmd(opKeysCreate, testKeys(1, "a")))},
			must(encodeKeysCmd(opKeysCreate, append(testKeys(2, "a"), testKeys(2, "a")[1]))),
			createResult{Created: []bool{false, true, false}}},
		{"delete present and absent",
			[][]byte{must(encodeKeysCmd(opKeysCreate, testKeys(1, "a")))},
			must(encodeJSONCmd(opKeysDelete, []string{"a000000", "zzz"})),
			deleteResult{Deleted: []bool{true, false}}},
		{"token unknown", nil, must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", Now: now})), ErrTokenInvalid},
		{"token used once",
			[][]byte{must(encodeJSONCmd(opTokenAdd, rec))},
			must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", UsedBy: "n2", Now: now})), nil},
		{"token reused",
			[][]byte{must(encodeJSONCmd(opTokenAdd, rec)), must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", UsedBy: "n2", Now: now}))},
			must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", UsedBy: "n3", Now: now})), ErrTokenUsed},
		{"token retried by the same node",
			[][]byte{must(encodeJSONCmd(opTokenAdd, rec)), must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", UsedBy: "n2", Now: now}))},
			must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", UsedBy: "n2", Now: now.Add(time.Minute)})), nil},
		{"token retried by the same node too late",
			[][]byte{must(encodeJSONCmd(opTokenAdd, rec)), must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", UsedBy: "n2", Now: now}))},
			must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", UsedBy: "n2", Now: now.Add(tokenRetryWindow)})), ErrTokenUsed},
		{"token expired on the leader's clock",
			[][]byte{must(encodeJSONCmd(opTokenAdd, rec))},
			must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", Now: now.Add(time.Hour)})), ErrTokenExpired},
		{"second membership change",
			[][]byte{must(encodeJSONCmd(opChangeBegin, MembershipChange{Op: "remove", NodeID: "n2"}))},
			must(encodeJSONCmd(opChangeBegin, MembershipChange{Op: "remove", NodeID: "n3"})), ErrMembershipChange},
		{"same membership change resumed",
			[][]byte{must(encodeJSONCmd(opChangeBegin, MembershipChange{Op: "remove", NodeID: "n2"}))},
			must(encodeJSONCmd(opChangeBegin, MembershipChange{Op: "remove", NodeID: "n2"})), nil},
		{"restore onto keys",
			[][]byte{must(encodeKeysCmd(opKeysCreate, testKeys(1, "a")))},
			must(encodeRestoreCmd(restoreHeader{NewCMKID: "new"}, testKeys(3, "b"))), ErrRestoreTarget},
		{"malformed", nil, []byte{opKeysCreate, 0xff}, errors.New("any")},
		{"unknown opcode", nil, []byte{200}, errors.New("any")},
		{"opcode zero (a hole in the apply table)", nil, []byte{0}, errors.New("any")},
		{"opcode past the table", nil, []byte{opRestore + 1}, errors.New("any")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM(&fakeCMK{id: "old"})
			for i, c := range tc.setup {
				if err, ok := applyAt(f, uint64(i+1), c).(error); ok {
					t.Fatalf("setup %d: %v", i, err)
				}
			}
			got := applyAt(f, 100, tc.cmd)
			switch want := tc.want.(type) {
			case nil:
				if got != nil {
					t.Fatalf("got %v, want nil", got)
				}
			case error:
				err, ok := got.(error)
				if !ok {
					t.Fatalf("got %v, want error %v", got, want)
				}
				if want.Error() != "any" && !errors.Is(err, want) {
					t.Fatalf("got %v, want %v", err, want)
				}
			default:
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("got %v, want %v", got, want)
				}
			}
			if f.Index() != 100 {
				t.Fatalf("index %d, want 100", f.Index())
			}
		})
	}
}

func TestFSMRestoreAdoptsCMK(t *testing.T) {
	cmk := &fakeCMK{id: "old"}
	f := NewFSM(cmk)
	cmd := must(encodeRestoreCmd(restoreHeader{NewCMKID: "new", From: "sha"}, testKeys(5, "k")))
	if res := applyAt(f, 1, cmd); res != nil {
		t.Fatal(res)
	}
	if cmk.adopted != 1 || cmk.id != "new" || f.KeyCount() != 5 || f.Meta().RestoredFrom != "sha" {
		t.Fatalf("adopted %d id %s keys %d", cmk.adopted, cmk.id, f.KeyCount())
	}
	// Replaying the entry on a node that already has the new CMK (a joiner
	// after the restore) does not adopt again.
	g := NewFSM(cmk)
	if res := applyAt(g, 1, cmd); res != nil || cmk.adopted != 1 {
		t.Fatalf("replay: %v, adopted %d", res, cmk.adopted)
	}
	// A node that cannot open the CMK refuses the entry.
	h := NewFSM(&fakeCMK{id: "other", fail: true})
	if _, ok := applyAt(h, 1, cmd).(error); !ok || h.KeyCount() != 0 {
		t.Fatal("restore applied without the CMK")
	}
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func TestSnapshotRoundTrip(t *testing.T) {
	f := NewFSM(nil)
	applyAt(f, 7, must(encodeKeysCmd(opKeysCreate, testKeys(1000, "k"))))
	applyAt(f, 8, must(encodeJSONCmd(opNodePut, NodeInfo{ID: "n1", RaftAddr: "r", APIAddr: "a"})))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if g.KeyCount() != 1000 || g.Index() != 8 || g.Meta().Nodes["n1"].APIAddr != "a" {
		t.Fatalf("restored %d keys, index %d, meta %+v", g.KeyCount(), g.Index(), g.Meta().Nodes)
	}
	for _, k := range f.Keys() {
		got, ok := g.Get(k.ID)
		if !ok || !bytes.Equal(got.Sealed, k.Sealed) || got.Created != k.Created || got.Name != k.Name {
			t.Fatalf("key %s differs after restore", k.ID)
		}
	}
	// Damaged snapshots are refused.
	for _, cut := range []int{0, 5, len(sink.Bytes()) / 2} {
		if err := NewFSM(nil).Restore(io.NopCloser(bytes.NewReader(sink.Bytes()[:cut]))); err == nil {
			t.Fatalf("truncated snapshot at %d accepted", cut)
		}
	}
}

// BenchmarkSnapshot100k measures Snapshot+Persist and Restore of 100,000
// keys.
func BenchmarkSnapshot100k(b *testing.B) {
	f := NewFSM(nil)
	for i := range 100 {
		applyAt(f, uint64(i+1), must(encodeKeysCmd(opKeysCreate, testKeys(1000, fmt.Sprintf("k%03d-", i)))))
	}
	var size int
	b.ResetTimer()
	for range b.N {
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		var sink memSink
		if err := snap.Persist(&sink); err != nil {
			b.Fatal(err)
		}
		size = sink.Len()
		g := NewFSM(nil)
		if err := g.Restore(io.NopCloser(&sink)); err != nil || g.KeyCount() != 100_000 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "MB")
}

func FuzzKeyCodec(f *testing.F) {
	b, _ := encodeKeysCmd(opKeysCreate, testKeys(3, "x"))
	f.Add(b[1:])
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := newKeyReader(bytes.NewReader(data)).readKeys()
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to a stream that decodes equal.
		var buf bytes.Buffer
		if err := newKeyWriter(&buf).writeKeys(keys); err != nil {
			t.Fatal(err)
		}
		again, err := newKeyReader(bytes.NewReader(buf.Bytes())).readKeys()
		if err != nil || len(again) != len(keys) {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range keys {
			a, k := again[i], keys[i]
			if a.ID != k.ID || a.Name != k.Name || a.Type != k.Type || a.Group != k.Group || a.Created != k.Created || !bytes.Equal(a.Sealed, k.Sealed) {
				t.Fatalf("key %d differs", i)
			}
		}
	})
}
