package state

import (
	"fmt"
	"strconv"
	"strings"
)

// Segment-end and signing reasons recorded in RecordSigned.Reason.
const (
	SignDanger      = "danger"      // a danger step was confirmed
	SignFinished    = "finished"    // the run ended: succeeded or failed
	SignInterrupted = "interrupted" // the segment ended interrupted
	SignAborted     = "aborted"     // the run was aborted
	SignHandover    = "handover"    // another person took the run over
)

// SignedMessageHeader is the first line of every message drbook signs.
const SignedMessageHeader = "drbook run record"

// SignedMessage is the exact text drbook signs for the head of a run's
// chain: four lines, each ending in "\n",
//
//	drbook run record
//	run: RUN_ID
//	seq: N
//	hash: HEX
//
// where N is the sequence number of the event signed and HEX its chain
// hash (lowercase hex SHA-256). Signing it commits to every event from 1
// to N, since each event's hash covers its predecessor's.
func SignedMessage(runID string, seq int64, hash string) []byte {
	return []byte(SignedMessageHeader + "\nrun: " + runID + "\nseq: " + strconv.FormatInt(seq, 10) + "\nhash: " + hash + "\n")
}

// ParseSignedMessage reads a SignedMessage back; it fails unless msg is
// exactly the form SignedMessage writes.
func ParseSignedMessage(msg []byte) (runID string, seq int64, hash string, err error) {
	lines := strings.Split(string(msg), "\n")
	if len(lines) != 5 || lines[4] != "" || lines[0] != SignedMessageHeader {
		return "", 0, "", fmt.Errorf("not a drbook run-record message")
	}
	runID, ok1 := strings.CutPrefix(lines[1], "run: ")
	seqText, ok2 := strings.CutPrefix(lines[2], "seq: ")
	hash, ok3 := strings.CutPrefix(lines[3], "hash: ")
	if !ok1 || !ok2 || !ok3 {
		return "", 0, "", fmt.Errorf("not a drbook run-record message")
	}
	seq, err = strconv.ParseInt(seqText, 10, 64)
	if err != nil || seq < 1 {
		return "", 0, "", fmt.Errorf("seq %q is not a positive integer", seqText)
	}
	if string(SignedMessage(runID, seq, hash)) != string(msg) {
		return "", 0, "", fmt.Errorf("not in canonical form")
	}
	return runID, seq, hash, nil
}

// RecordSigned is the payload of EvRecordSigned: a signature of the chain
// head, appended right after the event it signs. The armored SSHSIG
// (namespace opsig.Namespace) signs SignedMessage(run, Seq, Hash).
type RecordSigned struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	// Reason is why the head was signed: SignDanger at a confirmed danger
	// step, or the segment end (SignFinished, SignInterrupted,
	// SignAborted, SignHandover).
	Reason string `json:"reason"`
	// StepID names the danger step (SignDanger).
	StepID string `json:"step_id,omitempty"`
	// Key is the signing key's SHA256 fingerprint, PublicKey the key in
	// authorized_keys form ("ssh-ed25519 AAAA…").
	Key       string `json:"key"`
	PublicKey string `json:"public_key"`
	// Signature is the armored SSHSIG ("-----BEGIN SSH SIGNATURE-----…").
	Signature string `json:"signature"`
	Actor     *Actor `json:"actor,omitempty"`
}

// EndsSegment reports whether reason marks the end of a run segment (every
// reason but SignDanger).
func EndsSegment(reason string) bool {
	switch reason {
	case SignFinished, SignInterrupted, SignAborted, SignHandover:
		return true
	}
	return false
}

// RunHandover is the payload of EvRunHandover: a resume by another person
// than the one who held the run. The lock passes from From to To.
type RunHandover struct {
	From Actor `json:"from"`
	To   Actor `json:"to"`
	// FromSeq is the event that named From (run.created, run.resumed or
	// an earlier run.handover).
	FromSeq int64 `json:"from_seq"`
}

// CanonicalJSON is the canonical form of ev that its chain hash covers
// (see the package doc): one line of JSON without a newline when its Data
// has none.
func CanonicalJSON(ev Event) []byte {
	return canonical(ev.RunID, ev.Seq, hashTime(ev.Time), string(ev.Type), ev.StepID, ev.Target, int64(ev.Attempt), ev.Data)
}

// VerifyEvents checks a run's events (in order, as a bundle or a database
// holds them) against the chain definition: contiguous seqs from 1, prev
// links from the genesis, and each Hash recomputed. Without a recorded head
// to compare with, it cannot see a cut tail: signatures do (package
// evidence).
func VerifyEvents(runID string, events []Event) VerifyReport {
	raws := make([]rawEvent, len(events))
	for i, ev := range events {
		raws[i] = rawEvent{RunID: ev.RunID, Seq: strconv.FormatInt(ev.Seq, 10), Time: hashTime(ev.Time), Type: string(ev.Type),
			StepID: ev.StepID, Target: ev.Target, Attempt: strconv.Itoa(ev.Attempt), Data: ev.Data, PrevHash: ev.PrevHash, Hash: ev.Hash}
	}
	var headSeq int64
	var headHash string
	if n := len(events); n > 0 {
		headSeq, headHash = events[n-1].Seq, events[n-1].Hash
	}
	return verifyChain(runID, raws, headSeq, headHash)
}
