package sshtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Environment variables naming an already running sshd (CI's .ci/run starts
// one with .ci/setup-sshd.sh). When the first four are set, StartOpenSSH uses
// that server instead of starting its own.
const (
	EnvAddr       = "DRBOOK_TEST_SSH_ADDR"
	EnvUser       = "DRBOOK_TEST_SSH_USER"
	EnvKey        = "DRBOOK_TEST_SSH_KEY"
	EnvKnownHosts = "DRBOOK_TEST_SSH_KNOWN_HOSTS"
	// EnvPID optionally names the shared sshd's listener pid, which
	// KillConnections needs.
	EnvPID = "DRBOOK_TEST_SSH_PID"
)

// TestUser is the dedicated login user of the private sshd: a plain home and
// /bin/sh, so that no shell start-up file slows every command down.
const TestUser = "drbook-test"

// SSHDPath is where Debian installs the OpenSSH server.
const SSHDPath = "/usr/sbin/sshd"

const sshdStartTimeout = 10 * time.Second

// StartOpenSSH returns an OpenSSH server on 127.0.0.1: the one named by the
// DRBOOK_TEST_SSH_* environment if set, else a private sshd started for this
// test (its own host key, config and authorized_keys, killed on cleanup).
// As root it logs in as TestUser (created if missing); otherwise as the
// current user. It fails the test if sshd is not installed.
func StartOpenSSH(t testing.TB) *Server {
	t.Helper()
	if s := sharedOpenSSH(t); s != nil {
		return s
	}
	return StartPrivateOpenSSH(t)
}

// StartPrivateOpenSSH always starts an sshd of this test's own, even when a
// shared one is configured. Tests that kill the server's connections must use
// it: on the shared server they would cut other packages' tests running in
// parallel.
func StartPrivateOpenSSH(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(SSHDPath); err != nil {
		t.Fatalf("sshtest: %s not found: install openssh-server (apt-get install -y openssh-server): %v", SSHDPath, err)
	}
	login := loginUser(t)
	dir := scratchDir(t)
	s := &Server{User: login, Dir: dir, kind: "openssh"}
	keysDir := filepath.Join(dir, "keys")
	// #nosec G301 -- test helper: sshd's privilege separation directory must be 0755
	if err := os.Mkdir(keysDir, 0o755); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	hostKey, err := WriteKey(filepath.Join(keysDir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatalf("sshtest: host key: %v", err)
	}
	s.HostKey = hostKey
	authorized := filepath.Join(keysDir, "authorized_keys")
	clientKey(t, keysDir, authorized)
	s.IdentityFile = filepath.Join(keysDir, "id_ed25519")
	if os.Geteuid() == 0 {
		// #nosec G301 -- test helper: sshd (another user) must read its host keys directory
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshtest: privilege separation dir /run/sshd: %v", err)
		}
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("sshtest: free port: %v", err)
		}
		cmd, err := startSSHD(t, dir, keysDir, login, port)
		if err != nil {
			lastErr = err
			continue
		}
		s.Host, s.Port = "127.0.0.1", port
		s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
		s.KnownHostsFile = filepath.Join(keysDir, "known_hosts")
		if err := WriteKnownHosts(s.KnownHostsFile, s.Addr, hostKey); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		listener := cmd.Process.Pid
		s.killConnections = func(t testing.TB) int { return killSSHDChildren(listener) }
		return s
	}
	t.Fatalf("sshtest: start sshd: %v", lastErr)
	return nil
}

// sharedOpenSSH returns the server described by the DRBOOK_TEST_SSH_*
// environment, or nil if it is not (fully) set.
func sharedOpenSSH(t testing.TB) *Server {
	t.Helper()
	addr, login := os.Getenv(EnvAddr), os.Getenv(EnvUser)
	key, known := os.Getenv(EnvKey), os.Getenv(EnvKnownHosts)
	if addr == "" || login == "" || key == "" || known == "" {
		return nil
	}
	host, port := splitAddr(t, addr)
	s := &Server{Addr: addr, Host: host, Port: port, User: login, IdentityFile: key,
		KnownHostsFile: known, Dir: scratchDir(t), kind: "openssh"}
	if hk, err := hostKeyFromKnownHosts(known); err == nil {
		s.HostKey = hk
	}
	s.killConnections = func(t testing.TB) int {
		t.Fatalf("sshtest: KillConnections on the shared sshd would cut other tests' connections: start this server with StartPrivateOpenSSH")
		return 0
	}
	return s
}

