// Command drbook runs disaster-recovery runbooks: it validates them, walks
// them step by step over SSH with a checkpoint for every step, resumes them
// after any interruption and replays their record for audits.
//
// Exit codes (also in `drbook --help`):
//
//	0    success
//	1    the run failed (a step failed), lint found problems, or an unexpected error
//	2    usage error (bad flags or arguments)
//	3    invalid runbook, inventory or answers (lint errors)
//	4    the run needs an operator decision (headless), or was aborted
//	5    the record failed verification (replay --verify)
//	6    the run is locked by another runner
//	7    a node's SSH host key is unknown or changed: nothing was run
//	130  interrupted (Ctrl-C / SIGTERM): the run can be resumed
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCmd().ExecuteContext(ctx)
	code := exitCode(err)
	if err != nil && !errors.Is(err, errSilent) {
		fmt.Fprintln(os.Stderr, "drbook:", err)
	}
	stop()
	os.Exit(code)
}
