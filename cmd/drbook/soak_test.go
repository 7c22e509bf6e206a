package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/drbook/drbook/nodeagent"
	"github.com/drbook/drbook/nodeagent/lab"
)

// joinRemoveRunbook joins a clean node to the cluster, waits until it is a
// member, removes it and resets it: a membership change end to end.
const joinRemoveRunbook = `apiVersion: drbook/v1
kind: Runbook
name: join-remove
title: Join a node, then remove and reset it
inputs:
  member: {type: node, prompt: A member}
  dr: {type: node, prompt: The node to cycle}
steps:
  - id: token
    run: agent.token-create
    on: "{{ inputs.member }}"
    with: {ttl: 1h}
  - id: join
    run: agent.join
    on: "{{ inputs.dr }}"
    with: {peer: "{{ nodes[inputs.member].api }}", token: "{{ steps.token.outputs.token }}"}
  - id: member
    run: wait
    on: "{{ inputs.dr }}"
    timeout: 20s
    with: {kind: agent.status, expect: {member: "true", leader: "!="}, interval: 200ms}
  - id: remove
    run: agent.remove
    on: "{{ inputs.member }}"
    with: {node: "{{ inputs.dr }}"}
  - id: reset
    run: agent.reset
    on: "{{ inputs.dr }}"
`

// soakDuration is 60 s (CI) unless DRBOOK_SOAK says otherwise (e.g. 10m).
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("DRBOOK_SOAK")
	if s == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > 2*time.Hour {
		t.Fatalf("DRBOOK_SOAK=%q: want a duration up to 2h", s)
	}
	return d
}

// keyOp is one key-store operation for the linearizability checker.
type keyOp struct {
	Op, Key string // create, get, delete
}

// keyRes is what a client observed; Ambiguous: the effect may or may not
// have happened (the answer never came).
type keyRes struct {
	OK, Ambiguous bool
}

// presenceModel is the sequential specification of one key: present or not.
func presenceModel() porcupine.Model {
	nd := porcupine.NondeterministicModel{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range h {
				k := op.Input.(keyOp).Key
				if _, ok := by[k]; !ok {
					keys = append(keys, k)
				}
				by[k] = append(by[k], op)
			}
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, by[k])
			}
			return out
		},
		Init: func() []any { return []any{false} },
		Step: func(state, input, output any) []any {
			present, in, out := state.(bool), input.(keyOp), output.(keyRes)
			switch in.Op {
			case "create":
				switch {
				case out.Ambiguous:
					return []any{present, true}
				case out.OK && !present:
					return []any{true}
				case !out.OK && present:
					return []any{true}
				}
			case "get":
				if out.OK == present {
					return []any{present}
				}
			case "delete":
				switch {
				case out.Ambiguous:
					return []any{present, false}
				case out.OK && present:
					return []any{false}
				case !out.OK && !present:
					return []any{false}
				}
			}
			return nil
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(keyOp), output.(keyRes)
			return fmt.Sprintf("%s(%s) ok=%v amb=%v", in.Op, in.Key, out.OK, out.Ambiguous)
		},
	}
	return nd.ToModel()
}

// keyCall runs one key operation through the agent CLI on a node and
// classifies the answer: definite (ok or a refusal naming the rule),
// ambiguous, or no effect at all (drop it).
func keyCall(ctx context.Context, l *lab.Lab, node string, op keyOp) (keyRes, bool) {
	var err error
	switch op.Op {
	case "create":
		var res []nodeagent.CreateResult
		err = l.Agent(ctx, node, nil, &res, "keys", "create", "--id", op.Key)
		if err == nil {
			return keyRes{OK: len(res) == 1 && res[0].Created}, true
		}
		if strings.Contains(err.Error(), "already exists") {
			return keyRes{}, true
		}
		return keyRes{Ambiguous: true}, true
	case "delete":
		err = l.Agent(ctx, node, nil, nil, "keys", "delete", op.Key)
		if err == nil {
			return keyRes{OK: true}, true
		}
		if strings.Contains(err.Error(), "not found") {
			return keyRes{}, true
		}
		return keyRes{Ambiguous: true}, true
	default:
		err = l.Agent(ctx, node, nil, nil, "keys", "get", op.Key)
		if err == nil {
			return keyRes{OK: true}, true
		}
		if strings.Contains(err.Error(), "not found") {
			return keyRes{}, true
		}
		return keyRes{}, false // a failed read has no effect
	}
}

// soakFigures are the numbers the soak reports.
type soakFigures struct {
	faults, runs, succeeded, resumes, stopped, eventsLost int
	refused                                               int // stopped by the agent's join-unique-node-id rule
	ops, ambiguous, acked, ackAmbiguous                   int
}

