// Command drbook-agent is drbook's clustered node agent: a replicated key
// store on hashicorp/raft with the disaster-recovery operations drbook's
// runbooks drive. `drbook-agent serve` runs the daemon; every other verb
// talks to the local daemon over DATA/admin.sock (mode 0600).
//
// Every verb accepts --data DIR (to find the socket) and --output json|text
// (text by default). With --output json, a success prints one JSON value on
// stdout and a failure prints {"error": "...", "sentinel": "...",
// "exit_code": N} on stdout (and the message on stderr). Fields are stable;
// new fields may be added.
//
// # Verbs and their JSON
//
//	verb                                   JSON on success
//	serve --data D --node-id N --api A --raft R   (daemon; logs JSON to stderr, one key once per line)
//	  --metrics-listen ADDR: also /healthz and /metrics over plain HTTP (docs/monitoring.md)
//	  HTTPS API limits: --api-header-timeout 5s, --api-body-timeout 10s,
//	  --api-max-unauthenticated 32 (see package nodeagent: 401/413/408/503)
//	cluster create                          {"changed","message","node_id","cluster_id","ca_fingerprint","ca_cert_file","api_key"?}
//	                                        api_key appears once, when created
//	cluster join --peer API_ADDR            {"changed","message","node_id","cluster_id","suffrage"}
//	  token: --token-file F | env DRBOOK_JOIN_TOKEN | --token T (warns: visible in ps)
//	cluster remove --node ID [--force]      {"changed","message","node_id","voters"}
//	cluster reset --delete-data             {"changed","message","deleted"?,"exiting"}  (agent exits after a reset)
//	cluster force-new                       {"changed","message","keys"}
//	token create [--ttl 24h]                {"token","id","expires"}
//	token list                              [{"id","created","expires","state":"valid|used|expired","used_at"?,"used_by"?}]
//	status                                  {"node_id","cluster_id","state":"leader|follower|candidate|shutdown|none",
//	                                         "member","removed","leader":{"id","address"},
//	                                         "members":[{"id","address","api_address","suffrage":"voter|nonvoter","healthy","leader"}],
//	                                         "voters","healthy","keys","applied_index","commit_index","term",
//	                                         "last_backup":{"id","time","age_seconds","node"}|null,
//	                                         "membership_change":{"op","node_id","started","term"}|null,"raft_address","api_address"}
//	keys create [--id ID] [--name N] [--type T] [--group G]   [{"id","created"}]
//	keys get ID [--material]                {"id","name","type","group","created","sha256","material"?(base64)}
//	keys list                               [{"id","name","type","group","created"}]
//	keys delete ID                          {"id","changed"}
//	keys count                              {"keys"}
//	keys load --count N [--batch B]         {"created","keys","seconds"}
//	keys manifest                           {"count","digest","keys":[{"id","sha256"}]}
//	keys verify --manifest F                {"ok","expected","actual","missing":[],"extra":[],"changed":[],"digest"}
//	backup create [--out F] [--keep 10] [--max-age 168h]   {"id","file","keys","bytes","seconds","consistent","recorded","pruned":[]}
//	  passphrase: --key-file F | env DRBOOK_BACKUP_PASSPHRASE (never a flag value)
//	backup list                             [{"id","file","created","keys","bytes","cluster_id","node_id"}]
//	backup delete ID                        {"id","changed"}
//	restore FILE                            {"changed","message","keys","cluster_id","source_cluster_id","backup_created","seconds"}
//	  passphrase: --key-file F | env DRBOOK_BACKUP_PASSPHRASE
//	version                                 {"version","commit","modified","commit_time","build_date","go_version","platform","source"}
//	                                        (no daemon needed; "" for unknown values)
//
// Read verbs (keys get/list/count/manifest/verify) are linearizable (read
// index through the leader); --stale reads local state without a leader.
//
// # Idempotence
//
// "changed": false with exit 0 for: join by a node already a member, cluster
// create on the node that founded the cluster, reset of a clean node (or of
// a node whose data directory is already gone), remove of a node already
// gone, force-new on a one-node cluster, restore of the backup already
// restored. An interrupted join resumes with the same token once the node
// has received its credentials (otherwise a used token needs a new one).
//
// --peer is the API address (--api) of any member; followers forward to the
// leader. The admin socket also serves /debug/pprof/ for profiling.
//
// # Exit codes
//
//	0  ok
//	1  generic error (also: keys verify found differences)
//	2  usage error
//	3  refused by a safety rule (the message names the rule: reset-non-member,
//	   bootstrap-clean-node, restore-fresh-cluster, remove-one-at-a-time,
//	   remove-keeps-quorum, join-token-valid, join-token-single-use,
//	   restore-verified-backup, force-new-quorum-lost, join-unique-node-id,
//	   remove-keeps-a-voter)
//	4  not found (key, backup, file)
//	5  unavailable: no leader (quorum lost or an election running), no
//	   cluster state, a peer unreachable; the message says which
//	6  agent not running: nothing answers on DATA/admin.sock ("agent not
//	   running (admin socket PATH: connection refused|no such file)")
//	7  timed out: --timeout passed before the agent answered ("timed out
//	   after D"); the agent may still finish the request
//	8  CA fingerprint does not match the token: the join peer is not the
//	   cluster the token was made for
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/drbook/drbook/nodeagent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string) int {
	o := &opts{stdout: os.Stdout, stderr: os.Stderr}
	root := newRoot(o)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return o.exitCode
	}
	if isCobraUsage(err) {
		err = fmt.Errorf("%w: %w", nodeagent.ErrUsage, err)
	}
	if wantsJSON(args) {
		o.output = "json" // also when cobra failed before parsing flags
	}
	code := nodeagent.ExitCode(err)
	o.printError(err, code)
	return code
}

// isCobraUsage recognises cobra's own argument errors.
func isCobraUsage(err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// wantsJSON reports whether the arguments ask for JSON output.
func wantsJSON(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--output=json" || a == "-o=json" || a == "-ojson":
			return true
		case (a == "--output" || a == "-o") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

// usageError marks a usage mistake.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
