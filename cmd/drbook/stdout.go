package main

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// stdoutGuard stops a headless run when its standard output goes away
// (drbook run ... --headless | head -3): the run's context is cancelled with
// errStdoutClosed, so the engine records the running executions interrupted
// and the command exits 130, as on SIGTERM — never leaving the run running.
//
// It notices the closure at the first failed write (EPIPE), and, when
// standard output is a pipe, as soon as the reader closes it (poll reports
// POLLERR on the write end), so a silent long step is stopped too.
type stdoutGuard struct {
	w      io.Writer
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// guardStdout returns a context that is cancelled when w (the command's
// standard output) closes, and the writer to print through. Call release
// when the run is over.
func guardStdout(ctx context.Context, w io.Writer) (context.Context, io.Writer, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	g := &stdoutGuard{w: w, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{})}
	wake := [2]int{-1, -1}
	if f, ok := w.(*os.File); ok && isPipe(f) {
		// release wakes the watcher through a pipe of its own, so the run
		// ends at once instead of at the watcher's next poll timeout.
		var p [2]int
		if unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK) == nil {
			wake = p
		}
		go g.watch(f, wake[0])
	} else {
		close(g.done)
	}
	release := func() {
		close(g.stop)
		if wake[1] >= 0 {
			_ = unix.Close(wake[1])
		}
		<-g.done
		if wake[0] >= 0 {
			_ = unix.Close(wake[0])
		}
		cancel(nil)
	}
	return ctx, g, release
}

func isPipe(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeNamedPipe != 0
}

// Write implements io.Writer. After the output closed, writes are dropped.
func (g *stdoutGuard) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	n, err := g.w.Write(p)
	if err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed) {
			g.closed = true
			g.cancel(errStdoutClosed)
			return len(p), nil
		}
		return n, err
	}
	return n, nil
}

// stdoutPollEvery is how long the watcher's poll waits (tests lengthen it).
var stdoutPollEvery = 200 * time.Millisecond

// watch polls the pipe's write end for an error condition (its reader
// closed) until release: it wakes when the wake pipe's write end closes
// (wake < 0: it checks every stdoutPollEvery whether the run is over).
func (g *stdoutGuard) watch(f *os.File, wake int) {
	defer close(g.done)
	fd := int(f.Fd()) // #nosec G115 -- a file descriptor fits in an int
	for {
		select {
		case <-g.stop:
			return
		default:
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: 0}} // #nosec G115 -- a file descriptor fits in an int32
		if wake >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(wake), Events: unix.POLLIN}) // #nosec G115 -- a file descriptor fits in an int32
		}
		n, err := unix.Poll(fds, int(stdoutPollEvery.Milliseconds()))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			g.mu.Lock()
			g.closed = true
			g.mu.Unlock()
			g.cancel(errStdoutClosed)
			return
		}
		if n > 0 && len(fds) > 1 && fds[1].Revents != 0 {
			return // released
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// stdoutClosedErr names the closed output as the cause of an interruption.
func stdoutClosedErr(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errStdoutClosed) {
		return &causeError{cause: errStdoutClosed, err: err}
	}
	return err
}

// causeError prefixes err with its cause and unwraps to both.
type causeError struct{ cause, err error }

func (e *causeError) Error() string   { return e.cause.Error() + ": " + e.err.Error() }
func (e *causeError) Unwrap() []error { return []error{e.cause, e.err} }
