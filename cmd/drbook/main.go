// Command drbook runs disaster-recovery runbooks: it validates them, walks
// them step by step over SSH with a checkpoint for every step, resumes them
// after any interruption and replays their record for audits.
//
// Exit codes (also in `drbook --help`):
//
//	0    success
//	1    the run failed (a step failed), lint found problems, or an unexpected error
//	2    usage error (bad flags or arguments), the TUI without a terminal,
//	     --require-signing without a key to sign with, or a step needs
//	     approval and the run cannot enforce it (no allowed-signers file, no
//	     key of yours)
//	3    invalid runbook, inventory or answers (lint errors)
//	4    the run needs an operator decision (headless), or was aborted, or
//	     a headless run got no approval in --approval-timeout (resume asks
//	     again); drbook approve: the approval was refused
//	5    the record failed verification (replay --verify: chain, signatures
//	     or approvals; verify: an evidence bundle)
//	6    the run is locked by another runner
//	7    a node's SSH host key is unknown or changed: nothing was run
//	130  interrupted (Ctrl-C / SIGTERM, or standard output closed while a
//	     headless run prints): the run can be resumed
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/drbook/drbook/state/termsafe"
)

func main() {
	// SIGHUP too: a run started over SSH whose session drops records its
	// running steps interrupted, with their output so far, like Ctrl-C.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// A closed standard output (drbook run ... | head) must not kill the
	// process with SIGPIPE before it records the run interrupted: with
	// SIGPIPE notified, the write fails with EPIPE and the headless run
	// stops like on SIGTERM (see stdoutGuard). Other broken pipes (SSH
	// sockets) already surface as write errors.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	err := newRootCmd().ExecuteContext(ctx)
	code := exitCode(err)
	// A listing cut short by its reader (drbook runs | head -1) is not an
	// error to report: the reader has what it wanted.
	quiet := errors.Is(err, errSilent) || (errors.Is(err, syscall.EPIPE) && !errors.Is(err, errStdoutClosed))
	if err != nil && !quiet {
		fmt.Fprintln(os.Stderr, "drbook:", termsafe.Text(err.Error())) // errors quote file names, node answers
	}
	stop()
	os.Exit(code)
}
