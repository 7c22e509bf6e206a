// Package sshtest starts real SSH servers on 127.0.0.1 for tests: a private
// Debian OpenSSH sshd (StartOpenSSH) or the node agent's in-process lab SSH
// server (StartLab). Both return a Server with everything needed to build a
// transport.SSHConfig: address, login user, client key and a known_hosts
// file that trusts the server's host key.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Server is a running SSH server for tests.
type Server struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Host and Port split Addr.
	Host string
	Port int
	// User is the login user.
	User string
	// IdentityFile is the client's private key (mode 0600).
	IdentityFile string
	// KnownHostsFile trusts the server's host key for [Host]:Port.
	KnownHostsFile string
	// Dir is a scratch directory (mode 1777) that commands run as User can
	// write to; it is removed when the test ends.
	Dir string
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey

	kind            string
	killConnections func(t testing.TB) int
}

// Kind returns "openssh" or "lab".
func (s *Server) Kind() string { return s.kind }

// KillConnections abruptly ends every client connection the server holds,
// as a crash of the server side would (the listener stays up), and returns
// how many it ended.
func (s *Server) KillConnections(t testing.TB) int {
	t.Helper()
	return s.killConnections(t)
}

// scratchDir creates a world-writable (sticky) scratch directory outside
// t.TempDir (whose 0700 parent would lock out a non-root login user) and
// removes it when the test ends.
func scratchDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "drbook-sshtest-")
	if err != nil {
		t.Fatalf("sshtest: scratch dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		t.Fatalf("sshtest: chmod scratch dir: %v", err)
	}
	return dir
}

// WriteKey generates an ed25519 key pair, writes the private key in OpenSSH
// format to path (mode 0600) and returns the public key.
func WriteKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "drbook-sshtest")
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	// #nosec G306 -- a public key
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return nil, fmt.Errorf("write public key: %w", err)
	}
	return sshPub, nil
}

// WriteKnownHosts writes a known_hosts file trusting key for hostport.
func WriteKnownHosts(path, hostport string, key ssh.PublicKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(hostport)}, key) + "\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	return nil
}

// clientFiles creates the client key (authorized in authorizedKeys) and
// fills s.IdentityFile.
func clientKey(t testing.TB, dir, authorizedKeys string) {
	t.Helper()
	pub, err := WriteKey(filepath.Join(dir, "id_ed25519"))
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	// #nosec G306 -- test helper: authorized_keys holds a public key and sshd (another user) must read it
	if err := os.WriteFile(authorizedKeys, ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		t.Fatalf("sshtest: write authorized_keys: %v", err)
	}
}

func splitAddr(t testing.TB, addr string) (string, int) {
	t.Helper()
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("sshtest: address %q: %v", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("sshtest: port in %q: %v", addr, err)
	}
	return host, port
}

// proc is one entry of /proc.
type proc struct {
	pid, ppid, pgid int
	comm            string
}

// procs lists the processes of this machine.
func procs() []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parens.
		open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(string(b[closing+1:]))
		if len(fields) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		pgid, _ := strconv.Atoi(fields[2])
		out = append(out, proc{pid: pid, ppid: ppid, pgid: pgid, comm: string(b[open+1 : closing])})
	}
	return out
}

// descendants returns every process below root, parents before children.
func descendants(root int) []proc {
	all := procs()
	children := make(map[int][]proc)
	for _, p := range all {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// PIDsWithArg returns the pids of processes whose command line contains
// marker. Tests use it to check that a remote command is (or is no longer)
// running; the servers are on this machine.
func PIDsWithArg(marker string) []int {
	self := os.Getpid()
	var pids []int
	for _, p := range procs() {
		if p.pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(marker)) {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// KillPIDs sends SIGKILL to pids (processes a test started and identified).
func KillPIDs(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// KillMarked SIGKILLs every process whose command line contains marker,
// together with its process group (a remote command's children, such as a
// sleep below a marked shell), except the caller's own group. Tests use it
// to clean up commands they started with a unique marker.
func KillMarked(marker string) {
	marked := make(map[int]bool)
	for _, pid := range PIDsWithArg(marker) {
		marked[pid] = true
	}
	self := syscall.Getpgrp()
	for _, p := range procs() {
		if !marked[p.pid] {
			continue
		}
		if p.pgid > 1 && p.pgid != self {
			_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		}
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
}
