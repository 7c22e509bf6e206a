// Package deploy_test checks the files in deploy/ and walks the deploy
// guide (docs/deploy.md) for real: the install script under a temporary
// root, the agent started exactly as drbook-agent.service's ExecStart would
// start it (same flags, without systemd), the cluster bootstrap, one run of
// the backup service's ExecStart, and a scrape of /metrics.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// units are the systemd units the guide installs.
var units = []string{"drbook-agent.service", "drbook-agent-backup.service", "drbook-agent-backup.timer"}

// agentBin is drbook-agent built once by TestMain, stamped like make build.
var (
	agentBin    string
	agentCommit string
	// agentBinNew is the same code stamped as a later version (upgrades).
	agentBinNew string
)

// The versions the two test binaries are stamped with.
const (
	oldVersion = "v0.0.0-deploytest"
	newVersion = "v0.0.1-deploytest"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drbook-deploy-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "drbook-agent")
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "git rev-parse HEAD (the tests run in a git checkout):", err)
		os.Exit(1)
	}
	agentCommit = strings.TrimSpace(string(out))
	const bi = "github.com/drbook/drbook/internal/buildinfo"
	build := exec.Command("go", "build", "-ldflags", "-X "+bi+".version="+oldVersion+" -X "+bi+".commit="+agentCommit,
		"-o", agentBin, "github.com/drbook/drbook/cmd/drbook-agent")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build drbook-agent:", err)
		os.Exit(1)
	}
	// The "new release" the upgrade steps install.
	agentBinNew = filepath.Join(dir, "new", "drbook-agent")
	build = exec.Command("go", "build", "-ldflags", "-X "+bi+".version="+newVersion+" -X "+bi+".commit="+agentCommit,
		"-o", agentBinNew, "github.com/drbook/drbook/cmd/drbook-agent")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build drbook-agent (new):", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// unit is a parsed systemd unit file: section -> key -> values in order
// (repeated keys such as SystemCallFilter= accumulate).
type unit map[string]map[string][]string

func (u unit) get(section, key string) ([]string, bool) {
	v, ok := u[section][key]
	return v, ok
}

// parseUnit reads a unit file strictly: every line is a comment, a
// [Section] or a Key=value inside a section.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not Key=value in a section: %q", path, i+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// TestUnitHardening checks the hardening every service unit must keep, and
// that the ExecStart flags exist in the agent's --help.
func TestUnitHardening(t *testing.T) {
	want := map[string]string{
		"User": "drbook-agent", "Group": "drbook-agent", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
		"AmbientCapabilities": "", "RestrictSUIDSGID": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
		"ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
		"SystemCallArchitectures": "native", "UMask": "0077", "ReadWritePaths": "%S/drbook-agent",
	}
	for _, name := range []string{"drbook-agent.service", "drbook-agent-backup.service"} {
		t.Run(name, func(t *testing.T) {
			u := parseUnit(t, name)
			for k, v := range want {
				got, ok := u.get("Service", k)
				if !ok || got[len(got)-1] != v {
					t.Errorf("[Service] %s=%q, want %q", k, got, v)
				}
			}
			if f, _ := u.get("Service", "SystemCallFilter"); !contains(f, "@system-service") || !contains(f, "~@privileged") {
				t.Errorf("SystemCallFilter=%q, want @system-service and ~@privileged", f)
			}
			if af, _ := u.get("Service", "RestrictAddressFamilies"); len(af) != 1 || strings.Contains(af[0], "AF_PACKET") || strings.Contains(af[0], "AF_NETLINK") {
				t.Errorf("RestrictAddressFamilies=%q", af)
			}
			exec, ok := u.get("Service", "ExecStart")
			if !ok || len(exec) != 1 {
				t.Fatalf("ExecStart=%q, want one command", exec)
			}
			checkFlagsInHelp(t, strings.Fields(exec[0]))
		})
	}
	main := parseUnit(t, "drbook-agent.service")
	if v, _ := main.get("Service", "StateDirectory"); !contains(v, "drbook-agent") {
		t.Errorf("drbook-agent.service: StateDirectory=%q", v)
	}
	if v, _ := main.get("Service", "StateDirectoryMode"); !contains(v, "0700") {
		t.Errorf("drbook-agent.service: StateDirectoryMode=%q", v)
	}
	backup := parseUnit(t, "drbook-agent-backup.service")
	if v, _ := backup.get("Service", "LoadCredential"); len(v) != 1 || !strings.HasPrefix(v[0], "backup-passphrase:/etc/drbook-agent/") {
		t.Errorf("backup passphrase must come as a credential: LoadCredential=%q", v)
	}
	timer := parseUnit(t, "drbook-agent-backup.timer")
	if v, _ := timer.get("Timer", "Unit"); !contains(v, "drbook-agent-backup.service") {
		t.Errorf("timer Unit=%q", v)
	}
	if v, _ := timer.get("Timer", "Persistent"); !contains(v, "true") {
		t.Errorf("timer Persistent=%q, want true (a backup missed while down runs at boot)", v)
	}
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

// checkFlagsInHelp runs `drbook-agent VERBS --help` for the verbs of an
// ExecStart command line and checks that every flag it uses is listed.
func checkFlagsInHelp(t *testing.T, argv []string) {
	t.Helper()
	if argv[0] != "/usr/local/bin/drbook-agent" {
		t.Fatalf("ExecStart runs %q, want /usr/local/bin/drbook-agent", argv[0])
	}
	var verbs, flags []string
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if strings.HasPrefix(a, "--") {
			name, _, hasValue := strings.Cut(a, "=")
			flags = append(flags, name)
			if !hasValue {
				i++ // every flag the units use takes a value
			}
			continue
		}
		verbs = append(verbs, a)
	}
	out, err := exec.Command(agentBin, append(verbs, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("drbook-agent %s --help: %v\n%s", strings.Join(verbs, " "), err, out)
	}
	for _, f := range flags {
		if !regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(f) + `\b`).Match(out) {
			t.Errorf("ExecStart flag %s is not in `drbook-agent %s --help`", f, strings.Join(verbs, " "))
		}
	}
}

