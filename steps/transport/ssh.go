package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/melbahja/goph"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ExecWrapper is the fixed command line of the SSH exec request of a script
// of up to SmallScript bytes that has environment (Command.Env, which may
// hold secrets), or of any script while the login shell is not known to be
// sh (see "Direct execution" below). The real script (exports of Command.Env, then
// Command.Line) travels on the session's stdin, so secrets never appear in
// the exec request nor on any process command line on the node. It reads the
// script with the shell's own read, line by line: no process besides sh
// (a $(cat) would fork and exec one more per step, the largest cost of a
// short step after the session itself).
const ExecWrapper = `sh -c 'script=; while IFS= read -r line; do script="$script$line
"; done; eval "$script$line"'`

// ExecWrapperLarge is the exec request of a script larger than SmallScript:
// read reads a byte per system call and the loop copies the script once per
// line, so a large script is read by cat instead, in linear time.
const ExecWrapperLarge = `sh -c 'script=$(cat); eval "$script"'`

// SmallScript is the largest script (in bytes) sent with ExecWrapper.
const SmallScript = 2048

// MaxDirectScript is the largest script (in bytes) sent as the exec request
// itself (see ExecDirect); Linux limits one argument of a command to 128 KiB.
const MaxDirectScript = 32 << 10

// Direct execution. A command without environment holds no secret (the
// contract of Command: secrets travel in Env only), so its script needs no
// stdin: it is sent as the exec request itself, which the node's sshd runs
// with the login shell (`$SHELL -c SCRIPT`), the way any `ssh host cmd`
// runs. That saves the node one sh process per command, about a millisecond
// on a small machine. Scripts are POSIX sh, and ExecWrapper runs them with
// sh whatever the login shell, so direct execution is used only on a
// connection whose login shell has been found to be that same sh, in the
// same mode: ProbeLoginShell runs once per connection, in the background
// after the dial, and until it has answered scripts go through the wrapper.

// loginShellProbe is the exec request that tells whether the login shell is
// the sh that ExecWrapper would run: invoked as sh (or dash, whose mode does
// not depend on its name), and the same file as `command -v sh`. Any other
// shell (bash, zsh, fish, csh…) prints nothing, or fails.
const loginShellProbe = `case ${0##*/} in sh|dash) [ /proc/$$/exe -ef "$(command -v sh)" ] && echo drbook:login-shell-is-sh;; esac`

// loginShellIsSh is loginShellProbe's answer when the login shell is sh.
const loginShellIsSh = "drbook:login-shell-is-sh\n"

// Login shell states of a connection (SSH.shell).
const (
	shellUnknown int32 = iota // probe not answered yet: ExecWrapper
	shellIsSh                 // scripts without Env run directly
	shellOther                // always ExecWrapper
)

// execRequest returns the exec request for cmd's script and whether the
// script must travel on stdin.
func (s *SSH) execRequest(cmd Command, script string) (req string, stdin bool) {
	if len(cmd.Env) == 0 && len(script) <= MaxDirectScript && s.shell.Load() == shellIsSh {
		return script, false
	}
	if len(script) <= SmallScript {
		return ExecWrapper, true
	}
	return ExecWrapperLarge, true
}

// Defaults for SSHConfig.
const (
	DefaultSSHPort        = 22
	DefaultConnectTimeout = 10 * time.Second
)

// Cancellation timing: on ctx cancel Run sends TERM to the remote process
// group, then KILL after cancelGrace, closes the session, and waits at most
// cancelDrain for the session to wind down.
const (
	cancelGrace = 200 * time.Millisecond
	cancelDrain = 300 * time.Millisecond
)

// SSHConfig describes how to reach one node over SSH.
type SSHConfig struct {
	// Name is the node's name, used in errors.
	Name string
	// Host is the node's address (name or IP).
	Host string
	// Port is the SSH port. Default 22.
	Port int
	// User is the login user.
	User string
	// IdentityFile is an unencrypted private key. If empty, keys come from
	// the ssh-agent at SSH_AUTH_SOCK.
	IdentityFile string
	// KnownHostsFile is required: the host key must be listed there.
	KnownHostsFile string
	// ConnectTimeout bounds dialling plus the SSH handshake. Default 10 s.
	ConnectTimeout time.Duration
	// KeepAlive, if positive, sends a keepalive request at this interval and
	// drops the connection (ErrConnLost for runs in progress) when three
	// intervals pass without an answer.
	KeepAlive time.Duration
}

