package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// localWaitDelay bounds how long Run waits for output pipes held open by
// processes that escaped the command's process group.
const localWaitDelay = 500 * time.Millisecond

// Local runs commands on this machine with Shell -c Line. Each command runs in
// its own process group; cancelling Run's context kills the whole group.
type Local struct {
	// Shell is the POSIX shell to run Line with. Default /bin/sh.
	Shell string
	// BaseEnv is the environment every command starts from ("K=V" entries);
	// Command.Env is added to it. Nil means this process's environment.
	BaseEnv []string
}

var _ Transport = (*Local)(nil)

// Run runs cmd.Line with l.Shell -c and returns its exit status (128+n when
// killed by signal n). On ctx cancellation it kills the command's process
// group, waits for it, and returns ctx's error wrapped.
func (l *Local) Run(ctx context.Context, cmd Command) (int, error) {
	names, err := checkCommand(cmd)
	if err != nil {
		return -1, fmt.Errorf("local: %w: %w", ErrNotStarted, err)
	}
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("local: run: %w: %w", ErrNotStarted, err)
	}
	shell := l.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	env := l.BaseEnv
	if env == nil {
		env = os.Environ()
	}
	env = append(env[:len(env):len(env)], make([]string, 0, len(names))...)
	for _, k := range names {
		env = append(env, k+"="+cmd.Env[k])
	}

	out := newOutputs(cmd.Stdout, cmd.Stderr)
	defer out.close()
	c := exec.CommandContext(ctx, shell, "-c", cmd.Line) // #nosec G204 -- running the runbook's command on this machine is the local transport's job (argv, script on stdin)
	c.Env = env
	c.Stdout = out.Stdout()
	c.Stderr = out.Stderr()
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error {
		// Negative pid: the whole process group the command leads.
		return syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	c.WaitDelay = localWaitDelay

	err = c.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return -1, fmt.Errorf("local: run: %w", ctxErr)
	}
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		// ErrWaitDelay: the command exited but a straggler held its output
		// open; the exit status is still the command's.
		return c.ProcessState.ExitCode(), nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	}
	return -1, fmt.Errorf("local: run %s: %w", shell, err)
}

// Close implements Transport; a Local transport holds no resources.
func (l *Local) Close() error { return nil }
