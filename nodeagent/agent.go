package nodeagent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drbook/drbook/nodeagent/pki"
	"github.com/drbook/drbook/nodeagent/seal"
)

// Config configures one agent.
type Config struct {
	// DataDir holds node.key, node.json, raft/, backups/ and admin.sock.
	DataDir string
	// NodeID is this node's raft server id.
	NodeID string
	// APIAddr is the HTTPS key API address (also join and internal calls).
	APIAddr string
	// RaftAddr is the raft mutual-TLS transport address.
	RaftAddr string
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout tune raft.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is the number of log entries between snapshots.
	SnapshotThreshold uint64
	// RaftLogLevel is the hclog level of raft's own logs (default "warn").
	RaftLogLevel string
	// PromoteLag is the largest lag (in log entries) at which a non-voter is
	// promoted to voter.
	PromoteLag uint64
	// APIHeaderTimeout bounds reading a request's line and headers on the
	// HTTPS API (default DefaultAPIHeaderTimeout).
	APIHeaderTimeout time.Duration
	// APIBodyTimeout bounds reading a request's body on the HTTPS API, from
	// the end of its headers (default DefaultAPIBodyTimeout); a slower body
	// is cut off with 408.
	APIBodyTimeout time.Duration
	// MaxUnauthenticated bounds the API requests without valid credentials
	// served at the same time (default DefaultMaxUnauthenticated); more are
	// answered 503 with Retry-After.
	MaxUnauthenticated int
	// Logger receives structured logs.
	Logger *slog.Logger
	// Build names the running build in drbook_agent_build_info (default
	// DefaultBuildInfo).
	Build BuildInfo
	// MetricsAddr, if set, is a plain-HTTP address serving only /healthz
	// and /metrics (for a scraper without the cluster's CA; bind it to
	// loopback or a monitoring network).
	MetricsAddr string
}

func (c *Config) setDefaults() {
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 500 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = 500 * time.Millisecond
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = 250 * time.Millisecond
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.RaftLogLevel == "" {
		c.RaftLogLevel = "warn"
	}
	if c.PromoteLag == 0 {
		c.PromoteLag = 64
	}
	if c.APIHeaderTimeout <= 0 {
		c.APIHeaderTimeout = DefaultAPIHeaderTimeout
	}
	if c.APIBodyTimeout <= 0 {
		c.APIBodyTimeout = DefaultAPIBodyTimeout
	}
	if c.MaxUnauthenticated <= 0 {
		c.MaxUnauthenticated = DefaultMaxUnauthenticated
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Build == (BuildInfo{}) {
		c.Build = DefaultBuildInfo()
	}
}

// Agent is one drbook node: the store (raft and FSM) plus the node around
// it: credentials, cluster operations, the admin socket and HTTPS API.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	nodeKey []byte
	// store owns raft and the FSM (store.go); everything else here is the
	// node around it: credentials, cluster operations and the services.
	store *raftStore

	// opMu serialises lifecycle operations (bootstrap, join, reset,
	// force-new, restore, removal notices).
	opMu sync.Mutex
	// changeMu is held by the leader while a removal runs.
	changeMu sync.Mutex

	mu        sync.RWMutex
	node      *nodeFile
	cmk       []byte
	clientTLS *tls.Config
	apiTLS    *tls.Config
	// serveTLS is what the API answers a TLS client with: apiTLS (with
	// ALPN) once the node has cluster credentials, before that a
	// self-signed certificate so /healthz and /metrics can say "not in a
	// cluster".
	serveTLS    *tls.Config
	provisional *tls.Config
	apiSrv      *http.Server
	metrics     *metrics
	metricsSrv  *http.Server
	httpc       *http.Client

	promoting atomic.Bool
	verbs     map[string]internalVerb
	batcher   *batcher
	exitCh    chan struct{}
	exitOnce  sync.Once
	adminSrv  *http.Server
	// unauth holds one token per API request in flight without valid
	// credentials (guard).
	unauth chan struct{}
	// refused counts refused API requests by reason (guard), for /metrics.
	refused [refusedReasons]atomic.Int64
}

