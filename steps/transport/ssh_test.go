package transport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
	"golang.org/x/crypto/ssh"
)

func TestSSHRunExitCodes(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		if s.HostKeyFingerprint() != ssh.FingerprintSHA256(srv.HostKey) {
			t.Errorf("HostKeyFingerprint = %q, want %q", s.HostKeyFingerprint(), ssh.FingerprintSHA256(srv.HostKey))
		}
		tests := []struct {
			line string
			want int
		}{
			{"true", 0},
			{"false", 1},
			{"exit 42", 42},
			{"echo partial; exit 3", 3},
			{"kill -9 $$", 128 + 9},
		}
		for _, tt := range tests {
			got, err := s.Run(t.Context(), transport.Command{Line: tt.line})
			if err != nil {
				t.Errorf("Run(%q): %v", tt.line, err)
				continue
			}
			if got != tt.want {
				t.Errorf("Run(%q) = %d, want %d", tt.line, got, tt.want)
			}
		}
	})
}

func TestSSHRunStreamsOutput(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		var stdout, stderr buffer
		start := time.Now()
		code, err := s.Run(t.Context(), transport.Command{
			Line:   "echo first; echo oops >&2; sleep 1; echo second",
			Stdout: &stdout, Stderr: &stderr,
		})
		took := time.Since(start)
		if err != nil || code != 0 {
			t.Fatalf("Run = %d, %v", code, err)
		}
		if got := stdout.String(); got != "first\nsecond\n" {
			t.Errorf("stdout = %q", got)
		}
		if got := stderr.String(); got != "oops\n" {
			t.Errorf("stderr = %q", got)
		}
		if took < time.Second {
			t.Fatalf("Run took %v, want ≥ 1s (the command sleeps)", took)
		}
		// The first line must arrive while the command still sleeps, not
		// with the rest at the end (robust to a slow session start).
		if lead := start.Add(took).Sub(stdout.firstWrite()); lead < 500*time.Millisecond {
			t.Errorf("first line arrived only %v before the command ended, want ≈1 s (streamed before the sleep)", lead)
		}
	})
}

func TestSSHRunLargeOutput(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		var stdout buffer
		const size = 1 << 20
		code, err := s.Run(t.Context(), transport.Command{
			Line:   fmt.Sprintf("yes 0123456789abcdef | head -c %d", size),
			Stdout: &stdout,
		})
		if err != nil || code != 0 {
			t.Fatalf("Run = %d, %v", code, err)
		}
		got := stdout.String()
		want := strings.Repeat("0123456789abcdef\n", size/17+1)[:size]
		if got != want {
			t.Errorf("got %d bytes, want %d identical bytes", len(got), size)
		}
	})
}

// envEdgeCases are values that break naive quoting.
var envEdgeCases = map[string]string{
	"EMPTY":      "",
	"SPACES":     "  a  b  ",
	"SQUOTE":     "it's 'quoted'",
	"DQUOTE":     `say "hi"`,
	"NEWLINES":   "line1\nline2\n\n",
	"DOLLAR":     "$HOME ${PATH} $(id) $$",
	"BACKTICK":   "`id` `rm -rf /nonexistent`",
	"BACKSLASH":  `a\b\\c\n\'`,
	"GLOB":       "* ? [a-z] ~",
	"UNICODE":    "héllo 世界 🚀",
	"SEMICOLON":  "x; echo injected; #",
	"LEADINGDSH": "-n -e",
}

func TestSSHRunEnvQuoting(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		var names []string
		for k := range envEdgeCases {
			names = append(names, k)
		}
		var line strings.Builder
		line.WriteString("printf '%s\\0'")
		for _, k := range names {
			line.WriteString(` "$` + k + `"`)
		}
		var stdout buffer
		code, err := s.Run(t.Context(), transport.Command{Line: line.String(), Env: envEdgeCases, Stdout: &stdout})
		if err != nil || code != 0 {
			t.Fatalf("Run = %d, %v", code, err)
		}
		got := strings.Split(strings.TrimSuffix(stdout.String(), "\x00"), "\x00")
		if len(got) != len(names) {
			t.Fatalf("got %d values, want %d: %q", len(got), len(names), stdout.String())
		}
		for i, k := range names {
			if got[i] != envEdgeCases[k] {
				t.Errorf("$%s = %q, want %q", k, got[i], envEdgeCases[k])
			}
		}
	})
}

