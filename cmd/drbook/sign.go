package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/evidence"
	"github.com/drbook/drbook/state/termsafe"
)

// Environment variables that stand for the signing flags (an operator
// config file, when there is one, sets the same: sign_key, allowed_signers).
// (envSignKey and envAllowedSigners are in config.go.)
const envRequireSigning = "DRBOOK_REQUIRE_SIGNING"

// errSigningRequired: --require-signing and no key to sign with (exit 2).
var errSigningRequired = errors.New("signing is required (--require-signing) but there is no key to sign with")

// signing is what a command that records needs to sign: the flags, and the
// signer once loaded.
type signing struct {
	key     string
	require bool
}

// signFlags adds --sign-key and --require-signing to a command that
// records a run segment.
func signFlags(cmd *cobra.Command, s *signing) {
	cmd.Flags().StringVar(&s.key, "sign-key", "", "SSH key that signs the record: a private key file, or a .pub whose key is in the ssh-agent (default: $"+envSignKey+", else the ssh-agent's first key, else the inventory's identity_file)")
	cmd.Flags().BoolVar(&s.require, "require-signing", false, "refuse to start (exit 2) without a key to sign the record with (also $"+envRequireSigning+"=1)")
}

// load finds the operator's signing key: --sign-key, $DRBOOK_SIGN_KEY, the
// ssh-agent, then the inventory's identity file. Without one it returns a
// nil signer and the notice to show (the run is recorded unsigned), or
// errSigningRequired (a usage error, exit 2) when signing is required. A key
// named explicitly that cannot be used is an error.
func (s *signing) load(ctx context.Context, inv *runbooks.Inventory) (*opsig.Signer, string, error) {
	key := s.key
	if key == "" {
		key = os.Getenv(envSignKey)
	}
	require := s.require || truthy(os.Getenv(envRequireSigning))
	if key != "" {
		sg, err := opsig.LoadSigner(ctx, expandPath(key, ""))
		if err != nil {
			return nil, "", usageError{fmt.Errorf("signing key %s: %w", key, err)}
		}
		return sg, "", nil
	}
	sg, agentErr := opsig.LoadSigner(ctx, "")
	if agentErr == nil {
		return sg, "", nil
	}
	why := agentErr.Error()
	if inv != nil && inv.SSH.IdentityFile != "" {
		p := expandPath(inv.SSH.IdentityFile, inv.File)
		sg, err := opsig.LoadSigner(ctx, p)
		if err == nil {
			return sg, "", nil
		}
		why += "; " + err.Error()
	}
	if require {
		return nil, "", usageError{fmt.Errorf("%w: %s", errSigningRequired, why)}
	}
	return nil, "no SSH key to sign the record with (" + why + "): this run is recorded UNSIGNED; see docs/signing.md", nil
}

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// prepareSigning loads the signer for a run segment into a: the engine
// configuration (engineConfig) then signs with it. Without a key, headless
// commands say so on stderr; the TUI shows the notice.
func (a *app) prepareSigning(ctx context.Context, s *signing, inv *runbooks.Inventory, stderr io.Writer) error {
	if s.key == "" && a.settings != nil {
		s.key = a.settings.SignKey.Value // $DRBOOK_SIGN_KEY or the config's sign_key
	}
	sg, notice, err := s.load(ctx, inv)
	if err != nil {
		return err
	}
	a.signer, a.unsignedNotice = sg, notice
	if notice != "" && stderr != nil {
		fmt.Fprintf(stderr, "drbook: %s\n", notice)
	}
	return nil
}

// closeSigner releases the signer's agent connection.
func (a *app) closeSigner() {
	if a.signer != nil {
		_ = a.signer.Close()
		a.signer = nil
	}
}

