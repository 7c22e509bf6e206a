package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Agent runs a drbook-agent CLI verb against a node's local daemon (the
// way an operator on that node would) and decodes its JSON output into out.
func (l *Lab) Agent(ctx context.Context, node string, env []string, out any, args ...string) error {
	n, err := l.Node(node)
	if err != nil {
		return err
	}
	full := append(append([]string{}, args...), "--data", n.DataDir, "--output", "json")
	cmd := exec.CommandContext(ctx, l.AgentBin, full...) // #nosec G204 -- runs the configured drbook-agent binary with argv, no shell
	cmd.Env = append(l.Env(n), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: drbook-agent %s: %w: %s %s", node, strings.Join(args, " "), err, strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String()))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s: drbook-agent %s: %w", node, args[0], err)
	}
	return nil
}

// Bootstrap makes the first size nodes (all if size ≤ 0) one cluster: the
// first node creates it, every other node joins with its own token and is
// promoted to voter. Nodes past size stay clean agents (DR nodes, scratch).
func (l *Lab) Bootstrap(ctx context.Context, size int) error {
	if size <= 0 || size > len(l.Nodes) {
		size = len(l.Nodes)
	}
	first := l.Nodes[0]
	if err := l.Agent(ctx, first.Name, nil, nil, "cluster", "create"); err != nil {
		return err
	}
	for _, n := range l.Nodes[1:size] {
		var tok struct {
			Token string `json:"token"`
		}
		if err := l.Agent(ctx, first.Name, nil, &tok, "token", "create", "--ttl", "10m"); err != nil {
			return err
		}
		if err := l.Agent(ctx, n.Name, []string{"DRBOOK_JOIN_TOKEN=" + tok.Token}, nil, "cluster", "join", "--peer", first.API); err != nil {
			return err
		}
	}
	return l.WaitHealthy(ctx, size, 30*time.Second)
}

// Status is the part of an agent's status the lab reads.
type Status struct {
	State   string `json:"state"`
	Voters  int    `json:"voters"`
	Healthy int    `json:"healthy"`
	Keys    int    `json:"keys"`
	Leader  *struct {
		ID string `json:"id"`
	} `json:"leader"`
}

// WaitHealthy polls the first reachable node until the cluster has voters
// voters, all healthy, and a leader.
func (l *Lab) WaitHealthy(ctx context.Context, voters int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last Status
	var lastErr error
	for time.Now().Before(deadline) {
		for _, n := range l.Nodes {
			if !alive(n.PID) {
				continue
			}
			var st Status
			if err := l.Agent(ctx, n.Name, nil, &st, "status"); err != nil {
				lastErr = err
				continue
			}
			last = st
			if st.Voters == voters && st.Healthy >= voters && st.Leader != nil && st.Leader.ID != "" {
				return nil
			}
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("lab: cluster not healthy after %s (last status: voters %d healthy %d; %v)", timeout, last.Voters, last.Healthy, lastErr)
}