func TestSSHRunRejectsInvalidEnv(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		file := filepath.Join(srv.Dir, marker(t))
		for _, env := range []map[string]string{
			{"A-B": "x"}, {"1A": "x"}, {"": "x"}, {"A B": "x"}, {"OK": "nul\x00byte"},
		} {
			_, err := s.Run(t.Context(), transport.Command{Line: "touch " + transport.Quote(file), Env: env})
			if !errors.Is(err, transport.ErrInvalidEnv) || !errors.Is(err, transport.ErrNotStarted) {
				t.Errorf("Run with env %q: err = %v, want ErrInvalidEnv and ErrNotStarted", env, err)
			}
			if strings.Contains(fmt.Sprint(err), "nul\x00byte") {
				t.Errorf("error reveals the value: %v", err)
			}
		}
		if _, err := s.Run(t.Context(), transport.Command{Line: "touch " + transport.Quote(file) + "\x00"}); !errors.Is(err, transport.ErrInvalidCommand) {
			t.Errorf("Run with a NUL in the line: err = %v, want ErrInvalidCommand", err)
		}
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("command ran despite invalid env: %v", err)
		}
	})
}

func TestSSHUnknownHost(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		emptyKnown := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(emptyKnown, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		want := ssh.FingerprintSHA256(srv.HostKey)
		for name, known := range map[string]string{
			"empty file":   emptyKnown,
			"missing file": filepath.Join(t.TempDir(), "absent"),
		} {
			cfg := sshConfig(srv)
			cfg.KnownHostsFile = known
			s, err := transport.DialSSH(t.Context(), cfg)
			if err == nil {
				_ = s.Close()
				t.Fatalf("%s: DialSSH succeeded for an unknown host", name)
			}
			if !errors.Is(err, transport.ErrUnknownHost) || errors.Is(err, transport.ErrHostKeyMismatch) {
				t.Errorf("%s: err = %v, want ErrUnknownHost", name, err)
			}
			var hke *transport.HostKeyError
			if !errors.As(err, &hke) || hke.Fingerprint() != want {
				t.Errorf("%s: err = %#v, want a *HostKeyError with fingerprint %s", name, err, want)
			}
			for _, part := range []string{want, fmt.Sprintf("[127.0.0.1]:%d", srv.Port), "drbook trust"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("%s: message %q lacks %q", name, err, part)
				}
			}
		}
	})
}

// TestSSHTrustFlow is the `drbook trust` flow: an unknown host is scanned,
// its fingerprint matches the refusal's, the key is appended, and the dial
// then succeeds; before trusting, nothing ran.
func TestSSHTrustFlow(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		known := filepath.Join(t.TempDir(), "known_hosts")
		cfg := sshConfig(srv)
		cfg.KnownHostsFile = known
		file := filepath.Join(srv.Dir, marker(t))
		_, err := transport.DialSSH(t.Context(), cfg)
		var hke *transport.HostKeyError
		if !errors.As(err, &hke) {
			t.Fatalf("DialSSH: %v, want *HostKeyError", err)
		}
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("marker exists before any run: %v", err)
		}
		key, err := transport.ScanHostKey(t.Context(), srv.Addr)
		if err != nil {
			t.Fatalf("ScanHostKey: %v", err)
		}
		if got := ssh.FingerprintSHA256(key); got != hke.Fingerprint() {
			t.Fatalf("scanned fingerprint %s, refusal named %s", got, hke.Fingerprint())
		}
		if err := transport.AppendKnownHost(known, srv.Addr, key); err != nil {
			t.Fatalf("AppendKnownHost: %v", err)
		}
		s, err := transport.DialSSH(t.Context(), cfg)
		if err != nil {
			t.Fatalf("DialSSH after trusting: %v", err)
		}
		defer s.Close()
		if code, err := s.Run(t.Context(), transport.Command{Line: "touch " + transport.Quote(file)}); err != nil || code != 0 {
			t.Fatalf("Run = %d, %v", code, err)
		}
		if _, err := os.Stat(file); err != nil {
			t.Errorf("marker after a trusted run: %v", err)
		}
	})
}