// install runs deploy/install-agent.sh under a fresh root, as the guide
// does (DRBOOK_ROOT instead of /), and returns the root.
func install(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	installInto(t, root, agentBin, oldVersion)
	return root
}

// installInto runs install-agent.sh BIN with DRBOOK_ROOT=root and checks
// what it leaves there.
func installInto(t *testing.T, root, bin, version string) {
	t.Helper()
	cmd := exec.Command("sh", "install-agent.sh", bin)
	cmd.Env = append(os.Environ(), "DRBOOK_ROOT="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install-agent.sh: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(agentCommit)) || !bytes.Contains(out, []byte("drbook-agent "+version+"\n")) {
		t.Errorf("install-agent.sh should end with the installed version (%s, commit %s):\n%s", version, agentCommit, out)
	}
	for path, mode := range map[string]fs.FileMode{
		"usr/local/bin/drbook-agent":         0o755,
		"etc/drbook-agent":                   0o700 | fs.ModeDir,
		"etc/drbook-agent/agent.env":         0o600,
		"etc/drbook-agent/backup-passphrase": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/drbook-agent/backup-passphrase")); len(bytes.TrimSpace(b)) < 40 {
		t.Errorf("generated backup passphrase is %d bytes, want >= 40 (32 random bytes, base64)", len(bytes.TrimSpace(b)))
	}
	for _, u := range units {
		if _, err := os.Stat(filepath.Join(root, "etc/systemd/system", u)); err != nil {
			t.Error(err)
		}
	}
}

// TestUnitsVerify runs systemd-analyze verify on the installed units (with
// the installed binary under the root) and wants it silent: warnings such
// as unknown keys only print, so any output fails the test.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: install the systemd package (.ci/run does)")
	}
	root := install(t)
	// verify needs the system's targets (sysinit.target, timers.target...)
	// under the root it is given.
	sys := "/usr/lib/systemd/system"
	if err := os.CopyFS(filepath.Join(root, sys), os.DirFS(sys)); err != nil {
		t.Fatalf("copy %s: %v", sys, err)
	}
	args := []string{"verify", "--man=no", "--root=" + root}
	for _, u := range units {
		args = append(args, filepath.Join(root, "etc/systemd/system", u))
	}
	out, err := exec.Command(sa, args...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// systemd's own exposure score (0 best, 10 worst), offline: 2.0 at most.
	for _, u := range units[:2] {
		args := []string{"security", "--offline=true", "--threshold=20", "--root=" + root, filepath.Join(root, "etc/systemd/system", u)}
		if out, err := exec.Command(sa, args...).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
		} else if i := bytes.Index(out, []byte("Overall exposure level")); i >= 0 {
			t.Logf("%s", bytes.TrimSpace(out[i:]))
		}
	}
	// The check can fail: a misspelt key is reported.
	bad := filepath.Join(root, "etc/systemd/system/drbook-agent.service")
	b, _ := os.ReadFile(bad)
	if err := os.WriteFile(bad, bytes.Replace(b, []byte("ProtectSystem="), []byte("ProtectSystm="), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(sa, "verify", "--man=no", "--root="+root, bad).CombinedOutput(); !bytes.Contains(out, []byte("ProtectSystm")) {
		t.Fatalf("systemd-analyze verify did not report a misspelt key:\n%s", out)
	}
}

// readEnvFile reads KEY=value lines (systemd EnvironmentFile= syntax, the
// simple form the guide uses).
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not KEY=value: %q", path, line)
		}
		env[k] = v
	}
	return env
}

