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
	"strings"
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
	// PeakRSS is the child's ru_maxrss in bytes. Go starts children with
	// vfork, and Linux carries the parent's peak into the child's at exec:
	// this is an upper bound (never less than the child's real peak).
	PeakRSS int64
	// HWM is the highest VmHWM read from /proc/PID/status while the child
	// ran (sampled every millisecond or so): the child's own peak, less any
	// growth in its last moments.
	HWM int64
}

// String summarises a result for test logs.
func (r Result) String() string {
	return fmt.Sprintf("exit %d, cpu %v, wall %v, VmHWM %.1f MB (sampled), ru_maxrss ≤ %.1f MB", r.ExitCode, r.CPU.Round(time.Millisecond), r.Wall.Round(time.Millisecond), float64(r.HWM)/(1<<20), float64(r.PeakRSS)/(1<<20))
}

// Run runs name with args in a child whose address space is limited to
// limit bytes, with stdin as its standard input (nil for none) and env
// added to the current environment.
func Run(ctx context.Context, limit int64, stdin io.Reader, env []string, name string, args ...string) (Result, error) {
	script := `ulimit -v "$1" || exit 97; shift; exec "$@"`
	argv := append([]string{"-c", script, "sh", strconv.FormatInt(limit/1024, 10), name}, args...)
	cmd := exec.CommandContext(ctx, "/bin/sh", argv...) // #nosec G204 -- a test helper: runs the program its test names, under a limit
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("run %s: %w", name, err)
	}
	done := make(chan struct{})
	hwm := make(chan int64, 1)
	go func() { hwm <- watchHWM(cmd.Process.Pid, done) }()
	err := cmd.Wait()
	close(done)
	r := Result{Stdout: so.String(), Stderr: se.String(), Wall: time.Since(start), HWM: <-hwm}
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

// watchHWM samples a process's VmHWM until done is closed and returns the
// highest value seen, in bytes.
func watchHWM(pid int, done <-chan struct{}) int64 {
	status := fmt.Sprintf("/proc/%d/status", pid)
	var peak int64
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		if kb := readHWM(status); kb*1024 > peak {
			peak = kb * 1024
		}
		select {
		case <-done:
			return peak
		case <-t.C:
		}
	}
}

// readHWM returns the VmHWM line of a /proc status file in KiB, or 0.
func readHWM(path string) int64 {
	b, err := os.ReadFile(path) // #nosec G304 -- a /proc status file of our own child
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb
			}
		}
	}
	return 0
}

// SelfHWM returns this process's own VmHWM in bytes (0 if unknown): a child
// started by Test prints it before it exits for an exact figure.
func SelfHWM() int64 { return readHWM("/proc/self/status") * 1024 }

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