func TestSSHHostKeyMismatch(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		dir := t.TempDir()
		other, err := sshtest.WriteKey(filepath.Join(dir, "other"))
		if err != nil {
			t.Fatal(err)
		}
		known := filepath.Join(dir, "known_hosts")
		if err := transport.AppendKnownHost(known, srv.Addr, other); err != nil {
			t.Fatal(err)
		}
		cfg := sshConfig(srv)
		cfg.KnownHostsFile = known
		_, err = transport.DialSSH(t.Context(), cfg)
		if !errors.Is(err, transport.ErrHostKeyMismatch) || errors.Is(err, transport.ErrUnknownHost) {
			t.Fatalf("err = %v, want ErrHostKeyMismatch", err)
		}
		for _, part := range []string{ssh.FingerprintSHA256(srv.HostKey), ssh.FingerprintSHA256(other), "MISMATCH"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("message %q lacks %q", err, part)
			}
		}
	})
}

// startMarked runs `sh -c 'sleep 30; :' MARKER` in the background and waits
// until the marked process is up. It returns the Run's result channel.
func startMarked(t *testing.T, ctx context.Context, tr transport.Transport, m string, env map[string]string) <-chan error {
	t.Helper()
	killMarked(t, m)
	done := make(chan error, 1)
	go func() {
		code, err := tr.Run(ctx, transport.Command{Line: "sh -c 'sleep 30; :' " + m, Env: env})
		if err == nil {
			err = fmt.Errorf("exit %d", code)
		}
		done <- err
	}()
	waitFor(t, 5*time.Second, "the marked process to start", func() bool { return len(sshtest.PIDsWithArg(m)) > 0 })
	return done
}

func TestSSHCancel(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		m := marker(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := startMarked(t, ctx, s, m, nil)
		pids := sshtest.PIDsWithArg(m)
		var children []int
		// The shell is up; its sleep child may not have been forked yet.
		waitFor(t, 5*time.Second, "the sleep child to start", func() bool {
			children = childrenOf(pids)
			return len(children) > 0
		})
		start := time.Now()
		cancel()
		err := <-done
		if took := time.Since(start); took > time.Second {
			t.Errorf("Run returned %v after cancel, want ≤ 1s", took)
		}
		if !errors.Is(err, context.Canceled) || errors.Is(err, transport.ErrNotStarted) {
			t.Errorf("err = %v, want context.Canceled (and not ErrNotStarted)", err)
		}
		waitFor(t, 2*time.Second, "the remote process group to die", func() bool {
			return len(sshtest.PIDsWithArg(m)) == 0 && !anyAlive(children)
		})
		// The connection stays usable.
		if code, err := s.Run(t.Context(), transport.Command{Line: "exit 7"}); err != nil || code != 7 {
			t.Errorf("Run after cancel = %d, %v", code, err)
		}
	})
}

func TestSSHConnLostMidCommand(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		m := marker(t)
		done := startMarked(t, t.Context(), s, m, nil)
		if n := srv.KillConnections(t); n != 1 {
			t.Errorf("KillConnections ended %d connections, want 1", n)
		}
		select {
		case err := <-done:
			if !errors.Is(err, transport.ErrConnLost) || errors.Is(err, transport.ErrNotStarted) {
				t.Fatalf("err = %v, want ErrConnLost (and not ErrNotStarted: the command ran)", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after the connection was killed")
		}
		waitFor(t, 2*time.Second, "Alive() to turn false", func() bool { return !s.Alive() })
		if _, err := s.Run(t.Context(), transport.Command{Line: "true"}); !errors.Is(err, transport.ErrConnLost) || !errors.Is(err, transport.ErrNotStarted) {
			t.Errorf("Run on a dead connection: err = %v, want ErrConnLost and ErrNotStarted", err)
		}
	})
}

