package transport_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// countingDial dials srv for every node name and counts the dials.
func countingDial(srv *sshtest.Server, dials *atomic.Int64) func(context.Context, string) (transport.Transport, error) {
	return func(ctx context.Context, name string) (transport.Transport, error) {
		dials.Add(1)
		cfg := sshConfig(srv)
		cfg.Name = name
		cfg.ConnectTimeout = 20 * time.Second
		return transport.DialSSH(ctx, cfg)
	}
}

func TestPoolConcurrentNodes(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		var dials atomic.Int64
		p := transport.NewPool(countingDial(srv, &dials))
		defer p.Close()
		const nodes = 50
		var wg sync.WaitGroup
		errs := make(chan error, 2*nodes)
		for i := range 2 * nodes { // two Gets per name: they must share one dial
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("node-%02d", i%nodes)
				tr, err := p.Get(t.Context(), name)
				if err != nil {
					errs <- err
					return
				}
				var out buffer
				code, err := tr.Run(t.Context(), transport.Command{Line: `echo "$N"`, Env: map[string]string{"N": name}, Stdout: &out})
				if err != nil || code != 0 || out.String() != name+"\n" {
					errs <- fmt.Errorf("%s: exit %d, %v, output %q", name, code, err, out.String())
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := dials.Load(); got != nodes {
			t.Errorf("%d dials for %d nodes, want one per node", got, nodes)
		}
		// Already connected: DialAll dials nothing.
		names := make([]string, nodes)
		for i := range names {
			names[i] = fmt.Sprintf("node-%02d", i)
		}
		if err := p.DialAll(t.Context(), names, 8); err != nil {
			t.Fatal(err)
		}
		if got := dials.Load(); got != nodes {
			t.Errorf("DialAll redialled live nodes: %d dials", got)
		}
	})
}

func TestPoolRedialsDeadConnection(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		var dials atomic.Int64
		p := transport.NewPool(countingDial(srv, &dials))
		defer p.Close()
		if err := p.DialAll(t.Context(), []string{"a", "b"}, 2); err != nil {
			t.Fatal(err)
		}
		first, err := p.Get(t.Context(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if n := srv.KillConnections(t); n != 2 {
			t.Errorf("killed %d connections, want 2", n)
		}
		waitFor(t, 3*time.Second, "the connection to be seen dead", func() bool {
			return !first.(*transport.SSH).Alive()
		})
		second, err := p.Get(t.Context(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if second == first {
			t.Fatal("Get returned the dead transport")
		}
		if code, err := second.Run(t.Context(), transport.Command{Line: "exit 5"}); err != nil || code != 5 {
			t.Errorf("Run on the redialled transport = %d, %v", code, err)
		}
		if got := dials.Load(); got != 3 {
			t.Errorf("%d dials, want 3 (a, b, a again)", got)
		}
	})
}

func TestPoolDialErrors(t *testing.T) {
	var dials atomic.Int64
	boom := errors.New("boom")
	p := transport.NewPool(func(ctx context.Context, name string) (transport.Transport, error) {
		if dials.Add(1) == 1 {
			return nil, boom
		}
		return &transport.Local{}, nil
	})
	if _, err := p.Get(t.Context(), "x"); !errors.Is(err, boom) || !strings.Contains(err.Error(), "x") {
		t.Fatalf("first Get: %v, want boom naming the node", err)
	}
	if _, err := p.Get(t.Context(), "x"); err != nil {
		t.Fatalf("second Get (errors are not cached): %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(t.Context(), "x"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
}

func TestPoolDialAllBoundsConcurrency(t *testing.T) {
	const limit, nodes = 3, 20
	var inFlight, peak atomic.Int64
	release := make(chan struct{})
	p := transport.NewPool(func(ctx context.Context, name string) (transport.Transport, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &transport.Local{}, nil
	})
	defer p.Close()
	names := make([]string, nodes)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.DialAll(t.Context(), names, limit) }()
	waitFor(t, 2*time.Second, "the first dials", func() bool { return inFlight.Load() == limit })
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := peak.Load(); got != limit {
		t.Errorf("peak concurrent dials = %d, want %d", got, limit)
	}
}
