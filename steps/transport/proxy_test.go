package transport_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// blackhole is a TCP proxy on 127.0.0.1 that can silently stop forwarding,
// as a dropped network does (no FIN, no RST: packets just vanish).
type blackhole struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, in, out)
			b.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); b.pipe(out, in) }()
			go func() { defer wg.Done(); b.pipe(in, out) }()
		}
	}()
	return b
}

// pipe copies src to dst, dropping everything while frozen.
func (b *blackhole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !b.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = dst.Close()
			}
			return
		}
	}
}

// via returns an SSH config that reaches srv through the proxy, trusting
// srv's host key under the proxy's address.
func (b *blackhole) via(t *testing.T, srv *sshtest.Server) transport.SSHConfig {
	t.Helper()
	cfg := sshConfig(srv)
	addr := b.ln.Addr().(*net.TCPAddr)
	cfg.Host, cfg.Port = "127.0.0.1", addr.Port
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	if err := transport.AppendKnownHost(cfg.KnownHostsFile, addr.String(), srv.HostKey); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestSSHKeepAliveDetectsDroppedNetwork(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		bh := newBlackhole(t, srv.Addr)
		cfg := bh.via(t, srv)
		cfg.KeepAlive = 200 * time.Millisecond
		s, err := transport.DialSSH(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		m := marker(t)
		t0 := time.Now()
		done := startMarked(t, t.Context(), s, m, nil)
		t.Logf("command started after %v", time.Since(t0).Round(time.Millisecond))
		start := time.Now()
		bh.frozen.Store(true)
		select {
		case err := <-done:
			if !errors.Is(err, transport.ErrConnLost) {
				t.Fatalf("err = %v, want ErrConnLost", err)
			}
			t.Logf("dropped network detected after %v", time.Since(start).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not notice the dropped network within 5 s (keepalive 200 ms: dead after 600 ms without an answer)")
		}
		if s.Alive() {
			t.Error("Alive() after the connection was dropped")
		}
	})
}

func TestDialSSHTimesOutOnSilentServer(t *testing.T) {
	srv := sshtest.StartLab(t)
	bh := newBlackhole(t, srv.Addr)
	bh.frozen.Store(true) // TCP accepts, nothing ever answers
	cfg := bh.via(t, srv)
	cfg.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	if s, err := transport.DialSSH(t.Context(), cfg); err == nil {
		_ = s.Close()
		t.Fatal("DialSSH succeeded through a silent network")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("DialSSH gave up after %v, want about ConnectTimeout (300 ms)", took)
	}

	cfg.ConnectTimeout = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := transport.DialSSH(ctx, cfg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DialSSH with an expiring ctx: %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("DialSSH ignored ctx for %v", took)
	}
}

func TestSSHConcurrentSessionsOnOneConnection(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		const n = 40
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, err := s.Run(t.Context(), transport.Command{Line: "sleep 0.2; exit $((I % 7))", Env: map[string]string{"I": string(rune('0' + i%10))}})
				if err != nil {
					errs <- err
				} else if code != (i%10)%7 {
					errs <- errors.New("wrong exit code")
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestSSHRunAfterClose(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := s.Run(t.Context(), transport.Command{Line: "true"}); err == nil {
			t.Error("Run on a closed transport succeeded")
		}
	})
}