// SSH is a Transport over one SSH connection; each Run opens a new session
// on it. It is safe for concurrent use.
type SSH struct {
	name        string
	client      *goph.Client
	fingerprint string
	agentConn   net.Conn
	dead        atomic.Bool
	done        chan struct{} // closed when the connection has ended
	closeOnce   sync.Once
	closeErr    error
	// shell is the login shell's state (shellUnknown until the probe has
	// answered); probed is closed once it has.
	shell  atomic.Int32
	probed chan struct{}

	// spareMu guards the session opened ahead (spare), the number of Runs
	// in progress and whether the transport is closed.
	spareMu  sync.Mutex
	spare    *spareSession
	inflight int
	closed   bool
}

// Sessions opened ahead. Opening a session costs a round trip to the node
// (and a few goroutine hand-offs) before the exec request can be sent.
// When the last Run in progress returns, the next session is opened in the
// background: the next Run (a runbook's next step, usually within a
// millisecond) finds it open, so the round trip overlaps drbook's own work
// between commands (its checkpoints) instead of adding to it. Opening a
// session runs nothing on the node: sshd starts a process only for the exec
// request, which Run sends as before. At most one session is open ahead,
// and only while no Run is in progress, so a connection never holds more
// sessions than it has Runs, plus one; a session open ahead for longer than
// SpareMaxAge is closed instead of used (a server may close idle channels).

// SpareMaxAge bounds how long a session opened ahead (see "Sessions opened
// ahead") is used; an older one is closed and a fresh one opened.
const SpareMaxAge = 2 * time.Second

// spareSession is a session being opened ahead; ready is closed when it
// is open (sess) or failed (err).
type spareSession struct {
	ready  chan struct{}
	sess   *ssh.Session
	err    error
	opened time.Time
}

// session returns the session opened ahead if there is a usable one, else
// opens one (newSession). Every call is paired with a runDone.
func (s *SSH) session(ctx context.Context) (*ssh.Session, error) {
	s.spareMu.Lock()
	s.inflight++
	sp := s.spare
	s.spare = nil
	s.spareMu.Unlock()
	if sp != nil {
		select {
		case <-sp.ready:
			if sp.err == nil && time.Since(sp.opened) < SpareMaxAge && s.Alive() {
				return sp.sess, nil
			}
			if sp.sess != nil {
				_ = sp.sess.Close()
			}
		case <-ctx.Done():
			go closeSpare(sp)
			return nil, fmt.Errorf("ssh %s: open session: %w: %w", s.name, ErrNotStarted, ctx.Err())
		}
	}
	return s.newSession(ctx)
}

// runDone ends a Run; the last one in progress opens the next session ahead.
func (s *SSH) runDone() {
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	s.inflight--
	if s.inflight > 0 || s.spare != nil || s.closed || !s.Alive() {
		return
	}
	sp := &spareSession{ready: make(chan struct{})}
	s.spare = sp
	go func() {
		sp.sess, sp.err = s.client.NewSession()
		sp.opened = time.Now()
		close(sp.ready)
	}()
}

// closeSpare closes sp's session once it is open.
func closeSpare(sp *spareSession) {
	<-sp.ready
	if sp.sess != nil {
		_ = sp.sess.Close()
	}
}

var _ Transport = (*SSH)(nil)

