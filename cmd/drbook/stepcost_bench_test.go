package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// BenchmarkStepCost measures, in one run against one local OpenSSH server,
// what a step of `true` costs in a whole headless `drbook run` with durable
// checkpoints, next to the floor: a bare SSH session running `true` on an
// already open connection. bench/steps.sh runs it.
//
// Reported metrics:
//   - margin-ms/step: (wall time of a 51-step run − wall time of a 1-step
//     run) / 50: what each further step costs.
//   - floor-ms/session: one bare x/crypto/ssh session running `true` on an
//     open connection.
//   - transport-ms/session: the same through drbook's SSH transport (exec
//     wrapper that reads the script from stdin, output plumbing).
//   - above-floor-ms/step: margin − floor, within each round.
//
// Every figure is the median over 5 rounds; each round measures the floor
// before, between and after its two runs.
//   - drbook-cpu-ms/step: the drbook process's CPU time (user + system)
//     per further step, which a busy machine inflates much less than
//     wall time.
//   - startup-ms: process start to the first step's start (the step.started
//     event's time in the stream, minus the time drbook was exec'd).
func BenchmarkStepCost(b *testing.B) {
	srv := sshtest.StartOpenSSH(b)
	dir := b.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	must(b, os.WriteFile(inv, []byte(fmt.Sprintf("apiVersion: drbook/v1\nkind: Inventory\nname: bench\nssh:\n  user: %s\n  identity_file: %s\n  known_hosts: %s\nnodes:\n  - name: node1\n    host: %s\n    port: %d\n",
		srv.User, srv.IdentityFile, srv.KnownHostsFile, srv.Host, srv.Port)), 0o600))
	book := func(n int) string {
		var s strings.Builder
		fmt.Fprintf(&s, "apiVersion: drbook/v1\nkind: Runbook\nname: bench%d\nsteps:\n", n)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&s, "  - id: s%d\n    run: shell\n    on: node1\n    with: {command: 'true'}\n", i)
		}
		p := filepath.Join(dir, fmt.Sprintf("bench%d.yaml", n))
		must(b, os.WriteFile(p, []byte(s.String()), 0o600))
		return p
	}
	const many = 51
	one, fifty := book(1), book(many)
	db := filepath.Join(dir, "drbook.db")
	run := func(rb string) (wall, startup, cpu time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, drbookBin, "run", rb, "-i", inv, "--db", db, "--headless", "--yes", "-o", "json")
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		t0 := time.Now()
		out, err := cmd.Output()
		wall = time.Since(t0)
		if err != nil {
			b.Fatalf("drbook run %s: %v\n%s", rb, err, out)
		}
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		for _, line := range strings.Split(strings.ToLower(string(out)), "\n") {
			if strings.Contains(line, `"step.started"`) || strings.Contains(line, `"stepstarted"`) {
				i := strings.Index(line, `"time":"`)
				if i >= 0 {
					ts := line[i+8:]
					ts = ts[:strings.IndexByte(ts, '"')]
					if t1, err := time.Parse(time.RFC3339Nano, strings.ToUpper(ts)); err == nil {
						startup = t1.Sub(t0)
					}
				}
				break
			}
		}
		return wall, startup, cpu
	}
	// The floor: a bare x/crypto/ssh session running `true` on one open
	// connection (what any Go SSH client pays), and the same through
	// drbook's transport (its exec wrapper, output plumbing).
	key, err := os.ReadFile(srv.IdentityFile)
	must(b, err)
	signer, err := ssh.ParsePrivateKey(key)
	must(b, err)
	hostKeys, err := knownhosts.New(srv.KnownHostsFile)
	must(b, err)
	client, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys, Timeout: 10 * time.Second})
	must(b, err)
	defer client.Close()
	tr, err := transport.DialSSH(context.Background(), transport.SSHConfig{Name: "floor", Host: srv.Host, Port: srv.Port, User: srv.User,
		IdentityFile: srv.IdentityFile, KnownHostsFile: srv.KnownHostsFile})
	must(b, err)
	defer tr.Close()
	const sessions = 20
	floor := func() time.Duration {
		t0 := time.Now()
		for i := 0; i < sessions; i++ {
			sess, err := client.NewSession()
			must(b, err)
			must(b, sess.Run("true"))
			_ = sess.Close()
		}
		return time.Since(t0) / sessions
	}
	wrapped := func() time.Duration {
		t0 := time.Now()
		for i := 0; i < sessions; i++ {
			if _, err := tr.Run(context.Background(), transport.Command{Line: "true"}); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0) / sessions
	}
	_, _, _ = run(one) // warm the page cache and the database
	// Rounds interleave the floor with the runs, and each round's figures
	// are compared within the round, so that a busy machine (other load
	// comes and goes) skews both sides alike.
	const rounds = 5
	var margins, floors, aboves, transports, startups, cpus []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			f1 := floor()
			w1, st, c1 := run(one)
			f2 := floor()
			w50, _, c50 := run(fifty)
			f3 := floor()
			margin := ms(w50-w1) / (many - 1)
			fl := median([]float64{ms(f1), ms(f2), ms(f3)})
			margins = append(margins, margin)
			floors = append(floors, fl)
			aboves = append(aboves, margin-fl)
			startups = append(startups, ms(st))
			cpus = append(cpus, ms(c50-c1)/(many-1))
			transports = append(transports, ms(wrapped()))
		}
	}
	b.StopTimer()
	b.ReportMetric(median(margins), "margin-ms/step")
	b.ReportMetric(median(floors), "floor-ms/session")
	b.ReportMetric(median(aboves), "above-floor-ms/step")
	b.ReportMetric(median(transports), "transport-ms/session")
	b.ReportMetric(median(startups), "startup-ms")
	b.ReportMetric(median(cpus), "drbook-cpu-ms/step")
	b.ReportMetric(0, "ns/op")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