// TestSoakJoinRemoveUnderAgentKills_RecordVerifies_ManifestMatchesAckedWrites
// runs a join/remove/reset runbook again and again on a lab of real agents
// while agents are killed (SIGKILL) and restarted in a loop and clients
// write keys. Each run either succeeds or stops with a clear state (failed
// or interrupted, with a resume hint) and is resumed until it succeeds; at
// the end every record verifies with no event lost, the key history is
// linearizable (porcupine), and the key store's manifest holds every
// acknowledged write and nothing that was never attempted. 60 s by default;
// DRBOOK_SOAK=10m for a long soak.
func TestSoakJoinRemoveUnderAgentKills_RecordVerifies_ManifestMatchesAckedWrites(t *testing.T) {
	dur := soakDuration(t)
	l, inv := startLab(t, 4, 3)
	dir := t.TempDir()
	db := filepath.Join(dir, "drbook.db")
	rb := filepath.Join(dir, "join-remove.yaml")
	ans := filepath.Join(dir, "answers.yaml")
	if err := os.WriteFile(rb, []byte(joinRemoveRunbook), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ans, []byte("inputs:\n  member: node1\n  dr: node4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var fig soakFigures
	var figMu sync.Mutex
	start := time.Now()

	// Faults: kill -9 one agent (any of the four), restart it, pause.
	var faults atomic.Int64
	var labMu sync.Mutex // lab.Lab is not safe for concurrent Kill/Start/Node
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		rng := rand.New(rand.NewPCG(1, uint64(start.UnixNano())))
		for ctx.Err() == nil {
			pause(ctx, time.Duration(300+rng.IntN(1200))*time.Millisecond)
			if ctx.Err() != nil {
				return
			}
			name := fmt.Sprintf("node%d", 1+rng.IntN(4))
			labMu.Lock()
			err := l.Kill(name)
			labMu.Unlock()
			if err != nil {
				t.Errorf("kill %s: %v", name, err)
				return
			}
			faults.Add(1)
			pause(ctx, time.Duration(200+rng.IntN(800))*time.Millisecond)
			labMu.Lock()
			err = l.Start(context.Background(), name)
			labMu.Unlock()
			if err != nil {
				t.Errorf("restart %s: %v", name, err)
				return
			}
		}
	}()

	// Clients: linearizable create/get/delete on a few keys, and create-only
	// writes whose acknowledgement the final manifest must honour.
	var histMu sync.Mutex
	var history []porcupine.Operation
	acked, ambiguousAcks := map[string]bool{}, map[string]bool{}
	var wg sync.WaitGroup
	for ci := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			for n := 0; ctx.Err() == nil; n++ {
				node := fmt.Sprintf("node%d", 1+rng.IntN(3))
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				if n%3 == 0 {
					id := fmt.Sprintf("ack-%d-%d", ci, n)
					res, _ := keyCall(cctx, l, node, keyOp{Op: "create", Key: id})
					histMu.Lock()
					switch {
					case res.OK:
						acked[id] = true
					case res.Ambiguous:
						ambiguousAcks[id] = true
					}
					histMu.Unlock()
					ccancel()
					continue
				}
				op := keyOp{Key: fmt.Sprintf("lin-%d", rng.IntN(4))}
				switch p := rng.IntN(10); {
				case p < 4:
					op.Op = "create"
				case p < 8:
					op.Op = "get"
				default:
					op.Op = "delete"
				}
				call := time.Since(start).Nanoseconds()
				res, keep := keyCall(cctx, l, node, op)
				ccancel()
				ret := time.Since(start).Nanoseconds()
				if !keep {
					continue
				}
				if res.Ambiguous {
					ret = time.Duration(1<<62 - 1).Nanoseconds()
				}
				histMu.Lock()
				history = append(history, porcupine.Operation{ClientId: ci, Input: op, Call: call, Output: res, Return: ret})
				histMu.Unlock()
			}
		}()
	}

	// The runbook, again and again; every stop is resumed until success.
	var runIDs []string
	snapshots := map[string][]evRow{}
	checkStop := func(id string, r result) {
		if r.code != exitFailed && r.code != exitInterrupted {
			t.Errorf("run %s stopped with exit %d, want 1 (failed) or 130 (interrupted)\n%s%s", id, r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "drbook resume "+id) {
			t.Errorf("run %s stopped without saying how to resume:\n%s", id, r.stderr)
		}
		if st := runStatus(t, db, id); st != "failed" && st != "interrupted" {
			t.Errorf("run %s recorded as %q after a stop", id, st)
		}
		evs := recordedEvents(t, db, id)
		fig.eventsLost += assertPrefix(t, snapshots[id], evs)
		snapshots[id] = evs
	}
	for ctx.Err() == nil {
		r := drbook(t, nil, "run", rb, "-i", inv, "--answers", ans, "--headless", "--yes", "--db", db)
		fig.runs++
		id := runID(t, r.stdout)
		runIDs = append(runIDs, id)
		snapshots[id] = recordedEvents(t, db, id)
		refused := false
		for try := 0; r.code != 0; try++ {
			checkStop(id, r)
			fig.stopped++
			if strings.Contains(r.stdout+r.stderr, "refused by rule join-unique-node-id") {
				// A join cut short by a kill left node4 a member without its
				// credentials: the agent refuses to let it join again and says
				// so by rule. That is a clear stop; the operator does what the
				// message says (remove it, clean it) and starts a new run.
				fig.refused++
				refused = true
				_ = l.Agent(context.Background(), "node1", nil, nil, "cluster", "remove", "--node", "node4")
				_ = l.Agent(context.Background(), "node4", nil, nil, "cluster", "reset", "--delete-data")
				break
			}
			if try == 40 {
				t.Fatalf("run %s did not succeed after %d resumes; last:\n%s%s", id, try, r.stdout, r.stderr)
			}
			pause(context.Background(), 500*time.Millisecond) // let the killed agent come back
			r = drbook(t, nil, "resume", id, "--yes", "--db", db)
			fig.resumes++
		}
		if !refused {
			fig.succeeded++
		}
		evs := recordedEvents(t, db, id)
		fig.eventsLost += assertPrefix(t, snapshots[id], evs)
		snapshots[id] = evs
	}
	<-faultsDone
	wg.Wait()
	fig.faults = int(faults.Load())
	t.Logf("runs and faults over after %s", time.Since(start).Round(time.Millisecond))

	// Every record verifies.
	for _, id := range runIDs {
		verifyRecord(t, db, id)
	}
	// The key history is linearizable.
	fig.ops = len(history)
	for _, op := range history {
		if op.Output.(keyRes).Ambiguous {
			fig.ambiguous++
		}
	}
	if fig.ops < 20 {
		t.Errorf("only %d key operations recorded", fig.ops)
	}
	t0 := time.Now()
	res, _ := porcupine.CheckOperationsVerbose(presenceModel(), history, 20*time.Second)
	t.Logf("linearizability check of %d operations: %s (%s)", len(history), res, time.Since(t0).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		t.Error("the key history is not linearizable")
	case porcupine.Unknown:
		t.Log("linearizability check timed out (no violation found)")
	}
	// The manifest holds every acknowledged write and nothing never attempted.
	waitCtx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	if err := l.WaitHealthy(waitCtx, 3, time.Minute); err != nil {
		t.Fatalf("cluster not healthy after the soak: %v", err)
	}
	var m nodeagent.Manifest
	if err := l.Agent(waitCtx, "node1", nil, &m, "keys", "manifest"); err != nil {
		t.Fatal(err)
	}
	inStore := map[string]bool{}
	for _, e := range m.Keys {
		inStore[e.ID] = true
		if strings.HasPrefix(e.ID, "ack-") && !acked[e.ID] && !ambiguousAcks[e.ID] {
			t.Errorf("key %s is in the store but was never written", e.ID)
		}
	}
	for id := range acked {
		if !inStore[id] {
			t.Errorf("acknowledged write %s is missing from the manifest", id)
		}
	}
	fig.acked, fig.ackAmbiguous = len(acked), len(ambiguousAcks)
	figMu.Lock()
	defer figMu.Unlock()
	t.Logf("soak %s: faults injected %d (agent kill -9 + restart); runs %d, succeeded %d, refused by join-unique-node-id %d, stops %d (all failed/interrupted with a resume hint), resumes %d; events lost %d; key ops %d (%d ambiguous) linearizable=%v; acknowledged writes %d all in the manifest (%d ambiguous)",
		time.Since(start).Round(time.Second), fig.faults, fig.runs, fig.succeeded, fig.refused, fig.stopped, fig.resumes, fig.eventsLost, fig.ops, fig.ambiguous, res != porcupine.Illegal, fig.acked, fig.ackAmbiguous)
	if fig.faults == 0 || fig.runs == 0 {
		t.Errorf("the soak injected %d faults over %d runs", fig.faults, fig.runs)
	}
}

// pause waits d or until ctx ends: the pacing of fault injection, not a
// wait for a condition.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// runStatus reads a run's recorded status.
func runStatus(t *testing.T, db, id string) string {
	t.Helper()
	d, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var st string
	if err := d.QueryRow(`SELECT status FROM runs WHERE id = ?`, id).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return st
}
