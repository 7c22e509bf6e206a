package transport_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// serveAgent serves an in-memory ssh-agent holding the key at keyFile on a
// unix socket and returns the socket's path.
func serveAgent(t *testing.T, keyFile string) string {
	t.Helper()
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); _ = agent.ServeAgent(keyring, c) }()
		}
	}()
	return sock
}

func TestSSHAgentAuth(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		cfg := sshConfig(srv)
		cfg.IdentityFile = ""
		t.Setenv("SSH_AUTH_SOCK", "")
		if _, err := transport.DialSSH(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK") {
			t.Fatalf("DialSSH without key or agent: %v, want an error naming SSH_AUTH_SOCK", err)
		}
		t.Setenv("SSH_AUTH_SOCK", serveAgent(t, srv.IdentityFile))
		s, err := transport.DialSSH(t.Context(), cfg)
		if err != nil {
			t.Fatalf("DialSSH with ssh-agent: %v", err)
		}
		if code, err := s.Run(t.Context(), transport.Command{Line: "exit 9"}); err != nil || code != 9 {
			t.Errorf("Run = %d, %v", code, err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
}

func TestSSHWrongIdentityIsRefused(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		cfg := sshConfig(srv)
		cfg.IdentityFile = filepath.Join(t.TempDir(), "other")
		if _, err := sshtest.WriteKey(cfg.IdentityFile); err != nil {
			t.Fatal(err)
		}
		_, err := transport.DialSSH(t.Context(), cfg)
		if err == nil {
			t.Fatal("DialSSH with an unauthorized key succeeded")
		}
		if errors.Is(err, transport.ErrUnknownHost) || errors.Is(err, transport.ErrHostKeyMismatch) {
			t.Errorf("auth failure reported as a host key problem: %v", err)
		}
	})
}
