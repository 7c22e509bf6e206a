package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/steps/transport"
)

// TestNodesDialledBeforeFirstStep: Start dials the nodes in the background
// while it creates the run's record, but no step runs before every dial has
// finished (a slow node holds the first step back, as the preflight always
// did).
func TestNodesDialledBeforeFirstStep(t *testing.T) {
	f := newFixture(t, 2)
	src := header + `steps:
  - id: first
    run: shell
    on: node1
    with: {command: 'date +%s%N > "$NODE_DIR/first"'}
`
	cfg := f.config(t, src, nil)
	var mu sync.Mutex
	var dialled time.Time // when the slow node's dial ended
	cfg.Dial = func(ctx context.Context, n *runbooks.Node) (transport.Transport, error) {
		if n.Name == "node2" {
			select { // the slow node
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			mu.Lock()
			dialled = time.Now()
			mu.Unlock()
		}
		return &transport.Local{BaseEnv: os.Environ()}, nil
	}
	if _, err := engine.Start(context.Background(), cfg, nil); err != nil {
		t.Fatalf("run: %v\n%s", err, f.rec.lines())
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "node1", "first"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(string(b[:len(b)-1]), 10, 64)
	if err != nil {
		t.Fatalf("step output %q: %v", b, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if dialled.IsZero() {
		t.Fatal("the slow node's dial did not finish: the run did not wait for it")
	}
	if ran := time.Unix(0, ns); ran.Before(dialled) {
		t.Errorf("the first step ran at %v, %v before the last node was dialled", ran, dialled.Sub(ran))
	}
}

// TestRunEndingBeforePreflightStopsDials: a run that ends before its
// preflight (here a guard that fails the precheck) gives up the dials
// Start began instead of waiting for a node that does not answer.
func TestRunEndingBeforePreflightStopsDials(t *testing.T) {
	f := newFixture(t, 1)
	src := header + `inputs:
  mode: {type: string, prompt: Mode}
steps:
  - id: a
    run: shell
    on: node1
    when: inputs.mode
    with: {command: 'true'}
`
	rb, err := runbooks.ParseRunbook("rb.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.config(t, header+"steps:\n  - id: a\n    run: shell\n    on: node1\n    with: {command: 'true'}\n", nil)
	cfg.Runbook = rb
	gaveUp := make(chan struct{})
	cfg.Dial = func(ctx context.Context, n *runbooks.Node) (transport.Transport, error) {
		<-ctx.Done() // a node that never answers
		close(gaveUp)
		return nil, ctx.Err()
	}
	start := time.Now()
	_, err = engine.Start(context.Background(), cfg, map[string]runbooks.Value{"mode": {V: "full"}})
	if !errors.Is(err, engine.ErrPrecheck) {
		t.Fatalf("err = %v, want ErrPrecheck", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Start took %v: it waited for the dial of a node that does not answer", took)
	}
	select {
	case <-gaveUp:
	case <-time.After(10 * time.Second):
		t.Fatal("the dial was not given up")
	}
}
