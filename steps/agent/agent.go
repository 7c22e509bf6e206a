// Package agent provides the agent.* step kinds: each runs the drbook-agent
// CLI on the step's target node through the run's transport, with
// --output json, and turns its JSON into step outputs. Secrets (join tokens,
// backup passphrases) travel in the environment, which the transports never
// put on a command line.
//
// Every agent kind is idempotent by the agent's contract (join by a member,
// bootstrap of the founder, reset of a clean node, removal of a node already
// gone: success, no change), so a resumed run re-runs an interrupted one.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drbook/drbook/internal/capread"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
)

// Register adds every agent kind to a registry.
func Register(r *steps.Registry) error {
	for _, k := range Kinds() {
		if err := r.Register(k); err != nil {
			return err
		}
	}
	return nil
}

// Kinds returns the agent step kinds.
func Kinds() []steps.Kind {
	return []steps.Kind{
		verb("agent.bootstrap", "Create a one-node cluster on the target (cluster create).", nil, nil,
			[]runbooks.OutputInfo{{Name: "cluster_id"}, {Name: "ca_fingerprint"}, {Name: "changed"}, {Name: "api_key", Secret: true}},
			func(p map[string]any) ([]string, map[string]string, error) {
				return []string{"cluster", "create"}, nil, nil
			}),
		verb("agent.token-create", "Create a single-use join token on the target (token create).",
			props{"ttl": str("Token lifetime (default 24h).")}, nil,
			[]runbooks.OutputInfo{{Name: "token", Secret: true}, {Name: "id"}, {Name: "expires"}},
			func(p map[string]any) ([]string, map[string]string, error) {
				args := []string{"token", "create"}
				if ttl := sparam(p, "ttl"); ttl != "" {
					args = append(args, "--ttl", ttl)
				}
				return args, nil, nil
			}),
		verb("agent.join", "Join the target to a cluster through a peer's API address with a join token.",
			props{"peer": str("API address of a cluster member (host:port)."), "token": str("Join token (secret).")}, []any{"peer", "token"},
			[]runbooks.OutputInfo{{Name: "changed"}, {Name: "suffrage"}, {Name: "cluster_id"}},
			func(p map[string]any) ([]string, map[string]string, error) {
				return []string{"cluster", "join", "--peer", sparam(p, "peer")}, map[string]string{"DRBOOK_JOIN_TOKEN": sparam(p, "token")}, nil
			}),
		verb("agent.remove", "Remove a node from the cluster, run on a healthy member; one node at a time, refused where it would lose quorum unless force.",
			props{"node": str("Node id to remove."), "force": boolean("Remove even if quorum would be lost.")}, []any{"node"},
			[]runbooks.OutputInfo{{Name: "changed"}, {Name: "voters"}},
			func(p map[string]any) ([]string, map[string]string, error) {
				args := []string{"cluster", "remove", "--node", sparam(p, "node")}
				if b, _ := p["force"].(bool); b {
					args = append(args, "--force")
				}
				return args, nil, nil
			}),
		verb("agent.reset", "Delete the target's cluster state (cluster reset --delete-data); refused on a member.", nil, nil,
			[]runbooks.OutputInfo{{Name: "changed"}},
			func(p map[string]any) ([]string, map[string]string, error) {
				return []string{"cluster", "reset", "--delete-data"}, nil, nil
			}),
		verb("agent.backup", "Take an encrypted backup on the target, applying retention.",
			props{"passphrase": str("Backup passphrase (secret)."), "out": str("Backup file to write (default: the agent's backup directory)."),
				"keep": integer("Backups to keep (default 10)."), "max_age": str("Delete backups older than this (default 168h).")}, []any{"passphrase"},
			[]runbooks.OutputInfo{{Name: "file"}, {Name: "id"}, {Name: "keys"}, {Name: "bytes"}},
			func(p map[string]any) ([]string, map[string]string, error) {
				args := []string{"backup", "create"}
				if out := sparam(p, "out"); out != "" {
					args = append(args, "--out", out)
				}
				if k := sparam(p, "keep"); k != "" {
					args = append(args, "--keep", k)
				}
				if a := sparam(p, "max_age"); a != "" {
					args = append(args, "--max-age", a)
				}
				return args, map[string]string{"DRBOOK_BACKUP_PASSPHRASE": sparam(p, "passphrase")}, nil
			}),
		verb("agent.restore", "Restore a backup onto a freshly bootstrapped one-node cluster; the whole file is verified first.",
			props{"file": str("Backup file on the target."), "passphrase": str("Backup passphrase (secret).")}, []any{"file", "passphrase"},
			[]runbooks.OutputInfo{{Name: "changed"}, {Name: "keys"}, {Name: "source_cluster_id"}},
			func(p map[string]any) ([]string, map[string]string, error) {
				return []string{"restore", sparam(p, "file")}, map[string]string{"DRBOOK_BACKUP_PASSPHRASE": sparam(p, "passphrase")}, nil
			}),
		verb("agent.force-new", "Quorum lost: make the surviving target a one-node cluster from its own committed state.", nil, nil,
			[]runbooks.OutputInfo{{Name: "changed"}, {Name: "keys"}},
			func(p map[string]any) ([]string, map[string]string, error) {
				return []string{"cluster", "force-new"}, nil, nil
			}),
		verb("agent.keys-verify", "Compare the cluster's keys with a manifest file on the target; fails on any difference.",
			props{"manifest": str("Manifest file on the target.")}, []any{"manifest"},
			[]runbooks.OutputInfo{{Name: "ok"}, {Name: "expected"}, {Name: "actual"}, {Name: "digest"}},
			func(p map[string]any) ([]string, map[string]string, error) {
				return []string{"keys", "verify", "--manifest", sparam(p, "manifest")}, nil, nil
			}),
		statusKind{},
		scaleOut{},
		manifestKind{},
		pickSurvivor{},
	}
}

