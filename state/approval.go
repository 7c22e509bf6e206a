package state

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Approval events (the two-person rule, docs/approvals.md). A danger step
// that needs approval records approval.requested and waits; each approval
// a person submits (drbook approve) is recorded by the run's own process as
// approval.granted or approval.refused, with the reason.
const (
	// EvApprovalRequested: the run waits for approval of a step
	// (ApprovalRequested). It is the "waiting for approval" event a
	// notification hooks on.
	EvApprovalRequested EventType = "approval.requested"
	// EvApprovalGranted: an approval that counts (ApprovalGranted).
	EvApprovalGranted EventType = "approval.granted"
	// EvApprovalRefused: an approval that does not count (ApprovalRefused).
	EvApprovalRefused EventType = "approval.refused"
)

// WaitApproval is the operator.wait kind of a wait for approvals.
const WaitApproval = "approval"

// ApprovalCommand is what one target of a step runs, as shown to the
// operator (secrets masked).
type ApprovalCommand struct {
	Target  string `json:"target"`
	Command string `json:"command"`
	// Params are all the step's parameters rendered for the target (its
	// with: values: environment, files, …) as JSON with sorted keys,
	// secrets masked: what the command runs with.
	Params string `json:"params,omitempty"`
}

// Person is who acts on an approval: the Actor (OS account, uid, host and,
// when signing, key fingerprint) and the principal an allowed-signers file
// gives that key (empty when none).
type Person struct {
	Actor
	Principal string `json:"principal,omitempty"`
}

// String is "principal (user@host, uid N, key SHA256:…)", or the actor's
// Describe without a principal.
func (p Person) String() string {
	if p.Principal == "" {
		return p.Actor.Describe()
	}
	return p.Principal + " (" + strings.TrimSuffix(strings.Replace(p.Actor.Describe(), " (", ", ", 1), ")") + ")"
}

