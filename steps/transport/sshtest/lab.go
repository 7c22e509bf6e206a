package sshtest

import (
	"context"
	"log/slog"
	"os/user"
	"path/filepath"
	"testing"

	"github.com/drbook/drbook/nodeagent/labssh"
)

// StartLab returns an in-process lab SSH server (the node agent's
// nodeagent/labssh) on 127.0.0.1 with a fresh host key and client key. It
// runs commands as the current user and is closed on cleanup.
func StartLab(t testing.TB) *Server {
	t.Helper()
	return StartLabWith(t, nil)
}

// StartLabWith is StartLab with a logger for the lab server (nil: discard).
func StartLabWith(t testing.TB, logger *slog.Logger) *Server {
	t.Helper()
	return StartLabShell(t, logger, "")
}

// StartLabShell is StartLabWith whose server runs each command with shell
// -c (its login shell; "" is /bin/sh).
func StartLabShell(t testing.TB, logger *slog.Logger, shell string) *Server {
	t.Helper()
	dir := scratchDir(t)
	authorized := filepath.Join(dir, "authorized_keys")
	clientKey(t, dir, authorized)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := labssh.Listen(ctx, labssh.Config{
		Addr:               "127.0.0.1:0",
		HostKeyFile:        filepath.Join(dir, "ssh_host_ed25519_key"),
		AuthorizedKeysFile: authorized,
		Shell:              shell,
		Logger:             logger,
	})
	if err != nil {
		cancel()
		t.Fatalf("sshtest: start lab server: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = srv.Close()
	})
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshtest: current user: %v", err)
	}
	s := &Server{Addr: srv.Addr(), User: u.Username, IdentityFile: filepath.Join(dir, "id_ed25519"),
		KnownHostsFile: filepath.Join(dir, "known_hosts"), Dir: dir, HostKey: srv.HostKey(), kind: "lab"}
	s.Host, s.Port = splitAddr(t, s.Addr)
	if err := WriteKnownHosts(s.KnownHostsFile, s.Addr, s.HostKey); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	s.killConnections = func(testing.TB) int { return srv.DropConnections() }
	return s
}
