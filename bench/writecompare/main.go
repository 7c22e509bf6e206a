// Command writecompare measures the write throughput of a three-node
// drbook-agent cluster and of a three-member etcd cluster on the same
// machine, in one run, with the same load generator and concurrency.
//
// It starts both clusters on 127.0.0.1 (fresh data directories under a
// temporary directory, removed at the end), then drives each in turn with
// the same workers: every request writes one new key of -size random bytes,
// as JSON over HTTP/1.1 to the leader — the agent's HTTPS key API
// (PUT /v1/keys/{id}, API key) and etcd's JSON gateway (POST /v3/kv/put,
// plain HTTP, no auth). Each system is measured -rounds times, alternating,
// and the median rates and their ratio are printed.
//
// Usage:
//
//	go build -o /tmp/drbook-agent ./cmd/drbook-agent
//	go run ./bench/writecompare -agent /tmp/drbook-agent -etcd etcd -n 20000 -c 64
//
// bench/compare-etcd.sh does both. It is a benchmark, not a test: CI does
// not run it.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		slog.Error("writecompare", "err", err)
		os.Exit(1)
	}
}

type config struct {
	agent, etcd  string
	n, c, size   int
	rounds       int
	opTimeout    time.Duration
	keepTempDirs bool
}

func run() error {
	var cfg config
	flag.StringVar(&cfg.agent, "agent", "drbook-agent", "drbook-agent binary")
	flag.StringVar(&cfg.etcd, "etcd", "etcd", "etcd binary (3.4)")
	flag.IntVar(&cfg.n, "n", 20000, "writes per system per round")
	flag.IntVar(&cfg.c, "c", 64, "concurrent clients (one connection each)")
	flag.IntVar(&cfg.size, "size", 32, "value bytes per key")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds per system (alternating)")
	flag.DurationVar(&cfg.opTimeout, "op-timeout", 10*time.Second, "timeout of one write")
	flag.BoolVar(&cfg.keepTempDirs, "keep", false, "keep the data directories")
	flag.Parse()
	if cfg.n <= 0 || cfg.c <= 0 || cfg.size <= 0 || cfg.rounds <= 0 {
		return errors.New("-n, -c, -size and -rounds must be positive")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "writecompare")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	if !cfg.keepTempDirs {
		defer os.RemoveAll(tmp)
	}
	var procs procSet
	defer procs.stopAll()

	agentTarget, err := startAgents(ctx, &procs, cfg, filepath.Join(tmp, "agent"))
	if err != nil {
		return err
	}
	etcdTarget, err := startEtcd(ctx, &procs, cfg, filepath.Join(tmp, "etcd"))
	if err != nil {
		return err
	}
	fmt.Printf("load: %d writes of %d-byte values per round, %d concurrent clients, HTTP/1.1 JSON to the leader; %d rounds each, alternating\n",
		cfg.n, cfg.size, cfg.c, cfg.rounds)
	var agentRates, etcdRates []float64
	for r := range cfg.rounds {
		for _, tg := range []*target{agentTarget, etcdTarget} {
			rate, fails, el, err := drive(ctx, tg, cfg, r)
			if err != nil {
				return err
			}
			fmt.Printf("round %d %-28s %8.0f writes/s  (%d writes in %s, %d failed)\n", r+1, tg.name, rate, cfg.n, el.Round(time.Millisecond), fails)
			if tg == agentTarget {
				agentRates = append(agentRates, rate)
			} else {
				etcdRates = append(etcdRates, rate)
			}
		}
	}
	// Every acknowledged write is there: count the keys in each system.
	for _, tg := range []*target{agentTarget, etcdTarget} {
		got, err := tg.count(ctx)
		if err != nil {
			return fmt.Errorf("%s: count keys: %w", tg.name, err)
		}
		fmt.Printf("%-28s holds %d keys, %d writes acknowledged\n", tg.name, got, tg.acked.Load())
		if got < tg.acked.Load() {
			return fmt.Errorf("%s holds %d keys but acknowledged %d writes", tg.name, got, tg.acked.Load())
		}
	}
	a, e := median(agentRates), median(etcdRates)
	fmt.Printf("median: drbook-agent %.0f writes/s, etcd %.0f writes/s, ratio agent/etcd %.2f\n", a, e, a/e)
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// target is one system under load.
type target struct {
	name   string
	client *http.Client
	// request builds the write of key i with value v.
	request func(ctx context.Context, key string, v []byte) (*http.Request, error)
	// count returns the number of keys the system holds.
	count func(ctx context.Context) (int64, error)
	acked atomic.Int64
}

// drive runs cfg.n writes with cfg.c workers and returns the rate of
// successful writes.
func drive(ctx context.Context, tg *target, cfg config, round int) (float64, int64, time.Duration, error) {
	var next, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := range cfg.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := make([]byte, cfg.size)
			for {
				i := next.Add(1)
				if i > int64(cfg.n) || ctx.Err() != nil {
					return
				}
				_, _ = rand.Read(v)
				key := fmt.Sprintf("bench-r%d-w%d-%d", round, w, i)
				if err := write(ctx, tg, key, v, cfg.opTimeout); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					tg.acked.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %w", tg.name, err)
	}
	if e, ok := firstErr.Load().(error); ok {
		slog.Warn("write failed", "system", tg.name, "failed", failed.Load(), "first", e)
	}
	ok := int64(cfg.n) - failed.Load()
	return float64(ok) / el.Seconds(), failed.Load(), el, nil
}

func write(ctx context.Context, tg *target, key string, v []byte, timeout time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := tg.request(rctx, key, v)
	if err != nil {
		return err
	}
	resp, err := tg.client.Do(req)
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("write %s: %s: %s", key, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// transport is the HTTP/1.1 transport both systems get (tlsCfg nil: plain).
func transport(conns int, tlsCfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsCfg,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
	}}
}

// procSet is the processes started, stopped by PID at the end.
type procSet struct {
	mu    sync.Mutex
	procs []*exec.Cmd
	done  []chan struct{}
}

func (p *procSet) start(ctx context.Context, logFile string, name string, args ...string) error {
	f, err := os.Create(logFile) // #nosec G304 -- under our temp dir
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	cmd := exec.CommandContext(ctx, name, args...) // #nosec G204 -- the binaries the user named
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.procs, p.done = append(p.procs, cmd), append(p.done, done)
	p.mu.Unlock()
	go func() { _ = cmd.Wait(); _ = f.Close(); close(done) }()
	return nil
}

func (p *procSet) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.procs {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i, c := range p.procs {
		select {
		case <-p.done[i]:
		case <-time.After(time.Until(deadline)):
			_ = c.Process.Kill()
			<-p.done[i]
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// agentCLI runs a drbook-agent verb with --output json and decodes stdout.
func agentCLI(ctx context.Context, bin, dir string, out any, args ...string) error {
	full := append([]string{"--data", dir, "--output", "json"}, args...)
	var so, se bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, full...) // #nosec G204 -- the binary the user named
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("drbook-agent %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(se.Bytes()))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(so.Bytes(), out); err != nil {
		return fmt.Errorf("drbook-agent %s: decode: %w", strings.Join(args, " "), err)
	}
	return nil
}

func retry(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startAgents starts three agents, bootstraps node1, joins the others and
// returns the leader's key API as a target.
func startAgents(ctx context.Context, procs *procSet, cfg config, base string) (*target, error) {
	type agent struct{ dir, api string }
	var agents []agent
	for i := 1; i <= 3; i++ {
		ap, err := freePort()
		if err != nil {
			return nil, err
		}
		rp, err := freePort()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(base, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		a := agent{dir: dir, api: fmt.Sprintf("127.0.0.1:%d", ap)}
		if err := procs.start(ctx, dir+".log", cfg.agent, "serve", "--data", dir, "--node-id", fmt.Sprintf("node%d", i),
			"--api", a.api, "--raft", fmt.Sprintf("127.0.0.1:%d", rp), "--log-level", "warn"); err != nil {
			return nil, err
		}
		if err := retry(ctx, 20*time.Second, func() error { return agentCLI(ctx, cfg.agent, dir, &json.RawMessage{}, "status") }); err != nil {
			return nil, fmt.Errorf("agent node%d did not answer: %w", i, err)
		}
		agents = append(agents, a)
	}
	var br struct {
		APIKey string `json:"api_key"`
	}
	if err := agentCLI(ctx, cfg.agent, agents[0].dir, &br, "cluster", "create"); err != nil {
		return nil, err
	}
	if br.APIKey == "" {
		return nil, errors.New("cluster create gave no API key")
	}
	for _, a := range agents[1:] {
		var tr struct {
			Token string `json:"token"`
		}
		if err := agentCLI(ctx, cfg.agent, agents[0].dir, &tr, "token", "create"); err != nil {
			return nil, err
		}
		tf := a.dir + ".token"
		if err := os.WriteFile(tf, []byte(tr.Token+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		if err := agentCLI(ctx, cfg.agent, a.dir, nil, "cluster", "join", "--peer", agents[0].api, "--token-file", tf); err != nil {
			return nil, err
		}
	}
	var leader string
	err := retry(ctx, 20*time.Second, func() error {
		for _, a := range agents {
			var st struct {
				State   string `json:"state"`
				Healthy int    `json:"healthy"`
			}
			if err := agentCLI(ctx, cfg.agent, a.dir, &st, "status"); err != nil {
				return err
			}
			if st.State == "leader" && st.Healthy == 3 {
				leader = a.api
				return nil
			}
		}
		return errors.New("no leader seeing 3 healthy members")
	})
	if err != nil {
		return nil, fmt.Errorf("agent cluster: %w", err)
	}
	pem, err := os.ReadFile(filepath.Join(agents[0].dir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("bad CA PEM")
	}
	client := transport(cfg.c, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})
	leaderDir := agents[0].dir
	for _, a := range agents {
		if a.api == leader {
			leaderDir = a.dir
		}
	}
	return &target{
		name: "drbook-agent (3, HTTPS)",
		count: func(ctx context.Context) (int64, error) {
			var cr struct {
				Keys int64 `json:"keys"`
			}
			err := agentCLI(ctx, cfg.agent, leaderDir, &cr, "keys", "count")
			return cr.Keys, err
		},
		client: client,
		request: func(ctx context.Context, key string, v []byte) (*http.Request, error) {
			body, _ := json.Marshal(map[string]any{"material": v})
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+leader+"/v1/keys/"+key, bytes.NewReader(body))
			if err != nil {
				return nil, fmt.Errorf("request: %w", err)
			}
			req.Header.Set("Authorization", "Bearer "+br.APIKey)
			req.Header.Set("Content-Type", "application/json")
			return req, nil
		},
	}, nil
}

// startEtcd starts three etcd members and returns the leader's JSON
// gateway as a target.
func startEtcd(ctx context.Context, procs *procSet, cfg config, base string) (*target, error) {
	type member struct{ name, client, peer string }
	var ms []member
	var initial []string
	for i := 1; i <= 3; i++ {
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		m := member{name: fmt.Sprintf("e%d", i), client: fmt.Sprintf("http://127.0.0.1:%d", cp), peer: fmt.Sprintf("http://127.0.0.1:%d", pp)}
		ms = append(ms, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	for _, m := range ms {
		dir := filepath.Join(base, m.name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		if err := procs.start(ctx, dir+".log", cfg.etcd, "--name", m.name, "--data-dir", dir,
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "writecompare", "--log-level", "warn", "--logger", "zap"); err != nil {
			return nil, err
		}
	}
	client := transport(cfg.c, nil)
	var leader string
	err := retry(ctx, 30*time.Second, func() error {
		for _, m := range ms {
			var st struct {
				Header struct {
					MemberID string `json:"member_id"`
				} `json:"header"`
				Leader string `json:"leader"`
			}
			if err := postJSON(ctx, client, m.client+"/v3/maintenance/status", map[string]any{}, &st); err != nil {
				return err
			}
			if st.Leader != "" && st.Leader == st.Header.MemberID {
				leader = m.client
				return nil
			}
		}
		return errors.New("no etcd leader")
	})
	if err != nil {
		return nil, fmt.Errorf("etcd cluster: %w", err)
	}
	return &target{
		name: "etcd (3, HTTP gateway)",
		count: func(ctx context.Context) (int64, error) {
			var rr struct {
				Count string `json:"count"` // int64 as a JSON string
			}
			all := map[string]any{"key": base64.StdEncoding.EncodeToString([]byte{0}), "range_end": base64.StdEncoding.EncodeToString([]byte{0}), "count_only": true}
			if err := postJSON(ctx, client, leader+"/v3/kv/range", all, &rr); err != nil {
				return 0, err
			}
			var n int64
			if _, err := fmt.Sscan(rr.Count, &n); err != nil {
				return 0, fmt.Errorf("count %q: %w", rr.Count, err)
			}
			return n, nil
		},
		client: client,
		request: func(ctx context.Context, key string, v []byte) (*http.Request, error) {
			body, _ := json.Marshal(map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key)), "value": base64.StdEncoding.EncodeToString(v)})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, leader+"/v3/kv/put", bytes.NewReader(body))
			if err != nil {
				return nil, fmt.Errorf("request: %w", err)
			}
			req.Header.Set("Content-Type", "application/json")
			return req, nil
		},
	}, nil
}

func postJSON(ctx context.Context, c *http.Client, url string, in, out any) error {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("post %s: decode: %w", url, err)
	}
	return nil
}