type props map[string]any

func str(desc string) map[string]any {
	return map[string]any{"type": "string", "description": desc}
}

func boolean(desc string) map[string]any {
	return map[string]any{"type": "boolean", "description": desc}
}

func integer(desc string) map[string]any {
	return map[string]any{"type": []any{"integer", "string"}, "description": desc}
}

func sparam(p map[string]any, name string) string {
	v, ok := p[name]
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func schema(ps props, required []any) map[string]any {
	s := map[string]any{"type": "object", "properties": map[string]any(ps), "additionalProperties": false}
	if ps == nil {
		s["properties"] = map[string]any{}
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// verbKind runs one agent CLI verb.
type verbKind struct {
	name, desc string
	params     map[string]any
	outputs    []runbooks.OutputInfo
	args       func(map[string]any) ([]string, map[string]string, error)
}

func verb(name, desc string, ps props, required []any, outs []runbooks.OutputInfo, args func(map[string]any) ([]string, map[string]string, error)) verbKind {
	return verbKind{name: name, desc: desc, params: schema(ps, required), outputs: outs, args: args}
}

// Info implements steps.Kind.
func (k verbKind) Info() runbooks.KindInfo {
	return runbooks.KindInfo{Name: k.name, Description: k.desc, Params: k.params, Outputs: k.outputs,
		Targets: runbooks.TargetsRequired, Idempotent: true}
}

// Summary implements steps.Kind.
func (k verbKind) Summary(x *steps.Exec) string {
	args, _, err := k.args(x.Params)
	if err != nil {
		return k.name
	}
	return commandLine(x.Target, args)
}

// Run implements steps.Kind.
func (k verbKind) Run(ctx context.Context, x *steps.Exec) (steps.Result, error) {
	args, env, err := k.args(x.Params)
	if err != nil {
		return steps.Result{ExitCode: -1}, err
	}
	var obj map[string]any
	res, err := call(ctx, x, x.Transport, x.Target, args, env, &obj)
	if err != nil {
		return res, err
	}
	res.Outputs = outputsOf(obj, k.outputs)
	for _, o := range k.outputs {
		if o.Secret {
			res.SecretOutputs = append(res.SecretOutputs, o.Name)
		}
	}
	if msg, ok := obj["message"].(string); ok {
		res.Message = msg
	}
	return res, nil
}

// AgentError is a refusal or failure reported by drbook-agent.
type AgentError struct {
	ExitCode int
	Message  string
	Sentinel string
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("drbook-agent exited %d: %s", e.ExitCode, e.Message)
}

// Unwrap makes errors.Is(err, steps.ErrExitStatus) match.
func (e *AgentError) Unwrap() error { return steps.ErrExitStatus }

// ErrNoTarget is returned when an agent step has no target node.
var ErrNoTarget = errors.New("agent steps need a target node")

// ErrAnswerTooLarge: a node's drbook-agent printed more than maxAnswerBytes
// (a misbehaving or hostile node); the answer is refused, not parsed.
var ErrAnswerTooLarge = errors.New("drbook-agent answer is larger than 64 MiB")

// maxAnswerBytes bounds what drbook keeps of a drbook-agent command's
// stdout (its JSON answer; a keys verify listing every key of a large store
// is the largest), as the agent's API bounds what it takes.
const maxAnswerBytes = 64 << 20

// commandLine builds the drbook-agent invocation for a node, every argument
// quoted.
func commandLine(n *runbooks.Node, args []string) string {
	bin := "drbook-agent"
	var pre []string
	if n != nil {
		if n.Agent.Command != "" {
			bin = n.Agent.Command
		}
		if n.Agent.Data != "" {
			pre = []string{"--data", n.Agent.Data}
		}
	}
	parts := []string{runbooks.ShellQuote(bin)}
	for _, a := range append(append(args, pre...), "--output", "json") {
		parts = append(parts, runbooks.ShellQuote(a))
	}
	return strings.Join(parts, " ")
}

// call runs one agent verb on node n and decodes its JSON into out. The
// command's stdout is not streamed raw (it may hold secrets); a summary line
// is written instead.
func call(ctx context.Context, x *steps.Exec, t transport.Transport, n *runbooks.Node, args []string, env map[string]string, out any) (steps.Result, error) {
	if t == nil || n == nil {
		return steps.Result{ExitCode: -1}, ErrNoTarget
	}
	full := map[string]string{}
	maps.Copy(full, n.Env)
	maps.Copy(full, n.Agent.Env)
	for k, v := range env {
		if v == "" {
			return steps.Result{ExitCode: -1}, fmt.Errorf("%w: %s is empty", steps.ErrBadParams, k)
		}
		full[k] = v
	}
	stdout := capread.Buffer{Limit: maxAnswerBytes}
	line := commandLine(n, args)
	code, err := t.Run(ctx, transport.Command{Line: line, Env: full, Stdout: &stdout, Stderr: x.Stderr})
	if err != nil {
		return steps.Result{ExitCode: -1}, err
	}
	if stdout.Over() > 0 {
		return steps.Result{ExitCode: code}, fmt.Errorf("drbook-agent %s on %s: %w (%d bytes more were dropped)", strings.Join(args, " "), n.Name, ErrAnswerTooLarge, stdout.Over())
	}
	res := steps.Result{ExitCode: code}
	if code != 0 {
		var e struct {
			Error    string `json:"error"`
			Sentinel string `json:"sentinel"`
		}
		msg := strings.TrimSpace(stdout.String())
		if json.Unmarshal(stdout.Bytes(), &e) == nil && e.Error != "" {
			msg = e.Error
		}
		fmt.Fprintln(x.Stdout, msg)
		return res, &AgentError{ExitCode: code, Message: msg, Sentinel: e.Sentinel}
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), out); err != nil {
		return res, fmt.Errorf("drbook-agent %s: output is not JSON: %w", strings.Join(args, " "), err)
	}
	summarize(x, out)
	return res, nil
}

// summarize prints the non-secret scalar fields of an agent reply.
func summarize(x *steps.Exec, v any) {
	m, ok := v.(*map[string]any)
	if !ok || m == nil {
		return
	}
	var parts []string
	for _, k := range sortedKeys(*m) {
		switch k {
		case "token", "api_key", "keys_list", "members":
			continue
		}
		switch val := (*m)[k].(type) {
		case string, bool, float64:
			parts = append(parts, fmt.Sprintf("%s=%s", k, scalar(val)))
		}
	}
	fmt.Fprintln(x.Stdout, strings.Join(parts, " "))
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func outputsOf(obj map[string]any, outs []runbooks.OutputInfo) map[string]string {
	res := map[string]string{}
	for _, o := range outs {
		if v, ok := obj[o.Name]; ok {
			res[o.Name] = scalar(v)
		}
	}
	return res
}

// statusKind reads the cluster's status on the target.
type statusKind struct{}

// Info implements steps.Kind.
func (statusKind) Info() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name: "agent.status", Description: "Read the cluster status on the target: leader, voters, healthy members, keys.",
		Params: schema(nil, nil),
		Outputs: []runbooks.OutputInfo{{Name: "leader"}, {Name: "voters"}, {Name: "healthy"}, {Name: "keys"}, {Name: "state"},
			{Name: "members"}, {Name: "cluster_id"}, {Name: "applied_index"}, {Name: "commit_index"}, {Name: "member"}},
		Targets: runbooks.TargetsRequired, Idempotent: true,
	}
}

// Summary implements steps.Kind.
func (statusKind) Summary(x *steps.Exec) string { return commandLine(x.Target, []string{"status"}) }

// Run implements steps.Kind.
func (statusKind) Run(ctx context.Context, x *steps.Exec) (steps.Result, error) {
	var st map[string]any
	res, err := call(ctx, x, x.Transport, x.Target, []string{"status"}, nil, &st)
	if err != nil {
		return res, err
	}
	res.Outputs = outputsOf(st, []runbooks.OutputInfo{{Name: "voters"}, {Name: "healthy"}, {Name: "keys"}, {Name: "state"},
		{Name: "cluster_id"}, {Name: "applied_index"}, {Name: "commit_index"}, {Name: "member"}})
	if l, ok := st["leader"].(map[string]any); ok {
		res.Outputs["leader"] = scalar(l["id"])
	} else {
		res.Outputs["leader"] = ""
	}
	if ms, ok := st["members"].([]any); ok {
		res.Outputs["members"] = strconv.Itoa(len(ms))
	}
	return res, nil
}

// scaleOut joins each target, one at a time, with a fresh token from the
// seed, and waits until the target is a voter before the next one starts.
type scaleOut struct{}

// Info implements steps.Kind.
func (scaleOut) Info() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name:        "agent.scale-out",
		Description: "Join each target to the seed's cluster one at a time (fresh token each), waiting until it is promoted to voter.",
		Params: schema(props{
			"seed":    str("Inventory node of a cluster member that issues the tokens."),
			"peer":    str("API address of that member (host:port)."),
			"timeout": str("How long to wait for promotion to voter (default 2m)."),
		}, []any{"seed", "peer"}),
		Outputs: []runbooks.OutputInfo{{Name: "suffrage"}, {Name: "changed"}},
		Targets: runbooks.TargetsRequired, Idempotent: true, MaxParallel: 1,
	}
}

