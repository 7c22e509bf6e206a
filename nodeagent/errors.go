package nodeagent

import (
	"errors"
)

// Safety-rule sentinel errors. Each message names the rule it enforces; the
// CLI maps every one of them to exit code 3 (refused by a safety rule).
var (
	// ErrResetMember refuses `cluster reset --delete-data` on a node that is
	// still a member of a cluster.
	ErrResetMember = errors.New("refused by rule reset-non-member: reset --delete-data is refused on a node that is still a member of a cluster; remove it first")
	// ErrHasClusterState refuses bootstrap (or join) on a node that already
	// holds cluster state of another identity.
	ErrHasClusterState = errors.New("refused by rule bootstrap-clean-node: bootstrap and join need a node with no cluster state")
	// ErrRestoreTarget refuses a restore onto anything but a freshly
	// bootstrapped single-node cluster with no keys.
	ErrRestoreTarget = errors.New("refused by rule restore-fresh-cluster: restore only onto a freshly bootstrapped single-node cluster with no keys")
	// ErrMembershipChange refuses a removal while another membership change is
	// in progress.
	ErrMembershipChange = errors.New("refused by rule remove-one-at-a-time: another membership change is in progress")
	// ErrQuorumLoss refuses a removal that would leave the cluster without a
	// healthy quorum, unless forced.
	ErrQuorumLoss = errors.New("refused by rule remove-keeps-quorum: removal would lose quorum (use --force to override)")
	// ErrTokenExpired refuses a join with an expired token.
	ErrTokenExpired = errors.New("refused by rule join-token-valid: join token expired")
	// ErrTokenUsed refuses a join with a token that was already used.
	ErrTokenUsed = errors.New("refused by rule join-token-single-use: join token already used")
	// ErrTokenInvalid refuses a join with an unknown, malformed or wrong token,
	// or a token whose CA fingerprint does not match the peer.
	ErrTokenInvalid = errors.New("refused by rule join-token-valid: join token invalid")
	// ErrBackupRejected refuses a restore from a backup that fails
	// verification (wrong passphrase, damaged or truncated file); the node's
	// state is unchanged.
	ErrBackupRejected = errors.New("refused by rule restore-verified-backup: backup rejected before any state change")
	// ErrQuorumPresent refuses force-new while the cluster still has a leader.
	ErrQuorumPresent = errors.New("refused by rule force-new-quorum-lost: force-new only when quorum is lost (a leader is present)")
	// ErrNodeIDInUse refuses a join whose node id is already a member with
	// another address.
	ErrNodeIDInUse = errors.New("refused by rule join-unique-node-id: node id already a member of the cluster; remove it first")
)

// Non-rule errors with their own exit codes.
var (
	// ErrNotFound reports a missing key, backup, node or token (exit 4).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable reports no leader, lost quorum or a timeout (exit 5).
	ErrUnavailable = errors.New("unavailable: no leader, quorum lost or timed out")
	// ErrNoClusterState reports an operation that needs a cluster on a node
	// without one (exit 5).
	ErrNoClusterState = errors.New("unavailable: node has no cluster state (run cluster create or cluster join)")
	// ErrExists reports a key id that already exists (exit 1).
	ErrExists = errors.New("already exists")
	// ErrUsage reports a malformed request (exit 2).
	ErrUsage = errors.New("usage")
	// ErrUnauthenticated reports an HTTPS API call without valid credentials
	// (HTTP 401, exit 1): no API key, a wrong one, or no node certificate
	// on an internal call. Nothing of the request body was read.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrTooLarge reports a request body over the endpoint's limit (HTTP
	// 413, exit 2); the body was not read past the limit.
	ErrTooLarge = errors.New("request body too large")
)

// Exit codes of the drbook-agent CLI.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitRefused     = 3
	ExitNotFound    = 4
	ExitUnavailable = 5
)

// ruleErrors lists every safety-rule sentinel, in wire order.
func ruleErrors() []error {
	return []error{ErrResetMember, ErrHasClusterState, ErrRestoreTarget, ErrMembershipChange,
		ErrQuorumLoss, ErrTokenExpired, ErrTokenUsed, ErrTokenInvalid, ErrBackupRejected,
		ErrQuorumPresent, ErrNodeIDInUse}
}

// otherErrors lists the non-rule sentinels carried over the wire.
func otherErrors() []error {
	return []error{ErrNotFound, ErrUnavailable, ErrNoClusterState, ErrExists, ErrUsage, ErrUnauthenticated, ErrTooLarge}
}

// sentinelOf returns the sentinel that err wraps, or nil.
func sentinelOf(err error) error {
	for _, s := range append(ruleErrors(), otherErrors()...) {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// sentinelByMessage returns the sentinel whose message is msg, or nil; the
// admin and internal APIs carry sentinels by message.
func sentinelByMessage(msg string) error {
	for _, s := range append(ruleErrors(), otherErrors()...) {
		if s.Error() == msg {
			return s
		}
	}
	return nil
}

// IsRule reports whether err was refused by a safety rule.
func IsRule(err error) bool {
	for _, s := range ruleErrors() {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// ExitCode maps an error to the CLI exit code documented in cmd/drbook-agent.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case IsRule(err):
		return ExitRefused
	case errors.Is(err, ErrUsage), errors.Is(err, ErrTooLarge):
		return ExitUsage
	case errors.Is(err, ErrNotFound):
		return ExitNotFound
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrNoClusterState):
		return ExitUnavailable
	default:
		return ExitError
	}
}
