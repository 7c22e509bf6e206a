package labssh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// signals maps SSH signal names (RFC 4254 §6.10, without "SIG") to Unix
// signals, both for "signal" requests and "exit-signal" reports.
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE,
	"HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
	"KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE, "QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func signalName(sig syscall.Signal) string {
	for name, s := range signals {
		if s == sig {
			return name
		}
	}
	return "KILL" // not representable: report the closest fatal signal
}

// session is one "session" channel: at most one exec'd command.
type session struct {
	srv *Server
	log *slog.Logger
	ch  ssh.Channel

	mu      sync.Mutex
	cmd     *exec.Cmd // nil until exec
	exited  bool      // the command has been reaped
	waiting chan struct{}
}

// handleSession serves one session channel until the peer closes it or the
// connection ends; then it kills the command's process group.
func (s *Server) handleSession(log *slog.Logger, ch ssh.Channel, reqs <-chan *ssh.Request) {
	ctx, cancel := context.WithCancel(s.ctx)
	sess := &session{srv: s, log: log, ch: ch}
	for req := range reqs {
		ok := false
		switch req.Type {
		case "exec":
			ok = sess.exec(ctx, req.Payload)
			if req.WantReply {
				_ = req.Reply(ok, nil)
			}
			if ok {
				// Only now: the exit status (and the channel's close) must
				// follow the reply, or a fast command's client sees the
				// channel close before its exec was confirmed.
				go sess.wait()
			}
			continue
		case "signal":
			sess.signal(req.Payload)
			ok = true
		default: // pty-req, shell, subsystem, env, x11-req, agent forwarding…
			log.Debug("refused session request", "type", req.Type)
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
	// Channel closed by the peer, or connection lost: kill what still runs.
	// The group is killed even if its leader has exited, as long as the
	// session has not finished (a background member holding the output
	// open would otherwise keep it for outputWaitDelay).
	cancel()
	sess.mu.Lock()
	waiting := sess.waiting
	if sess.cmd != nil && !sess.exited {
		_ = syscall.Kill(-sess.cmd.Process.Pid, syscall.SIGKILL)
	}
	sess.mu.Unlock()
	if waiting != nil {
		<-waiting
	}
	_ = ch.Close()
}

// exec starts the command of an "exec" request and reports whether it did;
// the caller then starts sess.wait.
func (sess *session) exec(ctx context.Context, payload []byte) bool {
	var msg struct{ Command string }
	if err := ssh.Unmarshal(payload, &msg); err != nil {
		sess.log.Debug("bad exec request", "err", err)
		return false
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.cmd != nil {
		return false // one command per session
	}
	cfg := sess.srv.cfg
	cmd := exec.CommandContext(ctx, cfg.Shell, "-c", msg.Command) // #nosec G204 -- the lab SSH endpoint runs the key-authenticated client's command by design (loopback only)
	cmd.Env = cfg.Env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = outputWaitDelay
	cmd.Stdout = sess.ch
	cmd.Stderr = sess.ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		sess.log.Error("stdin pipe", "err", err)
		return false
	}
	if err := cmd.Start(); err != nil {
		sess.log.Error("exec", "shell", cfg.Shell, "err", err)
		return false
	}
	sess.log.Debug("exec", "pid", cmd.Process.Pid, "command", msg.Command)
	sess.cmd = cmd
	sess.waiting = make(chan struct{})
	go func() {
		// Ends when the client sends EOF or the channel closes, or when
		// the command no longer reads its stdin (EPIPE).
		_, _ = io.Copy(stdin, sess.ch)
		_ = stdin.Close()
	}()
	return true
}

// wait reaps the command, reports its exit status or signal, and closes the
// channel.
func (sess *session) wait() {
	defer close(sess.waiting)
	err := sess.cmd.Wait()
	sess.mu.Lock()
	sess.exited = true
	sess.mu.Unlock()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) && !errors.Is(err, exec.ErrWaitDelay) {
		sess.log.Warn("wait", "err", err)
	}
	ws, _ := sess.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		sess.log.Debug("exit", "signal", ws.Signal().String())
		_, _ = sess.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: signalName(ws.Signal())}))
	} else {
		sess.log.Debug("exit", "status", ws.ExitStatus())
		_, _ = sess.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(ws.ExitStatus())})) // #nosec G115 -- a process exit status is 0..255
	}
	_ = sess.ch.CloseWrite()
	_ = sess.ch.Close()
}

// signal forwards a "signal" request to the command's process group.
func (sess *session) signal(payload []byte) {
	var msg struct{ Signal string }
	if err := ssh.Unmarshal(payload, &msg); err != nil {
		return
	}
	sig, ok := signals[msg.Signal]
	if !ok {
		sess.log.Debug("unknown signal", "signal", msg.Signal)
		return
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.cmd == nil || sess.exited {
		return
	}
	sess.log.Debug("signal", "signal", msg.Signal, "pgid", sess.cmd.Process.Pid)
	_ = syscall.Kill(-sess.cmd.Process.Pid, sig)
}