func TestSSHSecretNotOnCommandLine(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		secret := "s3cr3t-" + marker(t)
		m := marker(t)
		killMarked(t, m)
		done := make(chan error, 1)
		go func() {
			code, err := s.Run(t.Context(), transport.Command{
				Line: "sh -c 'sleep 1; test -n \"$DRBOOK_SECRET\"' " + m,
				Env:  map[string]string{"DRBOOK_SECRET": secret, "OTHER": "x"},
			})
			if err == nil && code != 0 {
				err = fmt.Errorf("exit %d", code)
			}
			done <- err
		}()
		waitFor(t, 5*time.Second, "the marked process in ps", func() bool {
			out, err := exec.Command("ps", "-eo", "args").Output()
			if err != nil {
				t.Fatalf("ps: %v", err)
			}
			if bytes.Contains(out, []byte(secret)) {
				t.Fatalf("secret visible in ps -eo args:\n%s", out)
			}
			return bytes.Contains(out, []byte(m))
		})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestSSHExecRequestHoldsNoSecret records the exec requests the lab server
// receives: each is the fixed ExecWrapper, whatever the command's Env.
func TestSSHExecRequestHoldsNoSecret(t *testing.T) {
	var log buffer
	srv := sshtest.StartLabWith(t, slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s := dial(t, srv)
	secret := "s3cr3t-" + marker(t)
	var out buffer
	code, err := s.Run(t.Context(), transport.Command{Line: `printf %s "$TOKEN"`, Env: map[string]string{"TOKEN": secret}, Stdout: &out})
	if err != nil || code != 0 || out.String() != secret {
		t.Fatalf("Run = %d, %v, output %q", code, err, out.String())
	}
	logged := log.String()
	if !strings.Contains(logged, "msg=exec") || !strings.Contains(logged, "command="+strconv.Quote(transport.ExecWrapper)) {
		t.Fatalf("exec request not logged as the fixed wrapper:\n%s", logged)
	}
	if strings.Contains(logged, secret) {
		t.Errorf("secret reached the server's exec request / log:\n%s", logged)
	}
}

func TestSSHRunWithEndedContextRunsNothing(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		file := filepath.Join(srv.Dir, marker(t))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := s.Run(ctx, transport.Command{Line: "touch " + transport.Quote(file)})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, transport.ErrNotStarted) {
			t.Errorf("err = %v, want context.Canceled and ErrNotStarted", err)
		}
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("command ran with an ended context: %v", err)
		}
	})
}

// TestSSHScriptFidelity runs scripts every way they reach the node (as the
// exec request itself without Env; with Env, a short one read by sh's read
// and a long one by cat) and checks that every byte of the command reaches
// sh as written: backslashes, leading blanks, quotes, multi-line constructs,
// a here-document, a last line without its newline.
func TestSSHScriptFidelity(t *testing.T) {
	body := "x='a\\\\b  c'\n  printf '%s|' \"$x\"\nif true; then\n\tprintf 'in-if|'\nfi\ncat <<'EOF'\n  here $x \\t\nEOF\nprintf 'last'"
	want := `a\\b  c|in-if|  here $x \t` + "\nlast"
	long := strings.Repeat(": "+strings.Repeat("p", 70)+"\n", transport.SmallScript/72+2)
	tests := []struct {
		name, line string
		env        map[string]string
	}{
		{"short direct", body, nil},
		{"short", body, map[string]string{"V": "v"}},
		{"long direct", long + body, nil},
		{"long", long + body, map[string]string{"V": "v"}},
	}
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		if !s.DirectExec(t.Context()) {
			t.Fatal("DirectExec = false: the test servers' login shell is /bin/sh")
		}
		for _, tc := range tests {
			var out buffer
			code, err := s.Run(t.Context(), transport.Command{Line: tc.line, Env: tc.env, Stdout: &out})
			if err != nil || code != 0 || out.String() != want {
				t.Errorf("%s: Run = %d, %v, output %q, want %q", tc.name, code, err, out.String(), want)
			}
		}
		for _, env := range []map[string]string{nil, {"V": "v"}} {
			var out buffer
			if code, err := s.Run(t.Context(), transport.Command{Line: "exit 7", Env: env, Stdout: &out}); err != nil || code != 7 {
				t.Errorf("exit 7 (env %v): %d %v", env, code, err)
			}
		}
	})
}