// Summary implements steps.Kind.
func (scaleOut) Summary(x *steps.Exec) string {
	return fmt.Sprintf("token create on %s; %s; wait for voter", sparam(x.Params, "seed"),
		commandLine(x.Target, []string{"cluster", "join", "--peer", sparam(x.Params, "peer")}))
}

// Run implements steps.Kind.
func (scaleOut) Run(ctx context.Context, x *steps.Exec) (steps.Result, error) {
	if x.Dial == nil {
		return steps.Result{ExitCode: -1}, fmt.Errorf("%w: agent.scale-out needs access to the seed node", steps.ErrBadParams)
	}
	timeout, err := time.ParseDuration(orDefault(sparam(x.Params, "timeout"), "2m"))
	if err != nil {
		return steps.Result{ExitCode: -1}, fmt.Errorf("%w: timeout: %v", steps.ErrBadParams, err)
	}
	// Already a voter? Nothing to do (idempotent resume).
	var st map[string]any
	if _, err := call(ctx, x, x.Transport, x.Target, []string{"status"}, nil, &st); err == nil && isVoter(st, x.Target.Name) {
		fmt.Fprintf(x.Stdout, "%s is already a voter\n", x.Target.Name)
		return steps.Result{Outputs: map[string]string{"suffrage": "voter", "changed": "false"}, Message: "already a voter"}, nil
	}
	seedNode, seedT, err := x.Dial(ctx, sparam(x.Params, "seed"))
	if err != nil {
		return steps.Result{ExitCode: -1}, fmt.Errorf("reach seed: %w", err)
	}
	var tok map[string]any
	if res, err := call(ctx, x, seedT, seedNode, []string{"token", "create", "--ttl", "15m"}, nil, &tok); err != nil {
		return res, fmt.Errorf("token on %s: %w", seedNode.Name, err)
	}
	token, _ := tok["token"].(string)
	var join map[string]any
	res, err := call(ctx, x, x.Transport, x.Target, []string{"cluster", "join", "--peer", sparam(x.Params, "peer")}, map[string]string{"DRBOOK_JOIN_TOKEN": token}, &join)
	if err != nil {
		return res, err
	}
	deadline := time.Now().Add(timeout)
	last, lastState := "no status read yet", ""
	for poll := 1; ; poll++ {
		var st map[string]any
		quiet := *x
		quiet.Stdout = io.Discard
		_, err := call(ctx, &quiet, x.Transport, x.Target, []string{"status"}, nil, &st)
		switch {
		case err == nil && isVoter(st, x.Target.Name):
			fmt.Fprintf(x.Stdout, "%s promoted to voter (poll %d)\n", x.Target.Name, poll)
			return steps.Result{Outputs: map[string]string{"suffrage": "voter", "changed": scalar(join["changed"])}}, nil
		case ctx.Err() != nil:
			// The step's limit cut this poll short: report the last one.
		default:
			state := "suffrage " + orDefault(suffrage(st, x.Target.Name), "(not a member)")
			if err != nil {
				state = fmt.Sprintf("status failed: %v", err)
			}
			if state != lastState {
				// Written when it changes only: the log stays bounded.
				fmt.Fprintf(x.Stdout, "poll %d: %s\n", poll, state)
				lastState = state
			}
			last = fmt.Sprintf("poll %d: %s", poll, state)
		}
		if time.Now().After(deadline) {
			return steps.Result{ExitCode: 1}, fmt.Errorf("%w: %s not promoted to voter within %s (last %s)", steps.ErrTimeout, x.Target.Name, timeout, last)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return steps.Result{ExitCode: -1}, &steps.PollTimeoutError{Detail: fmt.Sprintf("%s not promoted to voter (last %s)", x.Target.Name, last), Cause: ctx.Err()}
			}
			return steps.Result{ExitCode: -1}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// suffrage is node's suffrage in a status reply ("" when not listed).
func suffrage(st map[string]any, node string) string {
	self, _ := st["node_id"].(string)
	members, _ := st["members"].([]any)
	for _, m := range members {
		mm, _ := m.(map[string]any)
		if id, _ := mm["id"].(string); id == self || id == node {
			s, _ := mm["suffrage"].(string)
			return s
		}
	}
	return ""
}

// isVoter reports whether status lists node (by the agent's node id, which
// drbook's lab uses as the inventory name) as a voter, or the status of the
// node itself says it is a voting member.
func isVoter(st map[string]any, node string) bool {
	self, _ := st["node_id"].(string)
	members, _ := st["members"].([]any)
	for _, m := range members {
		mm, _ := m.(map[string]any)
		id, _ := mm["id"].(string)
		if (id == self || id == node) && mm["suffrage"] == "voter" {
			return true
		}
	}
	return false
}

// manifestKind writes the digest of every key to a file on the target and
// reads back its count and total digest.
type manifestKind struct{}

// Info implements steps.Kind.
func (manifestKind) Info() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name: "agent.keys-manifest", Description: "Write the digest of every key to a file on the target (to verify a recovery against).",
		Params:  schema(props{"out": str("Manifest file to write on the target.")}, []any{"out"}),
		Outputs: []runbooks.OutputInfo{{Name: "count"}, {Name: "digest"}, {Name: "file"}},
		Targets: runbooks.TargetsRequired, Idempotent: true,
	}
}

