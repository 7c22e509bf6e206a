// Package transport runs runbook step commands on nodes.
//
// A Transport runs one POSIX shell command line at a time (Command.Line) with
// extra environment (Command.Env, which may hold secrets) and streams its
// output as it arrives. Two transports exist: Local (sh -c on this machine)
// and SSH (one strictly host-key-checked SSH connection per node, a new
// session per command). Pool keeps one live transport per node name.
//
// A non-zero exit status is a result, not an error: Run returns an error only
// when the transport itself failed (connection lost, session refused, context
// cancelled).
//
// Secrets in Command.Env never appear on a process command line: the SSH
// transport sends a fixed exec request (ExecWrapper) and passes the environment
// and the command line on the session's stdin; the Local transport passes them
// through execve's environment. Command.Line is not a place for secrets: a
// command without Env is sent to sshd as the exec request itself when the
// node's login shell is sh (see ssh.go), and is then on the login shell's
// command line while it runs.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Command is one shell command line to run on a node.
type Command struct {
	// Line is a POSIX shell command line, already composed by the caller.
	// It must hold no secret (pass secrets in Env): the node may show it in
	// its process list.
	Line string
	// Env is extra environment for the command. It may hold secrets: its
	// values never appear on a command line, in an exec request or in errors.
	Env map[string]string
	// Stdout and Stderr receive output as it arrives. Either may be nil
	// (output discarded). The transport never calls them concurrently with
	// each other, and never after Run has returned.
	Stdout, Stderr io.Writer
}

// Transport runs commands on one node.
type Transport interface {
	// Run runs cmd and returns its exit status. A non-zero exit is not an
	// error: err reports only transport failures (ErrConnLost, a refused
	// session, or ctx's error when ctx is cancelled, wrapped).
	Run(ctx context.Context, cmd Command) (exitCode int, err error)
	// Close releases the transport. Runs in progress fail.
	Close() error
}

// Sentinel errors. Match them with errors.Is.
var (
	// ErrConnLost reports that the connection to the node was lost before
	// the command's exit status arrived. Unless the error also matches
	// ErrNotStarted, the command may have run, wholly or in part.
	ErrConnLost = errors.New("transport: connection to the node lost")
	// ErrNotStarted marks a Run failure that happened before the command
	// was handed to the node (invalid command, no session could be opened,
	// context ended first): the command certainly did not run, so retrying
	// it is safe.
	ErrNotStarted = errors.New("transport: the command was not started")
	// ErrUnknownHost reports that the node's host key is not in the known_hosts
	// file (strict host key checking: nothing was run).
	ErrUnknownHost = errors.New("transport: host key is not in known_hosts (strict host key checking)")
	// ErrHostKeyMismatch reports that the node offered a host key different
	// from the one recorded in known_hosts (possible man-in-the-middle).
	ErrHostKeyMismatch = errors.New("transport: host key differs from the one in known_hosts (possible man-in-the-middle)")
	// ErrInvalidEnv reports an environment variable name that is not a POSIX
	// shell identifier, or a value holding a NUL byte.
	ErrInvalidEnv = errors.New("transport: environment names must match [A-Za-z_][A-Za-z0-9_]* and values must not contain NUL")
	// ErrInvalidCommand reports a command line holding a NUL byte, which
	// no shell can receive.
	ErrInvalidCommand = errors.New("transport: command line must not contain NUL bytes")
	// ErrClosed reports use of a closed transport or pool.
	ErrClosed = errors.New("transport: closed")
)

// Quote returns s quoted for a POSIX shell as a single word: s wrapped in
// single quotes, with each embedded single quote closed, escaped and reopened:
//
//	Quote("it's") == `'it'\''s'`
//
// The result is safe to paste into any POSIX shell command line. A NUL byte
// cannot be passed through a shell word at all; callers must reject such
// strings.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// validEnvName reports whether name is a POSIX shell identifier.
func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// checkCommand validates cmd and returns its Env names in sorted order.
// Errors name a variable but never its value.
func checkCommand(cmd Command) ([]string, error) {
	if strings.IndexByte(cmd.Line, 0) >= 0 {
		return nil, ErrInvalidCommand
	}
	return sortedEnv(cmd.Env)
}

// sortedEnv validates env and returns its names in sorted order. Errors name
// the variable but never its value.
func sortedEnv(env map[string]string) ([]string, error) {
	names := make([]string, 0, len(env))
	for k, v := range env {
		if !validEnvName(k) {
			return nil, fmt.Errorf("env %q: %w", k, ErrInvalidEnv)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("env %q: value holds a NUL byte: %w", k, ErrInvalidEnv)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	return names, nil
}

// outputs serialises the writes of one command to its Stdout and Stderr and
// drops every write after close, so a caller's writers are never called
// concurrently nor after Run has returned.
type outputs struct {
	mu     sync.Mutex
	closed bool
	stdout io.Writer
	stderr io.Writer
}

func newOutputs(stdout, stderr io.Writer) *outputs {
	return &outputs{stdout: stdout, stderr: stderr}
}

// close makes later writes no-ops.
func (o *outputs) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

func (o *outputs) write(w io.Writer, p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || w == nil {
		return len(p), nil
	}
	return w.Write(p)
}

// Stdout returns a writer for the command's stdout (nil if none was given).
func (o *outputs) Stdout() io.Writer {
	if o.stdout == nil {
		return nil
	}
	return stream{o, o.stdout}
}

// Stderr returns a writer for the command's stderr (nil if none was given).
func (o *outputs) Stderr() io.Writer {
	if o.stderr == nil {
		return nil
	}
	return stream{o, o.stderr}
}

// stream is one of a command's output streams. It is an io.ReaderFrom, so
// that io.Copy (which x/crypto/ssh runs per stream and session) reads into
// a pooled buffer instead of allocating 32 KiB per stream and command.
type stream struct {
	o *outputs
	w io.Writer
}

func (s stream) Write(p []byte) (int, error) { return s.o.write(s.w, p) }

// copyBufs holds the buffers of stream.ReadFrom.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ReadFrom copies r to the stream until EOF, as io.Copy would.
func (s stream) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			w, werr := s.Write(buf[:k])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
			if w != k {
				return n, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
