package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// SocketPath returns the admin socket path inside a data directory.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, socketName) }

// adminVerb handles one admin request.
type adminVerb func(ctx context.Context, body []byte) (any, error)

func adminFn[Req, Res any](fn func(context.Context, Req) (Res, error)) adminVerb {
	return func(ctx context.Context, body []byte) (any, error) {
		req, err := decodeJSON[Req](body)
		if err != nil {
			return nil, err
		}
		return fn(ctx, req)
	}
}

// Admin request types (JSON bodies on the admin socket).
type (
	// JoinArgs are the arguments of cluster_join.
	JoinArgs struct {
		Peer  string `json:"peer"`
		Token string `json:"token"`
	}
	// RemoveArgs are the arguments of cluster_remove.
	RemoveArgs struct {
		NodeID string `json:"node_id"`
		Force  bool   `json:"force"`
	}
	// ResetArgs are the arguments of cluster_reset.
	ResetArgs struct {
		DeleteData bool `json:"delete_data"`
	}
	// TokenArgs are the arguments of token_create.
	TokenArgs struct {
		TTL time.Duration `json:"ttl"`
	}
	// KeyArgs are the arguments of keys_get and keys_delete.
	KeyArgs struct {
		ID       string `json:"id"`
		Material bool   `json:"material"`
		Stale    bool   `json:"stale"`
	}
	// ReadArgs are the arguments of read-only key verbs.
	ReadArgs struct {
		Stale bool `json:"stale"`
	}
	// CreateArgs are the arguments of keys_create.
	CreateArgs struct {
		Keys []KeySpec `json:"keys"`
	}
	// LoadArgs are the arguments of keys_load.
	LoadArgs struct {
		Count int    `json:"count"`
		Batch int    `json:"batch"`
		Group string `json:"group"`
	}
	// VerifyArgs are the arguments of keys_verify.
	VerifyArgs struct {
		Manifest Manifest `json:"manifest"`
		Stale    bool     `json:"stale"`
	}
)

// ClusterService is what the admin socket needs of the node for its
// status and cluster operations. *Agent implements it; the admin handler
// is built on it (with KeyAdminService and BackupService) and never on
// *Agent, so its verbs can be tested against a fake.
type ClusterService interface {
	Status(ctx context.Context) (Status, error)
	Bootstrap(ctx context.Context) (BootstrapResult, error)
	Join(ctx context.Context, peer, token string) (JoinResult, error)
	Remove(ctx context.Context, nodeID string, force bool) (RemoveResult, error)
	Reset(ctx context.Context, deleteData bool) (ResetResult, error)
	ForceNew(ctx context.Context) (ForceNewResult, error)
	TokenCreate(ctx context.Context, ttl time.Duration) (TokenResult, error)
	TokenList(ctx context.Context) ([]TokenInfo, error)
}

// KeyAdminService is the key API's KeyService plus the bulk operations
// only the admin socket offers (load, manifest, verify).
type KeyAdminService interface {
	KeyService
	LoadKeys(ctx context.Context, count, batch int, group string) (LoadResult, error)
	KeyManifest(ctx context.Context, stale bool) (Manifest, error)
	VerifyManifest(ctx context.Context, want Manifest, stale bool) (VerifyResult, error)
}

// BackupService is what the admin socket needs for backups and restore.
type BackupService interface {
	BackupCreate(ctx context.Context, args BackupArgs) (BackupResult, error)
	BackupList(ctx context.Context) ([]BackupEntry, error)
	BackupDelete(ctx context.Context, id string) (BackupDeleteResult, error)
	Restore(ctx context.Context, args RestoreArgs) (RestoreResult, error)
}

var (
	_ ClusterService  = (*Agent)(nil)
	_ KeyAdminService = (*Agent)(nil)
	_ BackupService   = (*Agent)(nil)
)

// adminServices is everything the admin socket serves: the three services
// and two hooks into the process around them.
type adminServices struct {
	Cluster ClusterService
	Keys    KeyAdminService
	Backups BackupService
	// BackupDone is told the outcome of every backup_create (metrics).
	BackupDone func(error)
	// Exit is called once a cluster_reset that deleted the data has been
	// answered (the agent exits: its socket lived in the data directory).
	Exit func()
}

