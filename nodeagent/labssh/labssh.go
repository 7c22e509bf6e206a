// Package labssh is the SSH endpoint built into drbook-agent for lab
// clusters: every lab node's agent listens on its own loopback port, so that
// drbook drives a lab exactly as it drives real nodes (over SSH, with strict
// host keys) without one sshd per node.
//
// It speaks only what drbook's SSH transport needs: public-key
// authentication against an authorized_keys file, "session" channels with
// "exec" requests (run with Shell -c, stdin/stdout/stderr wired, exit status
// or exit signal reported) and "signal" requests (forwarded to the command's
// process group). There is no pty, no shell, no subsystem, no env request
// and no port forwarding. Closing a session's channel, losing its
// connection, or closing the server kills the command's process group.
//
// It listens on loopback addresses only (ErrNotLoopback otherwise).
package labssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults for Config.
const (
	DefaultShell              = "/bin/sh"
	DefaultMaxConns           = 64
	DefaultMaxSessionsPerConn = 200
	handshakeTimeout          = 10 * time.Second
	// outputWaitDelay bounds how long a finished command's output pipes may
	// stay open (held by a background process) before the session ends.
	outputWaitDelay = 2 * time.Second
)

// Sentinel errors.
var (
	// ErrNotLoopback reports a listen address that is not a loopback address:
	// the lab SSH server never listens on a network interface.
	ErrNotLoopback = errors.New("labssh: listen address must be a loopback address (127.0.0.0/8, ::1 or localhost)")
	// ErrNoAuthorizedKeys reports a Config without an authorized_keys file.
	ErrNoAuthorizedKeys = errors.New("labssh: AuthorizedKeysFile is required (public-key authentication only)")
)

// Config configures a lab SSH server.
type Config struct {
	// Addr is the listen address; it must be loopback ("127.0.0.1:0" picks
	// a free port).
	Addr string
	// HostKeyFile holds the server's private host key (OpenSSH format). It
	// is created (ed25519, mode 0600) if missing.
	HostKeyFile string
	// AuthorizedKeysFile lists the public keys allowed to log in. It is
	// re-read at every authentication, so keys can be added while serving.
	AuthorizedKeysFile string
	// Shell runs each exec request as Shell -c COMMAND. Default /bin/sh.
	Shell string
	// Env is the environment of every command ("K=V"); nil means this
	// process's environment.
	Env []string
	// Logger receives connection and session events. Default: discard.
	Logger *slog.Logger
	// MaxConns bounds concurrent connections (default 64); more are closed
	// at once.
	MaxConns int
	// MaxSessionsPerConn bounds concurrent sessions on one connection
	// (default 200); more are rejected.
	MaxSessionsPerConn int
}

// Server is a running lab SSH server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	sshCfg  *ssh.ServerConfig
	hostKey ssh.PublicKey

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{} // one slot per connection

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	closeOnce sync.Once
	closeErr  error
}

// Listen validates cfg, loads or creates the host key and starts serving.
// The server stops when ctx is done or Close is called.
func Listen(ctx context.Context, cfg Config) (*Server, error) {
	if err := checkLoopback(cfg.Addr); err != nil {
		return nil, err
	}
	if cfg.AuthorizedKeysFile == "" {
		return nil, ErrNoAuthorizedKeys
	}
	if cfg.HostKeyFile == "" {
		return nil, errors.New("labssh: HostKeyFile is required")
	}
	if cfg.Shell == "" {
		cfg.Shell = DefaultShell
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxSessionsPerConn <= 0 {
		cfg.MaxSessionsPerConn = DefaultMaxSessionsPerConn
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	signer, err := loadOrCreateHostKey(cfg.HostKeyFile)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: logger.With("component", "labssh"), hostKey: signer.PublicKey(),
		sem: make(chan struct{}, cfg.MaxConns), conns: make(map[net.Conn]struct{}),
	}
	s.sshCfg = &ssh.ServerConfig{PublicKeyCallback: s.checkKey}
	s.sshCfg.AddHostKey(signer)

	var lc net.ListenConfig
	s.ln, err = lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("labssh: listen %s: %w", cfg.Addr, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		s.serve()
	}()
	s.log.Info("listening", "addr", s.Addr(), "host_key", ssh.FingerprintSHA256(s.hostKey))
	return s, nil
}

// checkLoopback refuses any address whose host is not loopback.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("labssh: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: got %q", ErrNotLoopback, addr)
}

