// Package evidence proves who recorded a run: it checks the SSH signatures
// a run's record holds (record.signed events, see state.RecordSigned)
// against the chain and, when given, an allowed-signers file; and it writes
// and verifies evidence bundles, directories an auditor checks with
// sha256sum and ssh-keygen alone (see docs/signing.md).
//
// What a check proves: every signature is a valid SSHSIG, in namespace
// opsig.Namespace, of state.SignedMessage for an event whose chain hash is
// the one the events re-derive, by a key the allowed-signers file allows
// (when given); and the last event is a signature of the end of the last
// run segment, so nothing was cut from the tail or added after it. A
// rewrite of any signed event changes its hash and every later one, so it
// breaks the signatures that cover it.
//
// The package depends on state and internal/opsig only.
package evidence

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/state"
)

// ErrSignatures is wrapped by every failed check: a signature is bad,
// missing or not allowed, or the signatures do not cover the record.
var ErrSignatures = errors.New("run record signatures do not verify")

// Statuses of a Report.
const (
	// StatusSigned: signatures cover the record up to its last segment end.
	StatusSigned = "signed"
	// StatusUnsigned: the record holds no signature (a chain alone proves
	// nothing against someone who can write the database).
	StatusUnsigned = "unsigned"
	// StatusPartial: every signature is valid, but they do not cover the
	// record to its end (a runner killed before its segment ended, a run
	// still going, a segment by someone without a key — or a cut tail).
	// Without an allowed-signers file this passes (with the reason); with
	// one it fails.
	StatusPartial = "partial"
	// StatusFailed: a check failed (Reason says which).
	StatusFailed = "failed"
)

// Signature is one record.signed event, checked.
type Signature struct {
	// EventSeq is the seq of the record.signed event; Seq and Hash the
	// event it signs.
	EventSeq int64 `json:"event_seq"`
	// Time is when the signature was recorded.
	Time time.Time `json:"time"`
	// Seq is the signed event's sequence number.
	Seq int64 `json:"seq"`
	// Hash is the signed event's chain hash (hex SHA-256).
	Hash string `json:"hash"`
	// Reason: "danger" (a confirmed danger step, StepID), or the segment
	// end: "finished", "interrupted", "aborted", "handover".
	Reason string `json:"reason"`
	StepID string `json:"step_id,omitempty"`
	// Key is the signing key's SHA256 fingerprint, PublicKey the key
	// ("ssh-ed25519 AAAA…").
	Key       string `json:"key"`
	PublicKey string `json:"public_key"`
	// Actor is who signed, as recorded (user, uid, host, key).
	Actor *state.Actor `json:"actor,omitempty"`
	// Principals are the names the allowed-signers file gives the key
	// (empty when no file was given).
	Principals []string `json:"principals,omitempty"`
}

// Report is the result of checking a run's signatures.
type Report struct {
	// Status is "signed" (signatures cover the record to its last
	// segment end), "partial" (valid signatures that do not cover its
	// end), "unsigned" (no signature) or "failed".
	Status string `json:"status"`
	// OK: the check passed (an unsigned run passes only without an
	// allowed-signers file).
	OK bool `json:"ok"`
	// Reason says why the check failed, or what an unsigned or unchecked
	// result does not prove.
	Reason string `json:"reason,omitempty"`
	// BadSeq is the event the failure is about (0: the record as a whole).
	BadSeq int64 `json:"bad_seq,omitempty"`
	// SignersChecked: an allowed-signers file was given and every signer
	// is in it.
	SignersChecked bool        `json:"signers_checked"`
	Signatures     []Signature `json:"signatures"`
	// CoveredSeq is the last event a signature covers.
	CoveredSeq int64 `json:"covered_seq,omitempty"`
}