func adminVerbs(s adminServices) map[string]adminVerb {
	c, k, b := s.Cluster, s.Keys, s.Backups
	return map[string]adminVerb{
		"status":         adminFn(func(ctx context.Context, _ struct{}) (Status, error) { return c.Status(ctx) }),
		"cluster_create": adminFn(func(ctx context.Context, _ struct{}) (BootstrapResult, error) { return c.Bootstrap(ctx) }),
		"cluster_join": adminFn(func(ctx context.Context, r JoinArgs) (JoinResult, error) {
			if r.Peer == "" || r.Token == "" {
				return JoinResult{}, fmt.Errorf("%w: peer and token are required", ErrUsage)
			}
			return c.Join(ctx, r.Peer, r.Token)
		}),
		"cluster_remove": adminFn(func(ctx context.Context, r RemoveArgs) (RemoveResult, error) {
			if r.NodeID == "" {
				return RemoveResult{}, fmt.Errorf("%w: --node is required", ErrUsage)
			}
			return c.Remove(ctx, r.NodeID, r.Force)
		}),
		"cluster_reset": adminFn(func(ctx context.Context, r ResetArgs) (ResetResult, error) {
			return c.Reset(ctx, r.DeleteData)
		}),
		"cluster_force_new": adminFn(func(ctx context.Context, _ struct{}) (ForceNewResult, error) { return c.ForceNew(ctx) }),
		"token_create": adminFn(func(ctx context.Context, r TokenArgs) (TokenResult, error) {
			return c.TokenCreate(ctx, r.TTL)
		}),
		"token_list": adminFn(func(ctx context.Context, _ struct{}) ([]TokenInfo, error) { return c.TokenList(ctx) }),
		"keys_create": adminFn(func(ctx context.Context, r CreateArgs) ([]CreateResult, error) {
			return k.CreateKeys(ctx, r.Keys)
		}),
		"keys_get": adminFn(func(ctx context.Context, r KeyArgs) (KeyInfo, error) {
			return k.GetKey(ctx, r.ID, r.Material, r.Stale)
		}),
		"keys_delete": adminFn(func(ctx context.Context, r KeyArgs) (DeleteResult, error) {
			return k.DeleteKey(ctx, r.ID)
		}),
		"keys_list":  adminFn(func(ctx context.Context, r ReadArgs) ([]KeyInfo, error) { return k.ListKeys(ctx, r.Stale) }),
		"keys_count": adminFn(func(ctx context.Context, r ReadArgs) (CountResult, error) { return k.CountKeys(ctx, r.Stale) }),
		"keys_load": adminFn(func(ctx context.Context, r LoadArgs) (LoadResult, error) {
			return k.LoadKeys(ctx, r.Count, r.Batch, r.Group)
		}),
		"keys_manifest": adminFn(func(ctx context.Context, r ReadArgs) (Manifest, error) { return k.KeyManifest(ctx, r.Stale) }),
		"keys_verify": adminFn(func(ctx context.Context, r VerifyArgs) (VerifyResult, error) {
			return k.VerifyManifest(ctx, r.Manifest, r.Stale)
		}),
		"backup_create": adminFn(func(ctx context.Context, r BackupArgs) (BackupResult, error) {
			res, err := b.BackupCreate(ctx, r)
			if s.BackupDone != nil {
				s.BackupDone(err)
			}
			return res, err
		}),
		"backup_list": adminFn(func(ctx context.Context, _ struct{}) ([]BackupEntry, error) { return b.BackupList(ctx) }),
		"backup_delete": adminFn(func(ctx context.Context, r BackupDeleteArgs) (BackupDeleteResult, error) {
			return b.BackupDelete(ctx, r.ID)
		}),
		"restore": adminFn(func(ctx context.Context, r RestoreArgs) (RestoreResult, error) { return b.Restore(ctx, r) }),
	}
}

