package nodeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"time"
)

// wireError is the JSON body of every failed admin or internal call.
type wireError struct {
	Error    string `json:"error"`
	Sentinel string `json:"sentinel,omitempty"`
	Code     int    `json:"exit_code"`
	// NotApplied is true when the request certainly had no effect (it never
	// reached a leader, or was not authorised), so a client may retry it.
	NotApplied bool `json:"not_applied,omitempty"`
}

// errNotSent marks errors of requests that certainly had no effect.
var errNotSent = errors.New("request not delivered to a leader")

// remoteError is an error received over the wire; it unwraps to the
// sentinel it carried, so errors.Is works across processes.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func toWire(err error) wireError {
	w := wireError{Error: err.Error(), Code: ExitCode(err), NotApplied: errors.Is(err, errNotSent)}
	if s := sentinelOf(err); s != nil {
		w.Sentinel = s.Error()
	}
	return w
}

func fromWire(w wireError) error {
	err := error(&remoteError{msg: w.Error, sentinel: sentinelByMessage(w.Sentinel)})
	if w.NotApplied {
		err = &notSentError{err}
	}
	return err
}

// notSentError adds errNotSent to an error received over the wire.
type notSentError struct{ error }

func (e *notSentError) Unwrap() []error { return []error{e.error, errNotSent} }

// writeJSON writes v (or an error) as the JSON response.
func writeJSON(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := httpStatus(err)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", "Bearer")
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(toWire(err))
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// doJSON posts req as JSON and decodes the answer into out, mapping error
// bodies back to sentinels.
func doJSON(ctx context.Context, c *http.Client, method, url string, req, out any) error {
	var body io.Reader
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(hr)
	if err != nil {
		var ue *neturl.Error
		if errors.Is(err, ErrCAMismatch) && errors.As(err, &ue) {
			return &notSentError{ue.Err} // the peer is the wrong cluster: retrying cannot help
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return &notSentError{fmt.Errorf("%w: %w", ErrUnavailable, err)}
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var w wireError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &w) != nil || w.Error == "" {
			return fmt.Errorf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
		}
		return fromWire(w)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	lr := &io.LimitedReader{R: resp.Body, N: maxResponse + 1}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		if lr.N <= 0 {
			return fmt.Errorf("decode response: %s %s answered more than %d bytes", method, url, maxResponse)
		}
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// maxResponse bounds an answer read from another node: a peer, even a
// broken or hostile one, cannot make this node read without end.
const maxResponse = 64 << 20

// internalCall calls verb on the node whose API listens on apiAddr, over
// mutual TLS with this node's certificate.
func (a *Agent) internalCall(ctx context.Context, apiAddr, verb string, req, out any) error {
	a.mu.RLock()
	c := a.httpc
	a.mu.RUnlock()
	if c == nil {
		return ErrNoClusterState
	}
	return doJSON(ctx, c, http.MethodPost, "https://"+apiAddr+"/v1/internal/"+verb, req, out)
}

// leaderAPIAddr returns the leader's API address, waiting up to wait for a
// leader to be known.
func (a *Agent) leaderAPIAddr(ctx context.Context, wait time.Duration) (id string, addr string, self bool, err error) {
	r := a.store.Raft()
	if r == nil {
		return "", "", false, ErrNoClusterState
	}
	deadline := time.Now().Add(wait)
	for {
		_, lid := r.LeaderWithID()
		if lid != "" {
			if string(lid) == a.cfg.NodeID {
				if a.store.Ready() {
					return string(lid), a.cfg.APIAddr, true, nil
				}
			} else if n, ok := a.store.State().Meta().Nodes[string(lid)]; ok {
				return string(lid), n.APIAddr, false, nil
			}
		}
		if time.Now().After(deadline) {
			return "", "", false, &notSentError{fmt.Errorf("%w: no leader elected within %s (quorum lost, or an election is running)", ErrUnavailable, wait.Round(100*time.Millisecond))}
		}
		select {
		case <-ctx.Done():
			return "", "", false, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// leaderWait is how long a call waits for a leader before failing.
const leaderWait = 3 * time.Second

// onLeader runs fn here if this node is the ready leader, otherwise calls
// verb on the leader over mutual TLS. Calls that certainly had no effect
// (no leader yet, leader not ready, leader unreachable) are retried until
// leaderWait passes.
func onLeader[T any](ctx context.Context, a *Agent, verb string, req any, fn func(context.Context) (T, error)) (T, error) {
	var out T
	err := a.withLeader(ctx, func(addr string, self bool) error {
		if self {
			var err error
			out, err = fn(ctx)
			return err
		}
		var res T
		if err := a.internalCall(ctx, addr, verb, req, &res); err != nil {
			return err
		}
		out = res
		return nil
	})
	return out, err
}

// withLeader calls fn with the leader's API address, retrying while the
// error says the request reached no leader.
func (a *Agent) withLeader(ctx context.Context, fn func(addr string, self bool) error) error {
	deadline := time.Now().Add(leaderWait)
	for {
		_, addr, self, err := a.leaderAPIAddr(ctx, time.Until(deadline))
		if err == nil {
			err = fn(addr, self)
		}
		if err == nil || !errors.Is(err, errNotSent) {
			return err
		}
		if time.Now().After(deadline) {
			return &notSentError{fmt.Errorf("no reachable leader within %s (is quorum lost?): %w", leaderWait, err)}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readBarrier makes local reads linearizable: the leader confirms its
// leadership; a follower learns the leader's commit index (read index) and
// waits until it has applied that far.
func (a *Agent) readBarrier(ctx context.Context) error {
	r := a.store.Raft()
	if r == nil {
		return ErrNoClusterState
	}
	var idx uint64
	err := a.withLeader(ctx, func(addr string, self bool) error {
		if self {
			if err := r.VerifyLeader().Error(); err != nil {
				return fmt.Errorf("%w: verify leader: %w", ErrUnavailable, err)
			}
			idx = a.store.State().Index()
			return nil
		}
		var li leaderIndex
		if err := a.internalCall(ctx, addr, "read_index", struct{}{}, &li); err != nil {
			return err
		}
		idx = li.CommitIndex
		return nil
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.store.State().Index() < idx {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: follower did not catch up to read index %d", ErrUnavailable, idx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// leaderIndex is the answer of the internal read_index verb: the index of
// the last command the leader's FSM applied.
type leaderIndex struct {
	CommitIndex uint64 `json:"commit_index"`
}

// readIndex runs on the leader: it confirms leadership, then returns the
// commit index every linearizable read must wait for.
func (a *Agent) readIndex(ctx context.Context) (leaderIndex, error) {
	r := a.store.Raft()
	if r == nil || !a.store.Ready() {
		return leaderIndex{}, &notSentError{fmt.Errorf("%w: not the leader", ErrUnavailable)}
	}
	// Every acknowledged write was applied by a leader's FSM first, and this
	// leader's barrier covered earlier terms: its FSM index bounds them all.
	idx := a.store.State().Index()
	if err := r.VerifyLeader().Error(); err != nil {
		return leaderIndex{}, fmt.Errorf("%w: verify leader: %w", ErrUnavailable, err)
	}
	return leaderIndex{CommitIndex: idx}, nil
}