// DialSSH connects to cfg's node with strict host key checking. An unknown
// host fails with a *HostKeyError matching ErrUnknownHost, a changed key with
// one matching ErrHostKeyMismatch; in both cases no authentication happens
// and nothing runs on the node.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSH, error) {
	name := cfg.Name
	if name == "" {
		name = cfg.Host
	}
	port := cfg.Port
	if port == 0 {
		port = DefaultSSHPort
	}
	timeout := cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(port))
	fail := func(format string, args ...any) (*SSH, error) {
		return nil, fmt.Errorf("ssh %s (%s): "+format, append([]any{name, addr}, args...)...)
	}

	var seen atomic.Pointer[ssh.PublicKey]
	hostKeyCallback, err := strictHostKeyCallback(cfg.KnownHostsFile, &seen)
	if err != nil {
		return fail("%w", err)
	}
	s := &SSH{name: name, done: make(chan struct{}), probed: make(chan struct{})}
	var auth goph.Auth
	if cfg.IdentityFile != "" {
		auth, err = goph.Key(cfg.IdentityFile, "")
		if err != nil {
			return fail("load identity %s: %w", cfg.IdentityFile, err)
		}
	} else {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return fail("no IdentityFile and no ssh-agent (SSH_AUTH_SOCK is empty)")
		}
		var d net.Dialer
		s.agentConn, err = d.DialContext(ctx, "unix", sock)
		if err != nil {
			return fail("connect to ssh-agent: %w", err)
		}
		auth = goph.Auth{ssh.PublicKeysCallback(agent.NewClient(s.agentConn).Signers)}
	}
	gcfg := &goph.Config{
		Auth: auth, User: cfg.User, Addr: cfg.Host, Port: uint(port), // #nosec G115 -- port is 1..65535: the inventory loader refuses anything else and 0 became 22 above
		Timeout: timeout, Callback: hostKeyCallback,
	}

	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := dialClient(dctx, addr, gcfg)
	if err != nil {
		s.closeAgent()
		var hke *HostKeyError
		if errors.As(err, &hke) {
			return nil, fmt.Errorf("ssh %s: %w", name, hke)
		}
		if err := ctxEnded(ctx); err != nil {
			return fail("dial: %w", err)
		}
		if ctxEnded(dctx) != nil {
			return fail("dial: not connected within ConnectTimeout %v: %w", timeout, err)
		}
		return fail("dial: %w", err)
	}
	s.client = client
	if k := seen.Load(); k != nil {
		s.fingerprint = ssh.FingerprintSHA256(*k)
	}
	go func() {
		_ = client.Wait()
		s.dead.Store(true)
		close(s.done)
	}()
	if cfg.KeepAlive > 0 {
		go s.keepAlive(cfg.KeepAlive)
	}
	// In the background: the first commands go through the wrapper rather
	// than wait for it.
	go s.probeLoginShell(timeout)
	return s, nil
}

// probeLoginShell runs loginShellProbe once and records the answer in
// s.shell; a failure (or a timeout) leaves every command on the wrapper.
func (s *SSH) probeLoginShell(timeout time.Duration) {
	defer close(s.probed)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	answer := shellOther
	defer func() { s.shell.Store(answer) }()
	sess, err := s.newSession(ctx)
	if err != nil {
		return
	}
	defer sess.Close()
	out := &capped{max: 64}
	sess.Stdout = out
	if err := sess.Start(loginShellProbe); err != nil {
		return
	}
	stop := context.AfterFunc(ctx, func() { _ = sess.Close() })
	err = sess.Wait()
	if stop() && err == nil && !out.over && out.buf.String() == loginShellIsSh {
		answer = shellIsSh
	}
}

// DirectExec reports whether commands without environment run as the exec
// request itself on this connection (the login shell is sh), waiting at
// most until ctx ends for the probe that finds out.
func (s *SSH) DirectExec(ctx context.Context) bool {
	select {
	case <-s.probed:
	case <-ctx.Done():
	}
	return s.shell.Load() == shellIsSh
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - c.buf.Len(); n > room {
		c.over = true
		p = p[:max(room, 0)]
	}
	c.buf.Write(p)
	return n, nil
}

// ctxEnded returns ctx's error, or DeadlineExceeded once its deadline has
// passed even if its timer has not fired yet (a connection deadline set to
// the same instant can fire first).
func ctxEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// dialClient dials addr and runs the SSH handshake, both bounded by ctx.
func dialClient(ctx context.Context, addr string, gcfg *goph.Config) (*goph.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:            gcfg.User,
		Auth:            gcfg.Auth,
		HostKeyCallback: gcfg.Callback,
		Timeout:         gcfg.Timeout,
	})
	if !stop() {
		// ctx ended during the handshake: conn is closed.
		if c != nil {
			_ = c.Close()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return &goph.Client{Client: ssh.NewClient(c, chans, reqs), Config: gcfg}, nil
}

// keepAlive probes the connection every interval and closes it when three
// intervals pass without an answer.
func (s *SSH) keepAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		replied := make(chan error, 1)
		go func() {
			_, _, err := s.client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		timer := time.NewTimer(3 * interval)
		select {
		case err := <-replied:
			timer.Stop()
			if err != nil {
				s.drop()
				return
			}
		case <-timer.C:
			s.drop()
			return
		case <-s.done:
			timer.Stop()
			return
		}
	}
}

// drop marks the connection dead and closes it.
func (s *SSH) drop() {
	s.dead.Store(true)
	_ = s.client.Close()
}

// HostKeyFingerprint returns the SHA256 fingerprint of the node's host key.
func (s *SSH) HostKeyFingerprint() string { return s.fingerprint }

// Alive reports whether the connection is still up. Pool redials a
// transport that is no longer alive.
func (s *SSH) Alive() bool { return !s.dead.Load() }