// execStart turns a unit's ExecStart into an argv the way systemd would
// (specifiers %S and %d, ${VAR} from the environment file), with absolute
// paths moved under root.
func execStart(t *testing.T, root string, u unit, env map[string]string, credDir string) []string {
	t.Helper()
	cmdline, _ := u.get("Service", "ExecStart")
	var argv []string
	for _, w := range strings.Fields(cmdline[0]) {
		w = strings.NewReplacer("%S", filepath.Join(root, "var/lib"), "%d", credDir, "%%", "%").Replace(w)
		if strings.Contains(w, "%") {
			t.Fatalf("ExecStart uses a specifier this test does not know: %q", w)
		}
		w = os.Expand(w, func(k string) string {
			v, ok := env[k]
			if !ok {
				t.Fatalf("ExecStart uses ${%s}, which agent.env does not set", k)
			}
			return v
		})
		argv = append(argv, w)
	}
	argv[0] = filepath.Join(root, argv[0])
	return argv
}

// unitProcess is the agent started as drbook-agent.service would start it.
type unitProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// startUnit starts argv with the unit's UMask= and the environment file's
// variables (and nothing else of the caller's environment).
func startUnit(t *testing.T, svc unit, argv []string, env map[string]string, logf *os.File) *unitProcess {
	t.Helper()
	umask, ok := svc.get("Service", "UMask")
	if !ok {
		t.Fatal("the unit sets no UMask=")
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", `umask "$0" && exec "$@"`, umask[0]}, argv...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &unitProcess{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	return p
}

// stop sends SIGTERM (KillSignal=) and wants a clean exit within
// TimeoutStopSec= (30 s); a process already gone is left alone.
func (p *unitProcess) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("agent exited with %v after SIGTERM", p.err)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("agent did not stop within 30 s of SIGTERM (TimeoutStopSec)")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDeployGuide walks docs/deploy.md on one node: install, configure,
// start as the unit would, bootstrap, check the API key and the CA, take a
// backup the way the timer does, and scrape /metrics.
func TestDeployGuide(t *testing.T) {
	root := install(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Configure the node: agent.env with this node's id and addresses.
	envPath := filepath.Join(root, "etc/drbook-agent/agent.env")
	env := readEnvFile(t, envPath)
	for _, k := range []string{"DRBOOK_NODE_ID", "DRBOOK_API_ADDR", "DRBOOK_RAFT_ADDR", "DRBOOK_LOG_LEVEL"} {
		if _, ok := env[k]; !ok {
			t.Fatalf("agent.env template lacks %s", k)
		}
	}
	apiAddr := freeAddr(t)
	conf := fmt.Sprintf("DRBOOK_NODE_ID=node1\nDRBOOK_API_ADDR=%s\nDRBOOK_RAFT_ADDR=%s\nDRBOOK_LOG_LEVEL=info\n", apiAddr, freeAddr(t))
	if err := os.WriteFile(envPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env = readEnvFile(t, envPath)

	// StateDirectory=drbook-agent, StateDirectoryMode=0700: systemd creates it.
	dataDir := filepath.Join(root, "var/lib/drbook-agent")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	svc := parseUnit(t, filepath.Join(root, "etc/systemd/system/drbook-agent.service"))
	argv := execStart(t, root, svc, env, "")
	logPath := filepath.Join(root, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	agent := startUnit(t, svc, argv, env, logf)
	t.Cleanup(func() {
		agent.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("agent log (tail):\n%s", b)
		}
	})

	// Operators run the CLI as the service user with --data pointing at the
	// state directory (sudo -u drbook-agent drbook-agent --data ... ).
	cli := func(args ...string) ([]byte, error) {
		c := exec.CommandContext(ctx, filepath.Join(root, "usr/local/bin/drbook-agent"), append([]string{"--data", dataDir, "-o", "json"}, args...)...)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			return out, fmt.Errorf("drbook-agent %s: %w: %s", strings.Join(args, " "), err, stderr.String())
		}
		return out, nil
	}
	// Before the bootstrap the API already serves /healthz and /metrics,
	// with a throwaway self-signed certificate (no CA exists yet): the
	// agent is up and says it is in no cluster.
	insecure := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}} // #nosec G402 -- the pre-bootstrap certificate is self-signed by design
	var early []byte
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := insecure.Get("https://" + apiAddr + "/metrics")
		if err == nil {
			early, err = io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-agent.exited:
			t.Fatalf("agent exited during start: %v", agent.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics not served within 60 s of the start: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkMetrics(t, early, false, oldVersion)

	// Bootstrap the first node.
	var created struct {
		ClusterID     string `json:"cluster_id"`
		CAFingerprint string `json:"ca_fingerprint"`
		CACertFile    string `json:"ca_cert_file"`
		APIKey        string `json:"api_key"`
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		out, err := cli("cluster", "create")
		if err == nil {
			if err := json.Unmarshal(out, &created); err != nil {
				t.Fatalf("cluster create: %v\n%s", err, out)
			}
			break
		}
		select {
		case <-agent.exited:
			t.Fatalf("agent exited during start: %v", agent.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster create did not succeed within 60 s: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if created.APIKey == "" || created.CAFingerprint == "" || created.CACertFile != filepath.Join(dataDir, "ca.pem") {
		t.Fatalf("cluster create: %+v", created)
	}
	// Everything the agent wrote stays private to its user.
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 && p != created.CACertFile {
			t.Errorf("%s: mode %v is readable by others", p, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Clients trust the cluster's CA and send the API key.
	caPEM, err := os.ReadFile(created.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	get := func(path, apiKey string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+apiAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+apiKey)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	if code, body := get("/v1/keys?count", created.APIKey); code != http.StatusOK || !bytes.Contains(body, []byte(`"keys"`)) {
		t.Fatalf("key API with the API key: %d %s", code, body)
	}
	if code, _ := get("/v1/keys?count", ""); code != http.StatusUnauthorized {
		t.Fatalf("key API without the API key: %d, want 401", code)
	}
	if _, err := cli("keys", "create", "--id", "deploy-check"); err != nil {
		t.Fatal(err)
	}

	// One run of the backup timer's service: the passphrase arrives as a
	// systemd credential (a 0400 copy in the credentials directory, %d).
	credDir := filepath.Join(root, "run/credentials/drbook-agent-backup.service")
	if err := os.MkdirAll(credDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pass, err := os.ReadFile(filepath.Join(root, "etc/drbook-agent/backup-passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(credDir, "backup-passphrase"), pass, 0o400); err != nil {
		t.Fatal(err)
	}
	bsvc := parseUnit(t, filepath.Join(root, "etc/systemd/system/drbook-agent-backup.service"))
	bargv := execStart(t, root, bsvc, nil, credDir)
	bcmd := exec.CommandContext(ctx, bargv[0], bargv[1:]...)
	bcmd.Env = []string{"PATH=/usr/bin:/bin"}
	if out, err := bcmd.CombinedOutput(); err != nil {
		t.Fatalf("backup service ExecStart %q: %v\n%s", bargv, err, out)
	}
	backups, _ := filepath.Glob(filepath.Join(dataDir, "backups", "*.drbk"))
	if len(backups) != 1 {
		t.Fatalf("backups after one timer run: %q", backups)
	}
	if b, _ := os.ReadFile(backups[0]); bytes.Contains(b, pass) || bytes.Contains(b, []byte("deploy-check")) {
		t.Fatal("the backup file holds the passphrase or a key id in clear")
	}

	// Monitoring: /metrics is valid Prometheus text.
	code, body := get("/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	checkMetrics(t, body, true, oldVersion)

	// Upgrade (section 7 of the guide) on this node: install-agent.sh with
	// the new release while the old agent runs (it keeps agent.env and the
	// passphrase), then a restart.
	confBefore, err := os.ReadFile(envPath)
	if err != nil {
		t.Fatal(err)
	}
	installInto(t, root, agentBinNew, newVersion)
	if b, _ := os.ReadFile(envPath); !bytes.Equal(b, confBefore) {
		t.Errorf("install-agent.sh changed agent.env on upgrade:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/drbook-agent/backup-passphrase")); !bytes.Equal(b, pass) {
		t.Error("install-agent.sh changed the backup passphrase on upgrade")
	}
	agent.stop(t)
	agent = startUnit(t, svc, argv, env, logf)
	deadline = time.Now().Add(60 * time.Second)
	for {
		// After the restart: the cluster's certificate again, and a leader.
		out, err := cli("status")
		var st struct{ State string }
		if err == nil && json.Unmarshal(out, &st) == nil && st.State == "leader" {
			break
		}
		select {
		case <-agent.exited:
			t.Fatalf("upgraded agent exited during start: %v", agent.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("upgraded agent not leader within 60 s: %v %s", err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if code, body := get("/v1/keys?count", created.APIKey); code != http.StatusOK || !bytes.Contains(body, []byte(`"keys":1`)) {
		t.Fatalf("key API after the upgrade: %d %s", code, body)
	}
	code, body = get("/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics after the upgrade: %d %s", code, body)
	}
	checkMetrics(t, body, true, newVersion)
}

// checkMetrics parses the exposition with Prometheus's own text parser and
// checks the series monitoring relies on, before the node is in a cluster
// (inCluster false) or after the guide's bootstrap, key and backup.
func checkMetrics(t *testing.T, body []byte, inCluster bool, version string) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v\n%s", err, body)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetUntyped() != nil:
				return m.GetUntyped().GetValue(), true
			}
		}
		return 0, false
	}
	type check struct {
		name   string
		labels map[string]string
		ok     func(float64) bool
		what   string
	}
	checks := []check{
		{"drbook_cluster_member", nil, func(v float64) bool { return v == 0 }, "0 (not in a cluster yet)"},
		{"drbook_raft_state", map[string]string{"state": "none"}, func(v float64) bool { return v == 1 }, "1 (not in a cluster yet)"},
	}
	if inCluster {
		checks = []check{
			{"drbook_cluster_member", nil, func(v float64) bool { return v == 1 }, "1"},
			{"drbook_raft_state", map[string]string{"state": "leader"}, func(v float64) bool { return v == 1 }, "1 (a one-node cluster leads)"},
			{"drbook_raft_term", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
			{"drbook_raft_commit_index", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
			{"drbook_keys", nil, func(v float64) bool { return v == 1 }, "1 (the key the guide created)"},
		}
	}
	for _, c := range checks {
		v, ok := value(c.name, c.labels)
		if !ok || !c.ok(v) {
			t.Errorf("%s%v = %v (present %v), want %s", c.name, c.labels, v, ok, c.what)
		}
	}
	// The backup that just ran (absent before: no sentinel value).
	if ts, ok := value("drbook_last_backup_timestamp_seconds", nil); !inCluster {
		if ok {
			t.Errorf("drbook_last_backup_timestamp_seconds = %v before any backup, want it absent", ts)
		}
	} else if !ok {
		t.Error("/metrics has no drbook_last_backup_timestamp_seconds after a backup")
	} else if d := time.Since(time.Unix(int64(ts), 0)); d < -time.Minute || d > 5*time.Minute {
		t.Errorf("drbook_last_backup_timestamp_seconds = %v (%v ago), want the backup that just ran", ts, d)
	}
	// Build info names the commit and version this binary was stamped with
	// (the same values as `drbook-agent version`).
	bi, ok := fams["drbook_agent_build_info"]
	if !ok || len(bi.GetMetric()) != 1 {
		t.Fatalf("/metrics: want one drbook_agent_build_info series, got %v", bi.GetMetric())
	}
	labels := map[string]string{}
	for _, lp := range bi.GetMetric()[0].GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	if labels["commit"] != agentCommit || labels["version"] != version || !strings.HasPrefix(labels["goversion"], "go1.") {
		t.Errorf("drbook_agent_build_info%v, want commit %s, version %s", labels, agentCommit, version)
	}
	// No sentinel values: an alert on a threshold must never see -1.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			if g := m.GetGauge(); g != nil && g.GetValue() == -1 {
				t.Errorf("%s%v = -1 (a sentinel)", name, m.GetLabel())
			}
		}
	}
}