// Check checks the signatures of run runID's events (a chain already
// verified: hashes as re-derived). allowed may be nil: signatures are then
// checked for validity but their signers are not judged, a record they do
// not cover to its end is reported "partial" and an unsigned run
// "unsigned", both with OK true. With allowed, an
// unsigned run fails: an auditor who asks for signatures must not get an OK
// for a record anyone could have written. The error wraps ErrSignatures.
func Check(runID string, events []state.Event, allowed *opsig.AllowedSigners) (Report, error) {
	rep := Report{Signatures: []Signature{}}
	fail := func(seq int64, format string, args ...any) (Report, error) {
		rep.Status, rep.OK, rep.BadSeq = StatusFailed, false, seq
		rep.Reason = fmt.Sprintf(format, args...)
		if seq > 0 {
			rep.Reason = fmt.Sprintf("event %d: %s", seq, rep.Reason)
		}
		return rep, fmt.Errorf("%w: %s", ErrSignatures, rep.Reason)
	}
	if len(events) == 0 {
		return fail(0, "the record holds no events")
	}
	signingKey := ""
	signingSeq := int64(0)
	for i, ev := range events {
		if int64(i+1) != ev.Seq {
			return fail(int64(i+1), "missing (events are not contiguous)")
		}
		if key, ok := declaredKey(ev); ok && key != "" && signingKey == "" {
			signingKey, signingSeq = key, ev.Seq
		}
		if ev.Type != state.EvRecordSigned {
			continue
		}
		var p state.RecordSigned
		if err := ev.Decode(&p); err != nil {
			return fail(ev.Seq, "record.signed payload does not decode: %v", err)
		}
		if p.Seq < 1 || p.Seq != ev.Seq-1 {
			return fail(ev.Seq, "signs event %d, not the event right before it (events were removed or inserted)", p.Seq)
		}
		signed := events[p.Seq-1]
		if signed.Hash != p.Hash {
			return fail(ev.Seq, "signs event %d with hash %.16s…, but the chain gives %.16s…: the record was rewritten after it was signed", p.Seq, p.Hash, signed.Hash)
		}
		msg := state.SignedMessage(runID, p.Seq, signed.Hash)
		pub, err := opsig.VerifyKey([]byte(p.Signature), opsig.Namespace, msg)
		if err != nil {
			return fail(ev.Seq, "signature of event %d: %v", p.Seq, err)
		}
		if opsig.Fingerprint(pub) != p.Key || opsig.MarshalPublicKey(pub) != p.PublicKey {
			return fail(ev.Seq, "the key it names (%s) is not the key that signed (%s)", p.Key, opsig.Fingerprint(pub))
		}
		sig := Signature{EventSeq: ev.Seq, Time: ev.Time, Seq: p.Seq, Hash: p.Hash, Reason: p.Reason, StepID: p.StepID,
			Key: p.Key, PublicKey: p.PublicKey, Actor: p.Actor}
		if allowed != nil {
			names, _, err := allowed.Verify([]byte(p.Signature), opsig.Namespace, msg, "", ev.Time)
			if err != nil {
				who := ""
				if p.Actor != nil {
					who = " (" + p.Actor.String() + ")"
				}
				return fail(ev.Seq, "signer %s%s is not allowed by the allowed-signers file for namespace %s", p.Key, who, opsig.Namespace)
			}
			sig.Principals = names
		}
		rep.Signatures = append(rep.Signatures, sig)
		rep.CoveredSeq = p.Seq
	}
	last := events[len(events)-1]
	// Coverage: a gap fails an auditor who asks for signatures (allowed
	// given); otherwise it is reported, as a killed runner leaves one.
	gap := func(seq int64, format string, args ...any) (Report, error) {
		if allowed != nil {
			return fail(seq, format, args...)
		}
		rep.Status, rep.OK, rep.BadSeq = StatusPartial, true, seq
		rep.Reason = fmt.Sprintf("event %d: %s", seq, fmt.Sprintf(format, args...))
		return rep, nil
	}
	if len(rep.Signatures) == 0 {
		if signingKey != "" {
			return gap(signingSeq, "says the run is signed with key %s, but the record holds no signature (removed, or the runner was killed before its first)", signingKey)
		}
		if allowed != nil {
			return fail(0, "the run is unsigned: no signature proves who recorded it (an allowed-signers file asks for signatures)")
		}
		rep.Status, rep.OK = StatusUnsigned, true
		rep.Reason = "unsigned: the hash chain alone does not prove who wrote the record (anyone who can write the database can rewrite it)"
		return rep, nil
	}
	final := rep.Signatures[len(rep.Signatures)-1]
	if last.Type != state.EvRecordSigned {
		return gap(last.Seq, "events %d to %d come after the last signature (event %d) and no signature covers them: the tail was cut, a segment ended unsigned (runner killed, no key), or the run is still going",
			final.EventSeq+1, last.Seq, final.EventSeq)
	}
	end := events[final.Seq-1]
	if !state.EndsSegment(final.Reason) || (end.Type != state.EvRunFinished && end.Type != state.EvRunHandover) {
		return gap(last.Seq, "the last signature (%s) signs event %d (%s), not the end of a run segment: the record stops mid-segment (tail cut, or runner killed)",
			final.Reason, final.Seq, end.Type)
	}
	rep.Status, rep.OK = StatusSigned, true
	rep.SignersChecked = allowed != nil
	if allowed == nil {
		rep.Reason = "signatures are valid but their signers were not checked: give --allowed-signers FILE to check them"
	}
	return rep, nil
}

// declaredKey returns the signing key an event declares for its segment
// (run.created and run.resumed carry the actor with its key).
func declaredKey(ev state.Event) (string, bool) {
	switch ev.Type {
	case state.EvRunCreated:
		var p state.RunCreated
		if ev.Decode(&p) == nil && p.Actor != nil {
			return p.Actor.Key, true
		}
	case state.EvRunResumed:
		var p state.RunResumed
		if ev.Decode(&p) == nil && p.Actor != nil {
			return p.Actor.Key, true
		}
	}
	return "", false
}

// ShortSigners names each signer once, as briefly as a screen's header
// allows: the principals the allowed-signers file gives its key (with ✓),
// else user@host, else the key's fingerprint.
func (r Report) ShortSigners() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range r.Signatures {
		var who string
		switch {
		case len(s.Principals) > 0:
			who = strings.Join(s.Principals, ", ") + " ✓"
		case s.Actor != nil:
			who = s.Actor.String()
		default:
			who = s.Key
		}
		if !seen[who] {
			seen[who] = true
			out = append(out, who)
		}
	}
	return out
}

// Signers names each signer once: who (user@host) with the key, and the
// principals the allowed-signers file gives that key, if checked.
func (r Report) Signers() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range r.Signatures {
		who := s.Key
		if s.Actor != nil {
			who = s.Actor.String() + " (" + s.Key + ")"
		}
		if len(s.Principals) > 0 {
			who += " allowed as " + strings.Join(s.Principals, ", ")
		}
		if !seen[who] {
			seen[who] = true
			out = append(out, who)
		}
	}
	return out
}