// Script returns the script of cmd: quoted exports of cmd.Env, stdin
// redirected from /dev/null, then cmd.Line. It travels on the session's
// stdin, or, without Env, as the exec request itself (see "Direct
// execution").
func Script(cmd Command) (string, error) {
	names, err := checkCommand(cmd)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, k := range names {
		b.WriteString("export " + k + "=" + Quote(cmd.Env[k]) + "\n")
	}
	b.WriteString("exec </dev/null\n")
	b.WriteString(cmd.Line)
	b.WriteString("\n")
	return b.String(), nil
}

// Run runs cmd in a new session on the connection and returns its exit status
// (128+n when killed by signal n). When ctx is cancelled it signals the
// remote process group (TERM, then KILL), closes the session and returns
// within about half a second. A connection lost before the exit status
// arrived yields ErrConnLost, never a success; a failure before the command
// reached the node also matches ErrNotStarted.
func (s *SSH) Run(ctx context.Context, cmd Command) (int, error) {
	script, err := Script(cmd)
	if err != nil {
		return -1, fmt.Errorf("ssh %s: %w: %w", s.name, ErrNotStarted, err)
	}
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("ssh %s: run: %w: %w", s.name, ErrNotStarted, err)
	}
	sess, err := s.session(ctx)
	defer s.runDone()
	if err != nil {
		return -1, err
	}
	out := newOutputs(cmd.Stdout, cmd.Stderr)
	defer out.close()
	sess.Stdout = out.Stdout()
	sess.Stderr = out.Stderr()
	req, viaStdin := s.execRequest(cmd, script)
	if viaStdin {
		sess.Stdin = strings.NewReader(script)
	}
	if err := sess.Start(req); err != nil {
		_ = sess.Close()
		return -1, s.lost("start", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	select {
	case err := <-done:
		_ = sess.Close()
		return s.result(err)
	case <-ctx.Done():
	}
	select {
	case <-done: // finished at the same moment; still report the cancellation
	default:
		_ = sess.Signal(ssh.SIGTERM)
		grace := time.NewTimer(cancelGrace)
		select {
		case <-done:
			grace.Stop()
		case <-grace.C:
			_ = sess.Signal(ssh.SIGKILL)
			_ = sess.Close()
			drain := time.NewTimer(cancelDrain)
			select {
			case <-done:
			case <-drain.C:
			}
			drain.Stop()
		}
	}
	_ = sess.Close()
	return -1, fmt.Errorf("ssh %s: run: %w", s.name, ctx.Err())
}

// newSession opens a session, giving up when ctx ends.
func (s *SSH) newSession(ctx context.Context) (*ssh.Session, error) {
	type result struct {
		sess *ssh.Session
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		sess, err := s.client.NewSession()
		ch <- result{sess, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotStarted, s.lost("open session", r.err))
		}
		return r.sess, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.sess != nil {
				_ = r.sess.Close()
			}
		}()
		return nil, fmt.Errorf("ssh %s: open session: %w: %w", s.name, ErrNotStarted, ctx.Err())
	}
}

// lost wraps a session failure: ErrConnLost when the connection has ended.
func (s *SSH) lost(op string, err error) error {
	if s.connEnded() {
		return fmt.Errorf("ssh %s: %s: %w: %w", s.name, op, ErrConnLost, err)
	}
	return fmt.Errorf("ssh %s: %s: %w", s.name, op, err)
}

// connEnded reports whether the connection has ended, waiting briefly: a
// channel can report EOF a moment before the connection's reader notices.
func (s *SSH) connEnded() bool {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-s.done:
		return true
	case <-t.C:
		return false
	}
}

// result maps the session's Wait error to an exit status or ErrConnLost.
func (s *SSH) result(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var exitErr *ssh.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitStatus(), nil
	}
	// No exit status (ExitMissingError, EOF, closed connection): whatever
	// happened on the node is unknown. Let Alive catch up with the
	// connection's end before reporting it, so that a Pool redials at once.
	s.connEnded()
	return -1, fmt.Errorf("ssh %s: no exit status (outcome unknown): %w: %w", s.name, ErrConnLost, err)
}

// Close closes the connection (and the ssh-agent socket, if any).
func (s *SSH) Close() error {
	s.closeOnce.Do(func() {
		s.spareMu.Lock()
		s.closed = true
		sp := s.spare
		s.spare = nil
		s.spareMu.Unlock()
		err := s.client.Close()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("ssh %s: close: %w", s.name, err)
		}
		if sp != nil {
			closeSpare(sp) // the connection is closed: it fails or closes at once
		}
		s.closeAgent()
	})
	return s.closeErr
}

func (s *SSH) closeAgent() {
	if s.agentConn != nil {
		_ = s.agentConn.Close()
	}
}
