package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
)

func newAbortCmd(a *app) *cobra.Command {
	var reason string
	var sign signing
	cmd := &cobra.Command{
		Use:   "abort RUN_ID",
		Short: "End a run that will not be resumed, and shred its secrets",
		Long: `End a failed or interrupted run for good: the run is recorded aborted, with
who ended it and why, and the secrets it holds (its sealed secret inputs and
outputs) are shredded: its key is deleted, so neither the database nor the
key file can open them again. An aborted run cannot be resumed.

A run another runner is driving is refused (exit 6), and so is a run whose
record does not verify (exit 5). Ended by another person than the one who
held the run, the record names both (run.handover). The end is signed with
your SSH key like a run's (--sign-key, --require-signing; docs/signing.md).`,
		Example: `  drbook abort r20261129-101500-3f2a --reason "recovered by hand, see INC-42"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("--reason is required: say why the run ends without finishing")}
			}
			ctx := cmd.Context()
			db, err := a.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			run, err := db.GetRun(ctx, args[0])
			if err != nil {
				return err
			}
			if run.Status.EndsRun() {
				return fmt.Errorf("%w: %s is %s", engine.ErrRunFinished, run.ID, run.Status)
			}
			if err := a.prepareSigning(ctx, &sign, nil, cmd.ErrOrStderr()); err != nil {
				return err
			}
			defer a.closeSigner()
			release, err := db.Lock(ctx, run.ID)
			if err != nil {
				return err
			}
			defer release()
			// An abort acts on the record like a resume: a chain that does
			// not verify is not signed off (exit 5 naming the seq).
			if _, err := db.Verify(ctx, run.ID); err != nil {
				return fmt.Errorf("abort of %s refused: %w", run.ID, err)
			}
			actor := state.CurrentActor("")
			if a.signer != nil {
				actor.Key = a.signer.Fingerprint()
			}
			// Ended by someone else than the run's holder: the lock passed,
			// so the record says so first (both names), as a resume does.
			events, err := db.Events(ctx, run.ID)
			if err != nil {
				return err
			}
			if from, seq, ok := engine.Holder(events); ok && !samePerson(from, actor) {
				hev, err := state.NewEvent(run.ID, state.EvRunHandover, state.RunHandover{From: from, To: actor, FromSeq: seq})
				if err != nil {
					return err
				}
				if _, err := db.Append(ctx, hev); err != nil {
					return err
				}
			}
			by := actor.String()
			note, err := state.NewEvent(run.ID, state.EvNote, state.Note{Text: "run ended by " + by + ": " + reason,
				Data: map[string]string{"by": by, "uid": strconv.Itoa(actor.UID), "key": actor.Key, "reason": reason}})
			if err != nil {
				return err
			}
			if _, err := db.Append(ctx, note); err != nil {
				return err
			}
			fin, err := state.NewEvent(run.ID, state.EvRunFinished, state.RunFinished{Status: state.StatusAborted, Error: "ended by " + by + ": " + reason})
			if err != nil {
				return err
			}
			head, err := db.Append(ctx, fin)
			if err != nil {
				return err
			}
			if err := signRecordHead(ctx, db, a.signer, head, state.SignAborted, actor); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "drbook: %v\n", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %s aborted (was %s); its secrets are shredded\n", run.ID, run.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the run ends (recorded; required)")
	signFlags(cmd, &sign)
	return cmd
}

// samePerson compares a run's holder with who acts now (an older record
// names no uid: user and host then).
func samePerson(holder, now state.Actor) bool {
	if holder.UID == -1 {
		return holder.User == now.User && holder.Host == now.Host
	}
	return holder.SamePerson(now)
}
