package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAdmin implements the admin socket's three services without an
// agent. Each call is recorded as one line naming the method and the
// arguments it was given; a few argument values answer with an error.
type fakeAdmin struct {
	fakeKeys
	calls []string
}

var (
	_ ClusterService  = (*fakeAdmin)(nil)
	_ KeyAdminService = (*fakeAdmin)(nil)
	_ BackupService   = (*fakeAdmin)(nil)
)

func (f *fakeAdmin) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeAdmin) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeAdmin) Status(context.Context) (Status, error) {
	f.record("Status")
	return Status{NodeID: "n1", State: "Leader"}, nil
}

func (f *fakeAdmin) Bootstrap(context.Context) (BootstrapResult, error) {
	f.record("Bootstrap")
	return BootstrapResult{Changed: true, ClusterID: "c1"}, nil
}

func (f *fakeAdmin) Join(_ context.Context, peer, token string) (JoinResult, error) {
	f.record("Join %s %s", peer, token)
	if token == "used" {
		return JoinResult{}, fmt.Errorf("%w: token t1", ErrTokenUsed)
	}
	return JoinResult{Changed: true, Suffrage: "voter"}, nil
}

func (f *fakeAdmin) Remove(_ context.Context, nodeID string, force bool) (RemoveResult, error) {
	f.record("Remove %s %t", nodeID, force)
	if nodeID == "absent" {
		return RemoveResult{}, fmt.Errorf("%w: node %s", ErrNotFound, nodeID)
	}
	return RemoveResult{Changed: true, NodeID: nodeID, Voters: 2}, nil
}

func (f *fakeAdmin) Reset(_ context.Context, deleteData bool) (ResetResult, error) {
	f.record("Reset %t", deleteData)
	return ResetResult{Changed: deleteData, Exiting: deleteData}, nil
}

func (f *fakeAdmin) ForceNew(context.Context) (ForceNewResult, error) {
	f.record("ForceNew")
	return ForceNewResult{}, ErrQuorumPresent
}

func (f *fakeAdmin) TokenCreate(_ context.Context, ttl time.Duration) (TokenResult, error) {
	f.record("TokenCreate %s", ttl)
	return TokenResult{ID: "t1", Token: "secret"}, nil
}

func (f *fakeAdmin) TokenList(context.Context) ([]TokenInfo, error) {
	f.record("TokenList")
	return []TokenInfo{{ID: "t1", State: "unused"}}, nil
}

func (f *fakeAdmin) CreateKeys(ctx context.Context, specs []KeySpec) ([]CreateResult, error) {
	f.record("CreateKeys %d %s", len(specs), specs[0].ID)
	return f.fakeKeys.CreateKeys(ctx, specs)
}

func (f *fakeAdmin) GetKey(ctx context.Context, id string, withMaterial, stale bool) (KeyInfo, error) {
	f.record("GetKey %s %t %t", id, withMaterial, stale)
	return f.fakeKeys.GetKey(ctx, id, withMaterial, stale)
}

func (f *fakeAdmin) DeleteKey(ctx context.Context, id string) (DeleteResult, error) {
	f.record("DeleteKey %s", id)
	return f.fakeKeys.DeleteKey(ctx, id)
}

func (f *fakeAdmin) ListKeys(ctx context.Context, stale bool) ([]KeyInfo, error) {
	f.record("ListKeys %t", stale)
	return f.fakeKeys.ListKeys(ctx, stale)
}

func (f *fakeAdmin) CountKeys(ctx context.Context, stale bool) (CountResult, error) {
	f.record("CountKeys %t", stale)
	return f.fakeKeys.CountKeys(ctx, stale)
}

func (f *fakeAdmin) LoadKeys(_ context.Context, count, batch int, group string) (LoadResult, error) {
	f.record("LoadKeys %d %d %s", count, batch, group)
	return LoadResult{Created: count, Keys: count}, nil
}

func (f *fakeAdmin) KeyManifest(_ context.Context, stale bool) (Manifest, error) {
	f.record("KeyManifest %t", stale)
	return Manifest{Count: 1, Digest: "d1"}, nil
}

func (f *fakeAdmin) VerifyManifest(_ context.Context, want Manifest, stale bool) (VerifyResult, error) {
	f.record("VerifyManifest %d %s %t", want.Count, want.Digest, stale)
	return VerifyResult{OK: want.Digest == "d1", Expected: want.Count, Actual: 1}, nil
}

func (f *fakeAdmin) BackupCreate(_ context.Context, args BackupArgs) (BackupResult, error) {
	f.record("BackupCreate %s %s %d %s", args.Out, args.Passphrase, args.Keep, args.MaxAge)
	if args.Keep < 0 {
		return BackupResult{}, fmt.Errorf("%w: disk full", ErrUnavailable)
	}
	return BackupResult{ID: "b1", Keys: 3, Consistent: true}, nil
}