// ApprovalRequested is the payload of EvApprovalRequested. Its event's seq
// names the request: an approval signs it, with the chain head before it,
// and counts for that request only.
type ApprovalRequested struct {
	Title string `json:"title"`
	// Commands are the step's exact rendered commands per target (secrets
	// masked), in target order; CommandsSHA256 is CommandsDigest of them.
	Commands       []ApprovalCommand `json:"commands"`
	CommandsSHA256 string            `json:"commands_sha256"`
	// Approvals is how many other persons must approve; Approvers, when
	// set, are the principals (allowed-signers) who may.
	Approvals int      `json:"approvals"`
	Approvers []string `json:"approvers,omitempty"`
	// HeadSeq and HeadHash are the chain head when the request was made
	// (the event before it).
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	// Operator is who runs the step (their signing key's fingerprint and
	// principals): they cannot approve it.
	Operator           Person   `json:"operator"`
	OperatorPrincipals []string `json:"operator_principals,omitempty"`
	// TimeoutMS is how long a headless run waits (0: until stopped).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// Targets lists the request's targets in order.
func (p ApprovalRequested) Targets() []string {
	out := make([]string, len(p.Commands))
	for i, c := range p.Commands {
		out[i] = c.Target
	}
	return out
}

// Who says who must approve: "another person in the allowed-signers
// file", "one of alice@x, bob@x", "2 of alice@x, bob@x, carol@x", …
func (p ApprovalRequested) Who() string {
	names := strings.Join(p.Approvers, ", ")
	switch n := p.Approvals; {
	case len(p.Approvers) == 0 && n <= 1:
		return "another person in the allowed-signers file"
	case len(p.Approvers) == 0:
		return fmt.Sprintf("%d other persons in the allowed-signers file", n)
	case len(p.Approvers) == 1:
		return names
	case n <= 1:
		return "one of " + names
	case n >= len(p.Approvers):
		return "all of " + names
	default:
		return fmt.Sprintf("%d of %s", n, names)
	}
}

// ApprovalGranted is the payload of EvApprovalGranted.
type ApprovalGranted struct {
	// RequestSeq is the approval.requested event approved.
	RequestSeq int64 `json:"request_seq"`
	// Approver: OS user and host drbook approve ran as and on (as it
	// said), key fingerprint and principal (verified).
	Approver Person `json:"approver"`
	// PublicKey is the approver's key ("ssh-ed25519 AAAA…").
	PublicKey string `json:"public_key"`
	// Message is the signed text (ApprovalMessage) and Signature the
	// armored SSHSIG over it in namespace Namespace: checkable with
	// ssh-keygen -Y verify.
	Message   string `json:"message"`
	Signature string `json:"signature"`
	Namespace string `json:"namespace"`
	// SubmittedAt is when drbook approve submitted it.
	SubmittedAt time.Time `json:"submitted_at"`
	// Count and Needed: approvals of this request so far, and needed.
	Count  int `json:"count"`
	Needed int `json:"needed"`
}

// Reasons an approval is refused (ApprovalRefused.Code).
const (
	RefusedSelf       = "self-approval"
	RefusedChanged    = "commands-changed"
	RefusedOther      = "other-request"
	RefusedSignature  = "bad-signature"
	RefusedNotAllowed = "not-allowed"
	RefusedNotNamed   = "not-an-approver"
	RefusedDuplicate  = "already-approved"
)

// ApprovalRefused is the payload of EvApprovalRefused: a submitted
// approval that does not count, and why.
type ApprovalRefused struct {
	RequestSeq int64 `json:"request_seq"`
	// SignedRequestSeq is the request the signature names (when it could
	// be read).
	SignedRequestSeq int64     `json:"signed_request_seq,omitempty"`
	Approver         Person    `json:"approver"`
	Code             string    `json:"code"`
	Reason           string    `json:"reason"`
	Message          string    `json:"message,omitempty"`
	Signature        string    `json:"signature,omitempty"`
	SubmittedAt      time.Time `json:"submitted_at"`
}

// CommandsDigest is the hex SHA-256 an approval signs for a step's commands
// and targets: over, for each command in order, the lines
//
//	target <name>
//	command <length in bytes>
//	<the command, exactly>
//	params <length in bytes>
//	<the parameters' JSON, exactly>
//
// (each followed by a newline), so that no two lists give the same text.
func CommandsDigest(cmds []ApprovalCommand) string {
	h := sha256.New()
	for _, c := range cmds {
		fmt.Fprintf(h, "target %s\ncommand %d\n%s\nparams %d\n%s\n", c.Target, len(c.Command), c.Command, len(c.Params), c.Params)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// approvalMagic is the first line of an approval message.
const approvalMagic = "drbook approval v1"

// ApprovalMessage is the text an approver signs: it binds the run, the step,
// the request (its seq), the chain head the request was made at, and the
// digest of the exact commands and targets.
func ApprovalMessage(runID, stepID string, requestSeq int64, p ApprovalRequested) []byte {
	return fmt.Appendf(nil, "%s\nrun %s\nstep %s\nrequest %d\nhead %d %s\ncommands-sha256 %s\n",
		approvalMagic, runID, stepID, requestSeq, p.HeadSeq, p.HeadHash, p.CommandsSHA256)
}

// SignedApproval is what an approval message says.
type SignedApproval struct {
	RunID, StepID  string
	RequestSeq     int64
	HeadSeq        int64
	HeadHash       string
	CommandsSHA256 string
}

// ParseApprovalMessage reads an approval message (see ApprovalMessage).
func ParseApprovalMessage(msg []byte) (SignedApproval, error) {
	var s SignedApproval
	lines := strings.Split(strings.TrimSuffix(string(msg), "\n"), "\n")
	if len(lines) != 6 || lines[0] != approvalMagic {
		return s, errors.New("not a drbook approval message")
	}
	get := func(i int, key string) (string, error) {
		v, ok := strings.CutPrefix(lines[i], key+" ")
		if !ok {
			return "", fmt.Errorf("line %d: want %q", i+1, key)
		}
		return v, nil
	}
	var err error
	if s.RunID, err = get(1, "run"); err != nil {
		return s, err
	}
	if s.StepID, err = get(2, "step"); err != nil {
		return s, err
	}
	v, err := get(3, "request")
	if err != nil {
		return s, err
	}
	if s.RequestSeq, err = strconv.ParseInt(v, 10, 64); err != nil {
		return s, fmt.Errorf("request: %w", err)
	}
	v, err = get(4, "head")
	if err != nil {
		return s, err
	}
	seq, hash, _ := strings.Cut(v, " ")
	if s.HeadSeq, err = strconv.ParseInt(seq, 10, 64); err != nil {
		return s, fmt.Errorf("head: %w", err)
	}
	s.HeadHash = hash
	if s.CommandsSHA256, err = get(5, "commands-sha256"); err != nil {
		return s, err
	}
	return s, nil
}

// ApprovalSubmission is an approval drbook approve left for the run's
// process, which alone writes the run's chain: it verifies the submission
// and records it as approval.granted or approval.refused.
type ApprovalSubmission struct {
	ID          int64
	RunID       string
	StepID      string
	Message     []byte
	Signature   []byte
	User, Host  string
	UID         int
	SubmittedAt time.Time
	// DoneSeq is the seq of the event that recorded it (0: not yet).
	DoneSeq int64
}

// Bounds of a submission: its message and signature, its user and host
// names, and how many one read returns.
const (
	maxSubmission         = 64 << 10
	maxSubmissionName     = 1024
	maxPendingSubmissions = 64
)

// SubmitApproval stores an approval for the run's process to pick up and
// returns its id. It does not touch the run's chain.
func (db *DB) SubmitApproval(ctx context.Context, s ApprovalSubmission) (int64, error) {
	if len(s.Message) > maxSubmission || len(s.Signature) > maxSubmission || len(s.User) > maxSubmissionName || len(s.Host) > maxSubmissionName {
		return 0, fmt.Errorf("submit approval: %w: too large", ErrInvalidEvent)
	}
	for _, f := range []string{s.RunID, s.StepID, s.User, s.Host} {
		if !utf8.ValidString(f) {
			return 0, fmt.Errorf("submit approval: %w: fields must be valid UTF-8", ErrInvalidEvent)
		}
	}
	if err := db.mustExist(ctx, s.RunID); err != nil {
		return 0, fmt.Errorf("submit approval: %w", err)
	}
	if s.SubmittedAt.IsZero() {
		s.SubmittedAt = time.Now()
	}
	var id int64
	err := db.tx(ctx, func(t *sql.Tx) error {
		res, err := t.ExecContext(ctx, `INSERT INTO approval_submissions (run_id, step_id, message, signature, user, uid, host, submitted_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, s.RunID, s.StepID, s.Message, s.Signature, s.User, s.UID, s.Host, formatTime(s.SubmittedAt.UTC()))
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("submit approval for run %s: %w", s.RunID, err)
	}
	return id, nil
}

// ApprovalSubmissions returns the submissions for a run's step, oldest
// first; pending only: those not yet recorded.
func (db *DB) ApprovalSubmissions(ctx context.Context, runID, stepID string, pending bool) ([]ApprovalSubmission, error) {
	// Rows written past SubmitApproval's bounds (by anyone who can write
	// the database) are never read: the poll reads at most
	// maxPendingSubmissions rows of bounded size.
	q := `SELECT id, run_id, step_id, message, signature, user, uid, host, submitted_at, done_seq
		FROM approval_submissions WHERE run_id = ? AND step_id = ?
		AND length(message) <= ? AND length(signature) <= ? AND length(user) <= ? AND length(host) <= ?`
	if pending {
		q += ` AND done_seq = 0`
	}
	rows, err := db.sql.QueryContext(ctx, q+` ORDER BY id LIMIT ?`, runID, stepID,
		maxSubmission, maxSubmission, maxSubmissionName, maxSubmissionName, maxPendingSubmissions)
	if err != nil {
		return nil, fmt.Errorf("approval submissions of run %s: %w", runID, mapErr(err))
	}
	defer rows.Close()
	var out []ApprovalSubmission
	for rows.Next() {
		var s ApprovalSubmission
		var ts string
		if err := rows.Scan(&s.ID, &s.RunID, &s.StepID, &s.Message, &s.Signature, &s.User, &s.UID, &s.Host, &ts, &s.DoneSeq); err != nil {
			return nil, fmt.Errorf("approval submissions of run %s: %w", runID, mapErr(err))
		}
		if s.SubmittedAt, err = parseTime(ts); err != nil {
			return nil, fmt.Errorf("approval submissions of run %s: %w", runID, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("approval submissions of run %s: %w", runID, mapErr(err))
	}
	return out, nil
}

// ApprovalSubmission returns one submission by id.
func (db *DB) ApprovalSubmission(ctx context.Context, id int64) (ApprovalSubmission, error) {
	var s ApprovalSubmission
	var ts string
	err := db.sql.QueryRowContext(ctx, `SELECT id, run_id, step_id, message, signature, user, uid, host, submitted_at, done_seq
		FROM approval_submissions WHERE id = ?`, id).Scan(&s.ID, &s.RunID, &s.StepID, &s.Message, &s.Signature, &s.User, &s.UID, &s.Host, &ts, &s.DoneSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("approval submission %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("approval submission %d: %w", id, mapErr(err))
	}
	s.SubmittedAt, err = parseTime(ts)
	return s, err
}

// MarkApprovalDone records that submission id was recorded as event seq.
func (db *DB) MarkApprovalDone(ctx context.Context, id, seq int64) error {
	err := db.tx(ctx, func(t *sql.Tx) error {
		_, err := t.ExecContext(ctx, `UPDATE approval_submissions SET done_seq = ? WHERE id = ?`, seq, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark approval submission %d: %w", id, err)
	}
	return nil
}
