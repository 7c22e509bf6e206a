package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fakeStore is a Store without raft: commands are applied straight to a
// real FSM, in order, as a one-node raft would. It shows that the services
// need nothing of the store beyond the interface.
type fakeStore struct {
	mu      sync.Mutex
	fsm     *FSM
	index   uint64
	applies int
	fail    error
}

var _ Store = (*fakeStore)(nil)

func (s *fakeStore) Apply(_ context.Context, cmd []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	s.index++
	s.applies++
	v := s.fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: s.index, Data: cmd})
	if err, ok := v.(error); ok {
		return nil, err
	}
	return v, nil
}

func (s *fakeStore) Ready() bool { return true }

func (s *fakeStore) Info() RaftInfo {
	return RaftInfo{Running: true, State: "leader", LeaderID: "n1"}
}

func (s *fakeStore) State() StateReader { return s.fsm }

// TestBatcherOnStoreInterface: the batcher, run against a Store that is not
// raft, coalesces concurrent creates into fewer commands and answers each
// caller with its own keys' flags (a duplicate id is not created twice).
func TestBatcherOnStoreInterface(t *testing.T) {
	tests := []struct {
		name     string
		callers  int
		perCall  int
		dupFirst bool
		fail     error
	}{
		{name: "one caller", callers: 1, perCall: 3},
		{name: "many callers", callers: 40, perCall: 5},
		{name: "duplicate ids", callers: 8, perCall: 2, dupFirst: true},
		{name: "store refuses", callers: 4, perCall: 1, fail: fmt.Errorf("%w: not the leader", ErrUnavailable)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStore{fsm: NewFSM(nil), fail: tc.fail}
			b := newBatcher(st)
			defer b.close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			type answer struct {
				created []bool
				err     error
			}
			answers := make([]answer, tc.callers)
			var wg sync.WaitGroup
			for c := range tc.callers {
				keys := make([]*Key, tc.perCall)
				for i := range keys {
					id := fmt.Sprintf("c%d-k%d", c, i)
					if tc.dupFirst && i == 0 {
						id = "shared"
					}
					keys[i] = &Key{ID: id, Sealed: []byte("x")}
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					created, err := b.submit(ctx, keys)
					answers[c] = answer{created, err}
				}()
			}
			wg.Wait()
			if tc.fail != nil {
				for c, a := range answers {
					if !errors.Is(a.err, ErrUnavailable) {
						t.Fatalf("caller %d: err %v, want the store's ErrUnavailable", c, a.err)
					}
				}
				return
			}
			created := 0
			for c, a := range answers {
				if a.err != nil {
					t.Fatalf("caller %d: %v", c, a.err)
				}
				if len(a.created) != tc.perCall {
					t.Fatalf("caller %d: %d flags for %d keys", c, len(a.created), tc.perCall)
				}
				for i, ok := range a.created {
					if ok {
						created++
					} else if !(tc.dupFirst && i == 0) {
						t.Fatalf("caller %d key %d not created", c, i)
					}
				}
			}
			want := tc.callers * tc.perCall
			if tc.dupFirst {
				want = tc.callers*(tc.perCall-1) + 1
			}
			if created != want || st.fsm.KeyCount() != want {
				t.Fatalf("created flags %d, keys in FSM %d, want %d", created, st.fsm.KeyCount(), want)
			}
			if st.applies > tc.callers {
				t.Fatalf("%d commands for %d callers", st.applies, tc.callers)
			}
		})
	}
}

// fakeKeys is a KeyService that records what the key API asked.
type fakeKeys struct {
	mu    sync.Mutex
	specs []KeySpec
	stale []bool
}

var _ KeyService = (*fakeKeys)(nil)

func (f *fakeKeys) CreateKeys(_ context.Context, specs []KeySpec) ([]CreateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs = append(f.specs, specs...)
	out := make([]CreateResult, len(specs))
	for i, s := range specs {
		out[i] = CreateResult{ID: s.ID, Created: s.ID != "exists"}
	}
	return out, nil
}

func (f *fakeKeys) GetKey(_ context.Context, id string, withMaterial, stale bool) (KeyInfo, error) {
	f.mu.Lock()
	f.stale = append(f.stale, stale)
	f.mu.Unlock()
	if id != "k1" {
		return KeyInfo{}, fmt.Errorf("%w: key %s", ErrNotFound, id)
	}
	ki := KeyInfo{ID: id, Name: "one"}
	if withMaterial {
		ki.Material = []byte{1, 2, 3}
	}
	return ki, nil
}

func (f *fakeKeys) DeleteKey(_ context.Context, id string) (DeleteResult, error) {
	return DeleteResult{ID: id, Changed: true}, nil
}

func (f *fakeKeys) ListKeys(_ context.Context, stale bool) ([]KeyInfo, error) {
	f.mu.Lock()
	f.stale = append(f.stale, stale)
	f.mu.Unlock()
	return []KeyInfo{{ID: "k1"}}, nil
}

func (f *fakeKeys) CountKeys(_ context.Context, stale bool) (CountResult, error) {
	f.mu.Lock()
	f.stale = append(f.stale, stale)
	f.mu.Unlock()
	return CountResult{Keys: 7}, nil
}

// TestKeyAPIOnKeyService drives the key API's routes against a fake
// KeyService: paths, bodies, status codes and the auth hook, without an
// agent.
func TestKeyAPIOnKeyService(t *testing.T) {
	keys := &fakeKeys{}
	refuse := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer ok" {
				writeJSON(w, nil, errUnauthorized)
				return
			}
			next(w, r)
		}
	}
	mux := http.NewServeMux()
	routeKeyAPI(mux, keys, refuse)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tests := []struct {
		name, method, path, body string
		auth                     bool
		code                     int
		want                     string
	}{
		{"put names the id", http.MethodPut, "/v1/keys/k9", `{"name":"nine"}`, true, 200, `{"id":"k9","created":true}`},
		{"put existing", http.MethodPut, "/v1/keys/exists", `{}`, true, 200, `{"id":"exists","created":false}`},
		{"post many", http.MethodPost, "/v1/keys", `{"keys":[{"id":"a"},{"id":"b"}]}`, true, 200, `[{"id":"a","created":true},{"id":"b","created":true}]`},
		{"post bad json", http.MethodPost, "/v1/keys", `{"keys":`, true, 400, `"sentinel":"usage"`},
		{"get with material", http.MethodGet, "/v1/keys/k1", "", true, 200, `"material":"AQID"`},
		{"get absent", http.MethodGet, "/v1/keys/nope", "", true, 404, `"sentinel":"not found"`},
		{"count stale", http.MethodGet, "/v1/keys?count&stale", "", true, 200, `{"keys":7}`},
		{"list", http.MethodGet, "/v1/keys", "", true, 200, `[{"id":"k1"`},
		{"delete", http.MethodDelete, "/v1/keys/k1", "", true, 200, `{"id":"k1","changed":true}`},
		{"no credentials", http.MethodGet, "/v1/keys/k1", "", false, 401, `"error"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth {
				req.Header.Set("Authorization", "Bearer ok")
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%s %s: %d %s, want %d containing %s", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.want)
			}
		})
	}
	if len(keys.specs) == 0 || keys.specs[0].ID != "k9" || keys.specs[0].Name != "nine" {
		t.Fatalf("PUT did not pass the path id and body: %+v", keys.specs)
	}
	if !keys.stale[len(keys.stale)-2] || keys.stale[len(keys.stale)-1] {
		t.Fatalf("stale flags not passed through: %v", keys.stale)
	}
}