// newAdminHandler returns the admin socket's handler (POST /v1/{verb} and
// pprof) and the function naming a request's endpoint for the request
// metrics ("admin VERB" for a known verb, else "admin other").
func newAdminHandler(s adminServices) (http.Handler, func(*http.Request) string) {
	verbs := adminVerbs(s)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/{verb}", func(w http.ResponseWriter, r *http.Request) {
		verb := r.PathValue("verb")
		fn, ok := verbs[verb]
		if !ok {
			writeJSON(w, nil, fmt.Errorf("%w: unknown verb %q", ErrUsage, verb))
			return
		}
		body, err := readAll(w, r)
		if err != nil {
			writeJSON(w, nil, err)
			return
		}
		res, err := fn(r.Context(), body)
		writeJSON(w, res, err)
		if verb == "cluster_reset" && err == nil && s.Exit != nil {
			if rr, ok := res.(ResetResult); ok && rr.Exiting {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
				go s.Exit()
			}
		}
	})
	// Profiling is served only on the 0600 admin socket.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	endpoint := func(r *http.Request) string {
		if verb := strings.TrimPrefix(r.URL.Path, "/v1/"); verbs[verb] != nil {
			return "admin " + verb
		}
		return "admin other"
	}
	return mux, endpoint
}

// startAdmin listens on DATA/admin.sock (mode 0600) and serves the admin
// handler on the agent's services.
func (a *Agent) startAdmin() error {
	path := SocketPath(a.cfg.DataDir)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close() // the chmod error is the one reported
		return fmt.Errorf("chmod admin socket: %w", err)
	}
	handler, endpoint := newAdminHandler(adminServices{
		Cluster: a,
		Keys:    a,
		Backups: a,
		BackupDone: func(err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			a.metrics.backups.WithLabelValues(result).Inc()
		},
		Exit: a.requestExit,
	})
	// No write timeout: joins, backups and restores answer when done.
	a.adminSrv = &http.Server{Handler: bodyDeadline(time.Minute, a.metrics.instrument(endpoint, handler)), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := a.adminSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin socket", "err", err)
		}
	}()
	return nil
}

func readAll(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var raw json.RawMessage
	if err := decodeBody(w, r, AdminMaxBody, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// AdminClient calls a local agent over its admin socket.
type AdminClient struct {
	http *http.Client
	// timeout, when set (SetTimeout), bounds each Call, and is the D of
	// its "timed out after D": what the operator asked for, however late
	// the call began.
	timeout    time.Duration
	hasTimeout bool
}

// SetTimeout bounds each Call to d (0: a call times out at once).
func (c *AdminClient) SetTimeout(d time.Duration) { c.timeout, c.hasTimeout = d, true }

// NewAdminClient returns a client for the agent whose data dir is dataDir.
func NewAdminClient(dataDir string) *AdminClient {
	sock := SocketPath(dataDir)
	return &AdminClient{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", sock)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, &notRunningError{sock: sock, err: err}
			}
			return c, nil
		},
	}}}
}

// Call runs verb with req and decodes the answer into out. Errors carry the
// agent's sentinel (errors.Is works) and map to exit codes with ExitCode.
//
// Three failures of the call itself have their own sentinels: no agent on
// the socket (ErrAgentNotRunning, exit 6), ctx's deadline passing first
// (ErrTimeout, exit 7, "timed out after D"), and everything the agent
// answers keeps the agent's own error.
func (c *AdminClient) Call(ctx context.Context, verb string, req, out any) error {
	if req == nil {
		req = struct{}{}
	}
	budget := c.timeout
	if c.hasTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, budget)
		defer cancel()
	} else if dl, ok := ctx.Deadline(); ok {
		budget = max(time.Until(dl), 0)
	}
	err := doJSON(ctx, c.http, http.MethodPost, "http://agent/v1/"+verb, req, out)
	if err == nil {
		return nil
	}
	var nr *notRunningError
	if errors.As(err, &nr) {
		return nr
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w after %s waiting for the agent to answer %s (the agent may still finish it; check with status)",
			ErrTimeout, budget.Round(time.Millisecond), verb)
	}
	return err
}

// notRunningError is a failed connection to the admin socket.
type notRunningError struct {
	sock string
	err  error
}

func (e *notRunningError) Error() string {
	reason := e.err.Error()
	switch {
	case errors.Is(e.err, syscall.ECONNREFUSED):
		reason = "connection refused"
	case errors.Is(e.err, fs.ErrNotExist):
		reason = "no such file"
	case errors.Is(e.err, fs.ErrPermission):
		reason = "permission denied (run as the agent's user)"
	}
	return fmt.Sprintf("%s (admin socket %s: %s)", ErrAgentNotRunning, e.sock, reason)
}

func (e *notRunningError) Unwrap() []error { return []error{ErrAgentNotRunning, e.err} }