// loadOrCreateHostKey reads the host key at path, creating an ed25519 key
// (mode 0600) if the file does not exist.
func loadOrCreateHostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the lab's own host key file
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("labssh: generate host key: %w", gerr)
		}
		block, merr := ssh.MarshalPrivateKey(priv, "drbook-agent lab host key")
		if merr != nil {
			return nil, fmt.Errorf("labssh: marshal host key: %w", merr)
		}
		b = pem.EncodeToMemory(block)
		f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the lab's own authorized_keys file
		if ferr != nil {
			return nil, fmt.Errorf("labssh: create host key: %w", ferr)
		}
		_, werr := f.Write(b)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			_ = os.Remove(path)
			return nil, fmt.Errorf("labssh: write host key %s: %w", path, werr)
		}
	} else if err != nil {
		return nil, fmt.Errorf("labssh: read host key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("labssh: parse host key %s: %w", path, err)
	}
	return signer, nil
}

// errUnauthorized is returned to the SSH library for keys not in the file.
var errUnauthorized = errors.New("labssh: public key not in authorized_keys")

// checkKey accepts key if AuthorizedKeysFile lists it.
func (s *Server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	b, err := os.ReadFile(s.cfg.AuthorizedKeysFile)
	if err != nil {
		s.log.Error("read authorized keys", "err", err)
		return nil, errUnauthorized
	}
	want := key.Marshal()
	for len(b) > 0 {
		k, _, _, rest, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			break
		}
		if string(k.Marshal()) == string(want) {
			return &ssh.Permissions{Extensions: map[string]string{"key": ssh.FingerprintSHA256(key)}}, nil
		}
		b = rest
	}
	s.log.Warn("rejected public key", "user", meta.User(), "remote", meta.RemoteAddr().String(),
		"key", ssh.FingerprintSHA256(key))
	return nil, errUnauthorized
}

// Addr returns the address the server listens on ("127.0.0.1:PORT").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKey returns the server's public host key (for known_hosts).
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey }

// serve accepts connections until the listener is closed.
func (s *Server) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("accept", "err", err)
			}
			return
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.log.Warn("too many connections; closing", "remote", nc.RemoteAddr().String(), "max", s.cfg.MaxConns)
			_ = nc.Close()
			continue
		}
		if !s.track(nc) {
			<-s.sem
			_ = nc.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			defer s.untrack(nc)
			s.handleConn(nc)
		}()
	}
}

// track registers nc; it reports false once the server is closing.
func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	_ = nc.Close()
}

// handleConn runs the SSH handshake and serves the connection's sessions.
func (s *Server) handleConn(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, chans, reqs, err := ssh.NewServerConn(nc, s.sshCfg)
	if err != nil {
		s.log.Debug("handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	log := s.log.With("remote", nc.RemoteAddr().String(), "user", conn.User())
	log.Debug("connected", "key", conn.Permissions.Extensions["key"])
	go ssh.DiscardRequests(reqs) // global requests (keepalives): answered "no"

	var sessions sync.WaitGroup
	active := make(chan struct{}, s.cfg.MaxSessionsPerConn)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only session channels are supported")
			continue
		}
		select {
		case active <- struct{}{}:
		default:
			_ = nch.Reject(ssh.ResourceShortage, "too many sessions on this connection")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			<-active
			log.Debug("accept channel", "err", err)
			continue
		}
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			defer func() { <-active }()
			s.handleSession(log, ch, chReqs)
		}()
	}
	// The connection is gone: each session's request channel is closed too,
	// which kills its command.
	sessions.Wait()
	_ = conn.Close()
	log.Debug("disconnected")
}

// DropConnections abruptly closes every client connection while the server
// keeps listening, as a crash of the node's SSH side would; their commands
// are killed. It returns how many connections it closed. Fault-injection
// tests use it.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for nc := range s.conns {
		_ = nc.Close()
	}
	return len(s.conns)
}

// Close stops listening, closes every connection, kills every running
// command and waits for all of the server's goroutines.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.cancel()
		for nc := range s.conns {
			_ = nc.Close()
		}
		s.mu.Unlock()
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("labssh: close: %w", err)
		}
		s.wg.Wait()
		s.log.Info("closed")
	})
	return s.closeErr
}