// New prepares an agent: it creates the data directory and node key, loads
// node state, and starts raft and the API if the node belongs to a cluster.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	cfg.setDefaults()
	if cfg.DataDir == "" || cfg.NodeID == "" || cfg.APIAddr == "" || cfg.RaftAddr == "" {
		return nil, fmt.Errorf("%w: --data, --node-id, --api and --raft are required", ErrUsage)
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	cfg.DataDir = abs
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	nodeKey, err := seal.LoadOrCreateKeyFile(filepath.Join(cfg.DataDir, nodeKeyName))
	if err != nil {
		return nil, fmt.Errorf("node sealing key: %w", err)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), nodeKey: nodeKey, exitCh: make(chan struct{}),
		unauth: make(chan struct{}, cfg.MaxUnauthenticated)}
	a.store = newRaftStore(cfg, a.log, NewFSM(a), storeHooks{periodic: a.rememberPeers, leaderTick: a.maybeSelfMaintain})
	a.batcher = newBatcher(a.store)
	a.verbs = a.internalVerbs()
	a.metrics = newMetrics(a)
	n, err := loadNodeFile(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if n != nil {
		if n.NodeID != cfg.NodeID {
			return nil, fmt.Errorf("%w: data dir belongs to node %q, not %q", ErrHasClusterState, n.NodeID, cfg.NodeID)
		}
		if err := a.adoptNode(n); err != nil {
			return nil, err
		}
		if !n.Removed {
			if err := a.startRaft(ctx, false); err != nil {
				return nil, err
			}
		}
	}
	// The API listens from the start: /healthz and /metrics answer before
	// the node is in a cluster (saying so).
	if err := a.startAPI(); err != nil {
		_ = a.store.Shutdown()
		return nil, err
	}
	if err := a.startMetricsListener(); err != nil {
		a.stopAPI(ctx)
		_ = a.store.Shutdown()
		return nil, err
	}
	return a, nil
}

// startMetricsListener serves /healthz and /metrics over plain HTTP on
// cfg.MetricsAddr, if set.
func (a *Agent) startMetricsListener() error {
	if a.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen metrics %s: %w", a.cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.serveHealth)
	mux.Handle("GET /metrics", a.metrics.handler())
	endpoint := func(r *http.Request) string {
		if _, p := mux.Handler(r); p != "" {
			return "metrics-listener " + p
		}
		return "metrics-listener other"
	}
	srv := &http.Server{Handler: a.metrics.instrument(endpoint, mux), ReadHeaderTimeout: a.cfg.APIHeaderTimeout,
		ReadTimeout: a.cfg.APIBodyTimeout, WriteTimeout: time.Minute, IdleTimeout: apiIdleTimeout, MaxHeaderBytes: apiMaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(a.cfg.Logger.Handler(), slog.LevelDebug)}
	a.metricsSrv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics listener", "err", err)
		}
	}()
	a.log.Info("metrics listening (plain HTTP: /healthz, /metrics)", "addr", ln.Addr().String())
	return nil
}

// adoptNode installs node state: opens the CMK and builds TLS configs.
func (a *Agent) adoptNode(n *nodeFile) error {
	cmk, err := openCMK(a.nodeKey, n)
	if err != nil {
		return err
	}
	keyPEM, err := seal.Open(a.nodeKey, n.KeySealed, tlsKeyAAD(n.NodeID))
	if err != nil {
		return fmt.Errorf("open node TLS key: %w", err)
	}
	server, err := pki.ServerConfig(n.CertPEM, keyPEM, n.CACertPEM)
	if err != nil {
		return fmt.Errorf("server TLS config: %w", err)
	}
	client, err := pki.ClientConfig(n.CertPEM, keyPEM, n.CACertPEM)
	if err != nil {
		return fmt.Errorf("client TLS config: %w", err)
	}
	api := server.Clone()
	api.ClientAuth = tls.VerifyClientCertIfGiven
	serve := api.Clone()
	serve.NextProtos = []string{"h2", "http/1.1"}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.node, a.cmk = n, cmk
	a.clientTLS, a.apiTLS, a.serveTLS = client, api, serve
	a.httpc = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     client,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	return nil
}

// startRaft starts the store's raft with this node's credentials;
// bootstrap makes a one-voter configuration of this node.
func (a *Agent) startRaft(ctx context.Context, bootstrap bool) error {
	server, client := a.raftTLS()
	return a.store.Open(ctx, server, client, bootstrap)
}

// raftTLS returns the raft transport's TLS configs: the server side
// requires a member's certificate and refuses revoked ones.
func (a *Agent) raftTLS() (server, client *tls.Config) {
	a.mu.RLock()
	server, client = a.apiTLS.Clone(), a.clientTLS
	a.mu.RUnlock()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.VerifyConnection = a.refuseRevoked
	return server, client
}

func (a *Agent) nodeState() *nodeFile {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.node
}

func (a *Agent) currentCMK() []byte {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.cmk
}

// CMKID implements cmkAdopter.
func (a *Agent) CMKID() string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.node == nil {
		return ""
	}
	return a.node.CMKID
}

