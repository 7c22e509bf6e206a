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
	// ErrLastVoter refuses the removal of a cluster's only voter, even with
	// --force: raft cannot run without one (reset the node instead, or
	// add another voter first).
	ErrLastVoter = errors.New("refused by rule remove-keeps-a-voter: a cluster cannot remove its last voter, even with --force")
)

// Non-rule errors with their own exit codes.
var (
	// ErrNotFound reports a missing key, backup, node or token (exit 4).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable reports that the cluster could not do the request now
	// (exit 5): no leader (quorum lost or an election running), a peer
	// that could not be reached, raft refusing the entry. The wrapped
	// message says which.
	ErrUnavailable = errors.New("unavailable")
	// ErrAgentNotRunning reports that no agent answers on the admin socket
	// (exit 6): the socket file is missing or refuses connections.
	ErrAgentNotRunning = errors.New("agent not running")
	// ErrTimeout reports that the command's --timeout passed before the
	// agent answered (exit 7).
	ErrTimeout = errors.New("timed out")
	// ErrCAMismatch reports a peer whose certificate does not chain to the
	// CA fingerprint pinned in the join token (exit 8): the token belongs to
	// another cluster, or --peer names the wrong host.
	ErrCAMismatch = errors.New("CA fingerprint does not match the token")
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
	// ExitNotRunning: no agent answers on the admin socket.
	ExitNotRunning = 6
	// ExitTimeout: the command's --timeout passed.
	ExitTimeout = 7
	// ExitCAMismatch: the peer is not the cluster the join token pins.
	ExitCAMismatch = 8
)

// legacyUnavailable is the message ErrUnavailable had before the agent
// told timeouts and stopped agents apart; older agents still send it.
const legacyUnavailable = "unavailable: no leader, quorum lost or timed out"

// ruleErrors lists every safety-rule sentinel, in wire order.
func ruleErrors() []error {
	return []error{ErrResetMember, ErrHasClusterState, ErrRestoreTarget, ErrMembershipChange,
		ErrQuorumLoss, ErrTokenExpired, ErrTokenUsed, ErrTokenInvalid, ErrBackupRejected,
		ErrQuorumPresent, ErrNodeIDInUse, ErrLastVoter}
}

// otherErrors lists the non-rule sentinels carried over the wire.
func otherErrors() []error {
	return []error{ErrNotFound, ErrUnavailable, ErrNoClusterState, ErrExists, ErrUsage, ErrUnauthenticated, ErrTooLarge,
		ErrAgentNotRunning, ErrTimeout, ErrCAMismatch}
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
	if msg == legacyUnavailable {
		return ErrUnavailable
	}
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
	case errors.Is(err, ErrCAMismatch):
		return ExitCAMismatch
	case errors.Is(err, ErrAgentNotRunning):
		return ExitNotRunning
	case errors.Is(err, ErrTimeout):
		return ExitTimeout
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