// loadAllowedSigners reads --allowed-signers (or $DRBOOK_ALLOWED_SIGNERS, or
// the operator config's allowed_signers);
// nil when neither is set. A file that cannot be read or parsed is a usage
// error naming file:line.
func (a *app) loadAllowedSigners(path string) (*opsig.AllowedSigners, string, error) {
	if path == "" && a.settings != nil {
		path = a.settings.AllowedSigners.Value // $DRBOOK_ALLOWED_SIGNERS or the config's allowed_signers
	}
	if path == "" {
		path = os.Getenv(envAllowedSigners)
	}
	if path == "" {
		return nil, "", nil
	}
	f, err := os.Open(path) // #nosec G304 -- the auditor names the file
	if err != nil {
		return nil, path, usageError{fmt.Errorf("allowed signers: %w", err)}
	}
	defer f.Close()
	as, err := opsig.ParseAllowedSigners(f, path)
	if err != nil {
		return nil, path, usageError{err}
	}
	return as, path, nil
}

// signatureLines describes a signature report for people.
func signatureLines(rep evidence.Report) []string {
	var out []string
	switch rep.Status {
	case evidence.StatusUnsigned:
		out = append(out, "Signatures: none — "+rep.Reason)
	case evidence.StatusFailed:
		out = append(out, "Signatures: FAILED — "+rep.Reason)
	case evidence.StatusPartial:
		out = append(out, "Signatures: PARTIAL (valid, but they do not cover the record to its end) — "+rep.Reason)
	default:
		checked := "signers checked against the allowed-signers file"
		if !rep.SignersChecked {
			checked = "signers NOT checked (no --allowed-signers)"
		}
		out = append(out, fmt.Sprintf("Signatures: OK — %d signature(s) cover events 1 to %d; %s", len(rep.Signatures), rep.CoveredSeq, checked))
	}
	for _, s := range rep.Signatures {
		who := "(no actor)"
		if s.Actor != nil {
			who = s.Actor.String()
		}
		line := fmt.Sprintf("  seq %d %s", s.Seq, s.Reason)
		if s.StepID != "" {
			line += " " + s.StepID
		}
		line += fmt.Sprintf(": signed by %s with %s", who, s.Key)
		if len(s.Principals) > 0 {
			line += " (allowed as " + strings.Join(s.Principals, ", ") + ")"
		}
		out = append(out, line)
	}
	for i := range out {
		out[i] = termsafe.Cell(out[i])
	}
	return out
}

func newExportCmd(a *app) *cobra.Command {
	var bundle string
	cmd := &cobra.Command{
		Use:   "export RUN_ID --bundle DIR",
		Short: "Write a run's evidence bundle: events, signatures, files, MANIFEST, VERIFY.md",
		Long: `Write the evidence bundle of a recorded run into DIR (new or empty):

  events.jsonl        the events, one per line, each exactly as its hash covers it
  signatures/N-WHY.sig  each SSH signature of the record (SSHSIG), and N-WHY.msg
                      the message it signs (run id, sequence number, head hash)
  files/              the runbook and inventory as they ran (from the record)
  MANIFEST            SHA-256 of every other file (sha256sum -c MANIFEST)
  VERIFY.md           the exact commands to check it all by hand

An auditor checks the bundle without drbook (sha256sum, ssh-keygen -Y verify
and a shell loop that re-derives the chain, all in VERIFY.md), or with
'drbook verify DIR --allowed-signers FILE'. A record whose chain does not
verify is not exported (exit 5). See docs/signing.md.`,
		Example: "  drbook export r20261129-031502-7c1a --bundle evidence/\n  drbook verify evidence/ --allowed-signers allowed_signers",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if bundle == "" {
				return usageError{errors.New("--bundle DIR is required")}
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
			if _, err := db.Verify(ctx, run.ID); err != nil {
				return fmt.Errorf("export of %s refused: %w", run.ID, err)
			}
			events, err := db.Events(ctx, run.ID)
			if err != nil {
				return err
			}
			names, err := evidence.WriteBundle(bundle, run.ID, events)
			if err != nil {
				return err
			}
			rep, _ := evidence.Check(run.ID, events, nil)
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %d files to %s (run %s, %d events)\n", len(names), termsafe.Cell(bundle), run.ID, len(events))
			for _, l := range signatureLines(rep) {
				fmt.Fprintln(w, l)
			}
			fmt.Fprintf(w, "check it: drbook verify %s --allowed-signers FILE (or by hand: %s/VERIFY.md)\n", termsafe.Cell(bundle), termsafe.Cell(bundle))
			return nil
		},
	}
	cmd.Flags().StringVar(&bundle, "bundle", "", "directory to write the evidence bundle into (new or empty)")
	return cmd
}