// AdoptCMK implements cmkAdopter: it re-seals the restored CMK with the node
// key, persists it and makes it current.
func (a *Agent) AdoptCMK(sealedUnderCurrent []byte, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.node == nil {
		return ErrNoClusterState
	}
	cmk, err := seal.Open(a.cmk, sealedUnderCurrent, transferAAD(id))
	if err != nil {
		return fmt.Errorf("open transferred CMK: %w", err)
	}
	if cmkID(cmk) != id {
		return errors.New("transferred CMK does not match its id")
	}
	sealed, err := sealCMK(a.nodeKey, a.node.NodeID, cmk)
	if err != nil {
		return err
	}
	n := *a.node
	n.CMKSealed, n.CMKID = sealed, id
	if err := saveNodeFile(a.cfg.DataDir, &n); err != nil {
		return err
	}
	a.node, a.cmk = &n, cmk
	a.log.Info("adopted restored cluster master key", "cmk_id", id)
	return nil
}

// refuseRevoked is the raft listener's VerifyConnection: certificates of
// removed nodes are refused.
func (a *Agent) refuseRevoked(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) > 0 && a.store.State().IsRevoked(derSHA256(cs.PeerCertificates[0].Raw)) {
		return errors.New("certificate of a removed node")
	}
	return nil
}

// provisionalTLS is the API's TLS config before the node has cluster
// credentials: a throwaway self-signed certificate (no client
// certificates asked for). Only /healthz and /metrics have anything to say
// then.
func provisionalTLS(nodeID, apiAddr string) (*tls.Config, error) {
	now := time.Now()
	ca, err := pki.NewCA("unjoined-"+randHex(4), now)
	if err != nil {
		return nil, fmt.Errorf("provisional API certificate: %w", err)
	}
	certPEM, keyPEM, err := ca.Issue(nodeID, certHosts(apiAddr), now)
	if err != nil {
		return nil, fmt.Errorf("provisional API certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(append(certPEM, ca.CertPEM...), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("provisional API certificate: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}, nil
}

// startAPI serves the HTTPS API on cfg.APIAddr.
func (a *Agent) startAPI() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.apiSrv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen api %s: %w", a.cfg.APIAddr, err)
	}
	if a.serveTLS == nil {
		p, err := provisionalTLS(a.cfg.NodeID, a.cfg.APIAddr)
		if err != nil {
			ln.Close()
			return err
		}
		a.provisional = p
	}
	// Each connection gets the node's TLS config as it is at the
	// handshake: the provisional one until the node has credentials.
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS13, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		a.mu.RLock()
		defer a.mu.RUnlock()
		if a.serveTLS != nil {
			return a.serveTLS, nil
		}
		return a.provisional, nil
	}}
	// Bodies get their own read deadline (bodyDeadline, readBody): a
	// server-wide ReadTimeout would also cancel handlers that run longer.
	srv := &http.Server{Handler: bodyDeadline(a.cfg.APIBodyTimeout, a.apiHandler()), TLSConfig: tlsCfg,
		ReadHeaderTimeout: a.cfg.APIHeaderTimeout, WriteTimeout: apiWriteTimeout, IdleTimeout: apiIdleTimeout,
		MaxHeaderBytes: apiMaxHeaderBytes, ErrorLog: slog.NewLogLogger(a.cfg.Logger.Handler(), slog.LevelDebug)}
	a.apiSrv = srv
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("api server", "err", err)
		}
	}()
	a.log.Info("api listening", "addr", a.cfg.APIAddr)
	return nil
}

func (a *Agent) stopAPI(ctx context.Context) {
	a.mu.Lock()
	srv := a.apiSrv
	a.apiSrv = nil
	a.mu.Unlock()
	if srv != nil {
		_ = srv.Shutdown(ctx)
	}
}

// Serve runs the admin socket until ctx is cancelled or the agent asks to
// exit (after reset --delete-data), then shuts everything down.
func (a *Agent) Serve(ctx context.Context) error {
	if err := a.startAdmin(); err != nil {
		return err
	}
	a.log.InfoContext(ctx, "agent serving", "data", a.cfg.DataDir, "api", a.cfg.APIAddr, "raft", a.cfg.RaftAddr)
	select {
	case <-ctx.Done():
	case <-a.exitCh:
	}
	return a.Close()
}

// Close stops the admin socket, API and raft.
func (a *Agent) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if a.adminSrv != nil {
		_ = a.adminSrv.Shutdown(ctx)
	}
	if a.metricsSrv != nil {
		_ = a.metricsSrv.Shutdown(ctx)
	}
	a.stopAPI(ctx)
	a.batcher.close()
	err := a.store.Shutdown()
	a.log.Info("agent stopped")
	return err
}

func (a *Agent) requestExit() {
	a.exitOnce.Do(func() { close(a.exitCh) })
}