func manifestLine(x *steps.Exec) string {
	out := sparam(x.Params, "out")
	return commandLine(x.Target, []string{"keys", "manifest"}) + " > " + runbooks.ShellQuote(out) + " && " +
		commandLine(x.Target, []string{"keys", "verify", "--manifest", out})
}

// Summary implements steps.Kind.
func (manifestKind) Summary(x *steps.Exec) string { return manifestLine(x) }

// Run implements steps.Kind.
func (manifestKind) Run(ctx context.Context, x *steps.Exec) (steps.Result, error) {
	if x.Transport == nil || x.Target == nil {
		return steps.Result{ExitCode: -1}, ErrNoTarget
	}
	env := map[string]string{}
	maps.Copy(env, x.Target.Env)
	maps.Copy(env, x.Target.Agent.Env)
	stdout := capread.Buffer{Limit: maxAnswerBytes}
	code, err := x.Transport.Run(ctx, transport.Command{Line: manifestLine(x), Env: env, Stdout: &stdout, Stderr: x.Stderr})
	if err != nil {
		return steps.Result{ExitCode: -1}, err
	}
	if stdout.Over() > 0 {
		return steps.Result{ExitCode: code}, fmt.Errorf("drbook-agent keys manifest on %s: %w (%d bytes more were dropped)", x.Target.Name, ErrAnswerTooLarge, stdout.Over())
	}
	var v map[string]any
	if code != 0 || json.Unmarshal(stdout.Bytes(), &v) != nil {
		return steps.Result{ExitCode: code}, &AgentError{ExitCode: code, Message: strings.TrimSpace(stdout.String())}
	}
	res := steps.Result{Outputs: map[string]string{"count": scalar(v["actual"]), "digest": scalar(v["digest"]), "file": sparam(x.Params, "out")}}
	fmt.Fprintf(x.Stdout, "manifest of %s keys written to %s (digest %.16s…)\n", res.Outputs["count"], res.Outputs["file"], res.Outputs["digest"])
	return res, nil
}