// hostKeyFromKnownHosts returns the first key of a known_hosts file.
func hostKeyFromKnownHosts(path string) (ssh.PublicKey, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- test helper: reads the known_hosts file it was given
	if err != nil {
		return nil, err
	}
	_, _, key, _, _, err := ssh.ParseKnownHosts(b)
	return key, err
}

// loginUser returns the user the private sshd logs in: TestUser when
// running as root (creating it if needed), else the current user (a non-root
// sshd can only log in the user it runs as).
func loginUser(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatalf("sshtest: current user: %v", err)
		}
		return u.Username
	}
	if _, err := user.Lookup(TestUser); err != nil {
		out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", "-p", "*", TestUser).CombinedOutput()
		if _, lerr := user.Lookup(TestUser); err != nil && lerr != nil {
			t.Fatalf("sshtest: useradd -m -s /bin/sh %s: %v: %s", TestUser, err, out)
		}
	}
	unlockUser(t, TestUser)
	return TestUser
}

// unlockUser makes sure the account is not locked ("!" in /etc/shadow, as
// useradd leaves it): without PAM, sshd refuses even key logins to locked
// accounts. "*" allows key logins but no password.
func unlockUser(t testing.TB, name string) {
	t.Helper()
	b, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatalf("sshtest: read /etc/shadow: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.SplitN(line, ":", 3)
		if len(fields) < 2 || fields[0] != name || !strings.HasPrefix(fields[1], "!") {
			continue
		}
		if out, err := exec.Command("usermod", "-p", "*", name).CombinedOutput(); err != nil {
			t.Fatalf("sshtest: usermod -p '*' %s (unlock for key login): %v: %s", name, err, out)
		}
	}
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sshdConfig is the private server's configuration.
func sshdConfig(dir, keysDir, login string, port int) string {
	lines := []string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(keysDir, "ssh_host_ed25519_key"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(keysDir, "authorized_keys"),
		"AllowUsers " + login,
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin prohibit-password",
		"MaxSessions 200",
		"MaxStartups 200:30:400",
		"UseDNS no",
		"PrintMotd no",
		"X11Forwarding no",
		"AllowTcpForwarding no",
		"LogLevel ERROR",
	}
	return strings.Join(lines, "\n") + "\n"
}

// startSSHD starts sshd in the foreground and waits until it answers with an
// SSH banner. It is killed (with the connections it serves) on cleanup.
func startSSHD(t testing.TB, dir, keysDir, login string, port int) (*exec.Cmd, error) {
	t.Helper()
	cfgPath := filepath.Join(keysDir, fmt.Sprintf("sshd_config.%d", port))
	// #nosec G306 -- test helper: sshd_config holds no secret and sshd must read it
	if err := os.WriteFile(cfgPath, []byte(sshdConfig(dir, keysDir, login, port)), 0o644); err != nil {
		return nil, err
	}
	stderr := &lockedBuilder{}
	cmd := exec.Command(SSHDPath, "-D", "-e", "-f", cfgPath) // #nosec G204 -- test helper: starts /usr/sbin/sshd with a config it wrote
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", SSHDPath, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		kids := descendants(cmd.Process.Pid)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		for _, k := range kids {
			_ = syscall.Kill(k.pid, syscall.SIGKILL)
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(context.Background(), sshdStartTimeout)
	defer cancel()
	for {
		if err := readBanner(ctx, addr); err == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("sshd exited (%v): %s", err, stderr.String())
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("sshd did not answer on %s within %v: %s", addr, sshdStartTimeout, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Cleanup(stop)
	return cmd, nil
}

// readBanner connects to addr and reads the server's SSH identification.
func readBanner(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return errors.New("not an SSH server: " + line)
	}
	return nil
}

// killSSHDChildren SIGKILLs the per-connection sshd processes below the
// listener (not the commands they run, which would report an exit status)
// and returns how many connections it ended. Each connection's monitor
// ("sshd: USER [priv]") leads its own process group, which holds its
// pre- and post-auth children but not the user's commands (they get a
// session of their own): killing the group leaves no orphan that a monitor
// forked a moment before dying holding the connection open.
func killSSHDChildren(listener int) int {
	conns := make(map[int]bool)
	for range 50 {
		found := false
		for _, p := range descendants(listener) {
			if p.comm != "sshd" {
				continue
			}
			found = true
			if p.ppid == listener {
				conns[p.pid] = true
			}
			if p.pgid == p.pid && p.pgid != listener {
				_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
			}
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		if !found {
			break
		}
		time.Sleep(5 * time.Millisecond) // let the kills land before rescanning
	}
	return len(conns)
}