// TestSSHDirectExecOnlyWithSh checks which exec request carries a command:
// with a login shell that is sh, a command without Env is the request
// itself and one with Env the fixed wrapper; with bash as the login shell
// every command goes through the wrapper, so scripts still run with sh
// (dash's echo expands \n, bash's does not).
func TestSSHDirectExecOnlyWithSh(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed for this test: %v", err)
	}
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil || filepath.Base(sh) != "dash" {
		t.Fatalf("this test expects /bin/sh to be dash (Debian), got %q (%v)", sh, err)
	}
	line := `echo 'a\nb'`
	tests := []struct {
		name, shell string
		direct      bool
	}{
		{"sh", "", true},
		{"bash", bash, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log buffer
			srv := sshtest.StartLabShell(t, slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})), tc.shell)
			s := dial(t, srv)
			if got := s.DirectExec(t.Context()); got != tc.direct {
				t.Fatalf("DirectExec = %v, want %v", got, tc.direct)
			}
			for _, env := range []map[string]string{nil, {"V": "v"}} {
				log.mu.Lock()
				log.b.Reset()
				log.mu.Unlock()
				var out buffer
				code, err := s.Run(t.Context(), transport.Command{Line: line, Env: env, Stdout: &out})
				if err != nil || code != 0 || out.String() != "a\nb\n" {
					t.Errorf("env %v: Run = %d, %v, output %q, want sh's \"a\\nb\\n\"", env, code, err, out.String())
				}
				script, err := transport.Script(transport.Command{Line: line, Env: env})
				if err != nil {
					t.Fatal(err)
				}
				want := transport.ExecWrapper
				if tc.direct && env == nil {
					want = script
				}
				if logged := log.String(); !strings.Contains(logged, "command="+strconv.Quote(want)) {
					t.Errorf("env %v: exec request is not %q:\n%s", env, want, logged)
				}
			}
		})
	}
}

// TestSSHSessionsOpenedAhead: after a Run the next session is opened in
// the background; commands still run right after a pause longer than a
// session is kept open ahead (it is closed, a fresh one opened), in
// parallel bursts and in sequence, and Close does not wait on it.
func TestSSHSessionsOpenedAhead(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *sshtest.Server) {
		s := dial(t, srv)
		run := func(line string, want int) {
			t.Helper()
			if code, err := s.Run(t.Context(), transport.Command{Line: line}); err != nil || code != want {
				t.Errorf("Run(%q) = %d, %v; want %d", line, code, err, want)
			}
		}
		run("exit 3", 3)
		time.Sleep(transport.SpareMaxAge + 500*time.Millisecond)
		run("exit 4", 4) // the session opened ahead is too old: a fresh one
		errs := make(chan error, 12)
		for i := 0; i < 12; i++ {
			go func() {
				code, err := s.Run(t.Context(), transport.Command{Line: "sleep 0.2; exit 5"})
				if err == nil && code != 5 {
					err = fmt.Errorf("exit %d", code)
				}
				errs <- err
			}()
		}
		for i := 0; i < 12; i++ {
			if err := <-errs; err != nil {
				t.Errorf("parallel Run: %v", err)
			}
		}
		for i := 0; i < 5; i++ {
			run("true", 0)
		}
		start := time.Now()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Close took %v", took)
		}
		if _, err := s.Run(t.Context(), transport.Command{Line: "true"}); err == nil {
			t.Error("Run after Close succeeded")
		}
	})
}