// pickSurvivor asks every reachable candidate for its local state and names
// the one with the most recent committed Raft index: the node to force a new
// cluster on after quorum loss.
type pickSurvivor struct{}

// Info implements steps.Kind.
func (pickSurvivor) Info() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name:        "agent.pick-survivor",
		Description: "Ask each candidate node for its local Raft state; output the reachable one with the highest commit index.",
		Params: schema(props{"candidates": map[string]any{"type": []any{"array", "string"}, "items": map[string]any{"type": "string"},
			"description": "Inventory nodes that may have survived."}}, []any{"candidates"}),
		Outputs: []runbooks.OutputInfo{{Name: "survivor"}, {Name: "commit_index"}, {Name: "keys"}},
		Targets: runbooks.TargetsNone, Idempotent: true,
	}
}

// Summary implements steps.Kind.
func (pickSurvivor) Summary(x *steps.Exec) string {
	return "status on " + strings.Join(candidates(x.Params), ", ")
}

func candidates(p map[string]any) []string {
	switch v := p["candidates"].(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, c := range v {
			out = append(out, fmt.Sprint(c))
		}
		return out
	case string:
		return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	}
	return nil
}

// Run implements steps.Kind.
func (pickSurvivor) Run(ctx context.Context, x *steps.Exec) (steps.Result, error) {
	if x.Dial == nil {
		return steps.Result{ExitCode: -1}, fmt.Errorf("%w: agent.pick-survivor needs access to the nodes", steps.ErrBadParams)
	}
	best, bestIndex, bestKeys := "", -1.0, 0.0
	for _, name := range candidates(x.Params) {
		n, t, err := x.Dial(ctx, name)
		if err != nil {
			fmt.Fprintf(x.Stdout, "%s: unreachable (%v)\n", name, err)
			continue
		}
		var st map[string]any
		if _, err := call(ctx, x, t, n, []string{"status"}, nil, &st); err != nil {
			fmt.Fprintf(x.Stdout, "%s: no status (%v)\n", name, err)
			continue
		}
		idx, _ := st["commit_index"].(float64)
		keys, _ := st["keys"].(float64)
		if cid, _ := st["cluster_id"].(string); cid == "" {
			fmt.Fprintf(x.Stdout, "%s: no cluster state\n", name)
			continue
		}
		fmt.Fprintf(x.Stdout, "%s: commit index %.0f, %.0f keys\n", name, idx, keys)
		if idx > bestIndex {
			best, bestIndex, bestKeys = name, idx, keys
		}
	}
	if best == "" {
		return steps.Result{ExitCode: 1}, fmt.Errorf("no candidate holds cluster state: this is a total loss, restore from a backup")
	}
	fmt.Fprintf(x.Stdout, "survivor: %s\n", best)
	return steps.Result{Outputs: map[string]string{"survivor": best, "commit_index": strconv.FormatFloat(bestIndex, 'f', 0, 64),
		"keys": strconv.FormatFloat(bestKeys, 'f', 0, 64)}}, nil
}