func newVerifyCmd(a *app) *cobra.Command {
	var allowedPath string
	cmd := &cobra.Command{
		Use:   "verify BUNDLE_DIR",
		Short: "Verify an evidence bundle: files, chain, signatures, signers",
		Long: `Verify an evidence bundle written by 'drbook export RUN --bundle DIR':
every file against MANIFEST (and no file unlisted), the hash chain
re-derived from events.jsonl, each signatures/*.sig and *.msg against the
record.signed event that holds it, the runbook and inventory against the
events, every signature (SSHSIG, namespace ` + opsig.Namespace + `) against
the event it signs, and that the last signature signs the end of the run.

With --allowed-signers FILE (the format of ssh-keygen and git; or
$` + envAllowedSigners + `) every signer must be allowed for the namespace, and an
unsigned run fails. Any failure exits 5, naming the file. Needs no database.`,
		Example: "  drbook verify evidence/ --allowed-signers ~/.config/drbook/allowed_signers\n  drbook verify evidence/ -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			allowed, _, err := a.loadAllowedSigners(allowedPath)
			if err != nil {
				return err
			}
			rep, events, verr := evidence.VerifyBundle(args[0], allowed)
			w := cmd.OutOrStdout()
			if a.output == "json" {
				doc := jsonapi.Verify{Header: jsonapi.NewHeader(), Bundle: args[0], OK: verr == nil, Events: len(events), Signatures: rep}
				if verr != nil {
					doc.Error = verr.Error()
				}
				if len(events) > 0 {
					doc.RunID = events[0].RunID
				}
				if err := writeJSON(w, doc); err != nil {
					return err
				}
				if verr != nil {
					return fmt.Errorf("%w: %w", errSilent, verr)
				}
				return nil
			}
			if verr != nil {
				return verr
			}
			fmt.Fprintf(w, "bundle %s: run %s, %d events: chain re-derived\n", termsafe.Cell(args[0]), termsafe.Cell(events[0].RunID), len(events))
			for _, l := range signatureLines(rep) {
				fmt.Fprintln(w, l)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&allowedPath, "allowed-signers", "", "allowed-signers file: every signer must be in it, and the run signed (default $"+envAllowedSigners+")")
	return cmd
}

// signRecordHead signs head (the last event appended) with signer and
// appends the record.signed event; nothing without a signer.
func signRecordHead(ctx context.Context, db *state.DB, signer *opsig.Signer, head state.Event, reason string, actor state.Actor) error {
	if signer == nil {
		return nil
	}
	sig, err := opsig.Sign(signer, opsig.Namespace, state.SignedMessage(head.RunID, head.Seq, head.Hash))
	if err != nil {
		return fmt.Errorf("could not sign the record at seq %d: %w", head.Seq, err)
	}
	ev, err := state.NewEvent(head.RunID, state.EvRecordSigned, state.RecordSigned{
		Seq: head.Seq, Hash: head.Hash, Reason: reason, Key: signer.Fingerprint(),
		PublicKey: opsig.MarshalPublicKey(signer.PublicKey()), Signature: string(sig), Actor: &actor,
	})
	if err != nil {
		return err
	}
	_, err = db.Append(ctx, ev)
	return err
}