func (f *fakeAdmin) BackupList(context.Context) ([]BackupEntry, error) {
	f.record("BackupList")
	return []BackupEntry{{ID: "b1", Keys: 3}}, nil
}

func (f *fakeAdmin) BackupDelete(_ context.Context, id string) (BackupDeleteResult, error) {
	f.record("BackupDelete %s", id)
	return BackupDeleteResult{ID: id, Changed: true}, nil
}

func (f *fakeAdmin) Restore(_ context.Context, args RestoreArgs) (RestoreResult, error) {
	f.record("Restore %s %s", args.File, args.Passphrase)
	if args.File == "damaged" {
		return RestoreResult{}, fmt.Errorf("%w: bad tag", ErrBackupRejected)
	}
	return RestoreResult{Changed: true, Keys: 3}, nil
}

// TestAdminOnServices drives the admin socket's handler, on a real unix
// socket, against fake services: every verb reaches the right method with
// the request's arguments, answers with its body and status code, and
// errors keep their sentinel through AdminClient; the backup and exit
// hooks are called when they should be.
func TestAdminOnServices(t *testing.T) {
	fake := &fakeAdmin{}
	var (
		hookMu  sync.Mutex
		backups []string
	)
	exited := make(chan struct{}, 4)
	handler, endpoint := newAdminHandler(adminServices{
		Cluster: fake, Keys: fake, Backups: fake,
		BackupDone: func(err error) {
			hookMu.Lock()
			defer hookMu.Unlock()
			backups = append(backups, fmt.Sprint(err))
		},
		Exit: func() { exited <- struct{}{} },
	})
	dir := t.TempDir()
	ln, err := net.Listen("unix", SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	client := NewAdminClient(dir)

	tests := []struct {
		name, verb, body string
		code             int
		want             string // in the answer's body
		calls            string // what the fake was asked, "; "-joined
		sentinel         error  // what AdminClient.Call's error Is
	}{
		{"status", "status", `{}`, 200, `"node_id":"n1"`, "Status", nil},
		{"create", "cluster_create", ``, 200, `"cluster_id":"c1"`, "Bootstrap", nil},
		{"join", "cluster_join", `{"peer":"127.0.0.1:7001","token":"tok"}`, 200, `"suffrage":"voter"`, "Join 127.0.0.1:7001 tok", nil},
		{"join without token", "cluster_join", `{"peer":"127.0.0.1:7001"}`, 400, `"sentinel":"usage"`, "", ErrUsage},
		{"join used token", "cluster_join", `{"peer":"p","token":"used"}`, 409, `join-token-single-use`, "Join p used", ErrTokenUsed},
		{"remove forced", "cluster_remove", `{"node_id":"n2","force":true}`, 200, `"voters":2`, "Remove n2 true", nil},
		{"remove without node", "cluster_remove", `{"force":true}`, 400, `--node is required`, "", ErrUsage},
		{"remove absent", "cluster_remove", `{"node_id":"absent"}`, 404, `"sentinel":"not found"`, "Remove absent false", ErrNotFound},
		{"reset keeping data", "cluster_reset", `{}`, 200, `"exiting":false`, "Reset false", nil},
		{"force-new with a leader", "cluster_force_new", `{}`, 409, `force-new-quorum-lost`, "ForceNew", ErrQuorumPresent},
		{"token create", "token_create", `{"ttl":90000000000}`, 200, `"token":"secret"`, "TokenCreate 1m30s", nil},
		{"token list", "token_list", `{}`, 200, `[{"id":"t1"`, "TokenList", nil},
		{"keys create", "keys_create", `{"keys":[{"id":"exists"},{"id":"k2"}]}`, 200, `[{"id":"exists","created":false},{"id":"k2","created":true}]`, "CreateKeys 2 exists", nil},
		{"keys get material", "keys_get", `{"id":"k1","material":true}`, 200, `"material":"AQID"`, "GetKey k1 true false", nil},
		{"keys get stale", "keys_get", `{"id":"k1","stale":true}`, 200, `"name":"one"`, "GetKey k1 false true", nil},
		{"keys get absent", "keys_get", `{"id":"nope"}`, 404, `"sentinel":"not found"`, "GetKey nope false false", ErrNotFound},
		{"keys delete", "keys_delete", `{"id":"k1"}`, 200, `{"id":"k1","changed":true}`, "DeleteKey k1", nil},
		{"keys list stale", "keys_list", `{"stale":true}`, 200, `[{"id":"k1"`, "ListKeys true", nil},
		{"keys count", "keys_count", `{}`, 200, `{"keys":7}`, "CountKeys false", nil},
		{"keys load", "keys_load", `{"count":500,"batch":50,"group":"g"}`, 200, `"created":500`, "LoadKeys 500 50 g", nil},
		{"keys manifest", "keys_manifest", `{"stale":true}`, 200, `"digest":"d1"`, "KeyManifest true", nil},
		{"keys verify", "keys_verify", `{"manifest":{"count":1,"digest":"d1"}}`, 200, `"ok":true`, "VerifyManifest 1 d1 false", nil},
		{"backup create", "backup_create", `{"out":"/b","passphrase":"cHc=","keep":2,"max_age":3600000000000}`, 200, `"id":"b1"`, "BackupCreate /b pw 2 1h0m0s", nil},
		{"backup create fails", "backup_create", `{"passphrase":"cHc=","keep":-1}`, 503, `disk full`, "BackupCreate  pw -1 0s", ErrUnavailable},
		{"backup list", "backup_list", `{}`, 200, `[{"id":"b1"`, "BackupList", nil},
		{"backup delete", "backup_delete", `{"id":"b1"}`, 200, `"changed":true`, "BackupDelete b1", nil},
		{"restore", "restore", `{"file":"/b/b1.drbk","passphrase":"cHc="}`, 200, `"keys":3`, "Restore /b/b1.drbk pw", nil},
		{"restore damaged", "restore", `{"file":"damaged","passphrase":"cHc="}`, 409, `restore-verified-backup`, "Restore damaged pw", ErrBackupRejected},
		{"unknown verb", "keys_shred", `{}`, 400, `unknown verb \"keys_shred\"`, "", ErrUsage},
		{"bad json", "keys_get", `{"id":`, 400, `"sentinel":"usage"`, "", ErrUsage},
		{"wrong field type", "cluster_remove", `{"node_id":7}`, 400, `"sentinel":"usage"`, "", ErrUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent/v1/"+tc.verb, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%s %s: %d %s, want %d containing %s", tc.verb, tc.body, resp.StatusCode, b, tc.code, tc.want)
			}
			if got := strings.Join(fake.takeCalls(), "; "); got != tc.calls {
				t.Fatalf("%s: services asked %q, want %q", tc.verb, got, tc.calls)
			}
			if got := endpoint(req); (got == "admin other") != (tc.name == "unknown verb") {
				t.Fatalf("%s: endpoint %q", tc.verb, got)
			}
			// The same request through AdminClient: errors keep their
			// sentinel (a client cannot send malformed JSON).
			if tc.body != "" && !json.Valid([]byte(tc.body)) {
				return
			}
			var body json.RawMessage
			if tc.body != "" {
				body = json.RawMessage(tc.body)
			}
			var out json.RawMessage
			err = client.Call(ctx, tc.verb, body, &out)
			fake.takeCalls()
			switch {
			case tc.sentinel == nil && err != nil:
				t.Fatalf("Call %s: %v", tc.verb, err)
			case tc.sentinel != nil && !errors.Is(err, tc.sentinel):
				t.Fatalf("Call %s: error %v, want %v", tc.verb, err, tc.sentinel)
			case tc.sentinel != nil && ExitCode(err) != ExitCode(tc.sentinel):
				t.Fatalf("Call %s: exit code %d, want %d", tc.verb, ExitCode(err), ExitCode(tc.sentinel))
			}
		})
	}

	// Only POST is routed to verbs.
	req, _ := http.NewRequest(http.MethodGet, "http://agent/v1/status", nil)
	resp, err := client.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || len(fake.takeCalls()) != 0 {
		t.Fatalf("GET /v1/status: %d", resp.StatusCode)
	}

	// Every backup_create (4: two cases, each sent twice) told the hook its outcome.
	hookMu.Lock()
	got := strings.Join(backups, "|")
	hookMu.Unlock()
	if want := "<nil>|<nil>|unavailable: disk full|unavailable: disk full"; got != want {
		t.Fatalf("backup hook saw %q, want %q", got, want)
	}
	// Reset keeping data did not ask to exit; reset deleting it does, after
	// the answer was written.
	select {
	case <-exited:
		t.Fatal("exit requested by a reset that keeps the data")
	default:
	}
	var rr ResetResult
	if err := client.Call(context.Background(), "cluster_reset", ResetArgs{DeleteData: true}, &rr); err != nil || !rr.Exiting {
		t.Fatalf("reset --delete-data: %+v %v", rr, err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("reset --delete-data answered exiting but the exit hook was not called")
	}
}
