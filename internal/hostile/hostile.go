// Package hostile runs work that parses hostile input in a child process
// under an address-space limit (ulimit -v) and measures it: CPU time, wall
// time and peak resident memory (ru_maxrss, the kernel's VmHWM of the child).
// A regression in a parsing bound then fails the test that uses it, instead
// of exhausting the machine the tests run on.
package hostile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// DefaultLimit is the child's address-space limit: far above what a bounded
// parse needs (well under 200 MB resident), far below what a blow-up takes.
const DefaultLimit = 2 << 30

// ChildEnv is set in a re-executed test binary's environment (see Test).
const ChildEnv = "DRBOOK_HOSTILE_CHILD"

// Result is one finished child.
type Result struct {
	Stdout, Stderr string
	// ExitCode is the child's exit status (-1 if it was killed by a signal).
	ExitCode int
	// Wall is the elapsed time; CPU is user plus system time of the child.
	Wall, CPU time.Duration
	// PeakRSS is the child's peak resident set size in bytes.
	PeakRSS int64
}

// String summarises a result for test logs.
func (r Result) String() string {
	return fmt.Sprintf("exit %d, cpu %v, wall %v, peak RSS %.1f MB", r.ExitCode, r.CPU.Round(time.Millisecond), r.Wall.Round(time.Millisecond), float64(r.PeakRSS)/(1<<20))
}

// Run runs name with args in a child whose address space is limited to
// limit bytes, with stdin as its standard input (nil for none) and env
// added to the current environment.
func Run(ctx context.Context, limit int64, stdin io.Reader, env []string, name string, args ...string) (Result, error) {
	script := `ulimit -v "$1" || exit 97; shift; exec "$@"`
	argv := append([]string{"-c", script, "sh", strconv.FormatInt(limit/1024, 10), name}, args...)
	cmd := exec.CommandContext(ctx, "/bin/sh", argv...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: so.String(), Stderr: se.String(), Wall: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
	default:
		return r, fmt.Errorf("run %s: %w", name, err)
	}
	st := cmd.ProcessState
	r.ExitCode = st.ExitCode()
	r.CPU = st.UserTime() + st.SystemTime()
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		r.PeakRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	if r.ExitCode == 97 {
		return r, errors.New("the shell could not set the address-space limit")
	}
	return r, nil
}

// Test re-executes the running test binary to run only the test named
// test, with ChildEnv set and env added, under limit (see Run). The child
// test reads its parameters from its environment and does the work only
// when ChildEnv is set.
func Test(ctx context.Context, limit int64, test string, env ...string) (Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return Result{}, fmt.Errorf("test binary: %w", err)
	}
	env = append([]string{ChildEnv + "=1"}, env...)
	return Run(ctx, limit, nil, env, exe, "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=60s")
}

// IsChild reports whether this process is a child started by Test.
func IsChild() bool { return os.Getenv(ChildEnv) == "1" }
