package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// sshConfig builds an engine config whose nodes are n aliases of one SSH
// server, with a real checkpoint database.
func sshConfig(b *testing.B, srv *sshtest.Server, n int, src string) (engine.Config, *state.DB) {
	var inv strings.Builder
	fmt.Fprintf(&inv, "apiVersion: drbook/v1\nkind: Inventory\nnodes:\n")
	var names []string
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&inv, "  - name: node%d\n    host: %s\n    port: %d\n", i, srv.Host, srv.Port)
		names = append(names, fmt.Sprintf("node%d", i))
	}
	fmt.Fprintf(&inv, "groups:\n  all: [%s]\n", strings.Join(names, ", "))
	iv, err := runbooks.ParseInventory("inv.yaml", []byte(inv.String()))
	if err != nil {
		b.Fatal(err)
	}
	reg := steps.NewRegistry()
	rb, err := runbooks.LoadRunbook("bench.yaml", []byte(src), reg, iv)
	if err != nil {
		b.Fatal(err)
	}
	db, err := state.Open(context.Background(), filepath.Join(b.TempDir(), "drbook.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return engine.Config{
		Runbook: rb, Inventory: iv, Registry: reg, Store: db, Operator: &engine.Headless{Yes: true},
		Dial: func(ctx context.Context, node *runbooks.Node) (transport.Transport, error) {
			return transport.DialSSH(ctx, transport.SSHConfig{Name: node.Name, Host: node.Host, Port: node.Port, User: srv.User,
				IdentityFile: srv.IdentityFile, KnownHostsFile: srv.KnownHostsFile})
		},
	}, db
}

// BenchmarkRun200TrueOverSSH runs a 200-step runbook of `true` on one node
// over OpenSSH with durable checkpoints, and reports the median time per
// step (from one step settled to the next, so it includes both checkpoints).
func BenchmarkRun200TrueOverSSH(b *testing.B) {
	srv := sshtest.StartOpenSSH(b)
	var src strings.Builder
	src.WriteString(header + "steps:\n")
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&src, "  - id: s%d\n    run: shell\n    on: node1\n    with: {command: 'true'}\n", i)
	}
	cfg, _ := sshConfig(b, srv, 1, src.String())
	var all []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var last time.Time
		var per []time.Duration
		cfg.Observer = func(ev runlog.Event) {
			if e, ok := ev.(runlog.Recorded); ok && e.Event.Type == state.EvStepFinished {
				if !last.IsZero() {
					per = append(per, e.Event.Time.Sub(last))
				}
				last = e.Event.Time
			}
		}
		if _, err := engine.Start(context.Background(), cfg, nil); err != nil {
			b.Fatal(err)
		}
		all = append(all, per...)
	}
	b.StopTimer()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "median-ms/step")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms/step")
	}
}

// BenchmarkFanOut runs one step (sleep 0.2, a stand-in for real work) on 1
// and on 50 node aliases of one server, connections already open, and
// reports the ratio of the two times.
func BenchmarkFanOut(b *testing.B) {
	srv := sshtest.StartOpenSSH(b)
	src := header + "steps:\n  - id: work\n    run: shell\n    on: all\n    with: {command: 'sleep 0.2'}\n"
	measure := func(n int) time.Duration {
		cfg, _ := sshConfig(b, srv, n, src)
		var t0, t1 time.Time
		cfg.Observer = func(ev runlog.Event) {
			switch e := ev.(type) {
			case runlog.StepPending:
				t0 = e.Time
			case runlog.Recorded:
				if e.Event.Type == state.EvStepFinished {
					t1 = e.Event.Time
				}
			}
		}
		if _, err := engine.Start(context.Background(), cfg, nil); err != nil {
			b.Fatal(err)
		}
		return t1.Sub(t0)
	}
	var one, fifty time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		one += measure(1)
		fifty += measure(50)
	}
	b.ReportMetric(float64(one.Milliseconds())/float64(b.N), "ms/1-node")
	b.ReportMetric(float64(fifty.Milliseconds())/float64(b.N), "ms/50-nodes")
	b.ReportMetric(float64(fifty)/float64(one), "ratio")
}

var _ = os.Getpid
