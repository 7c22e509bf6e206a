package transport_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

func TestLocalRun(t *testing.T) {
	l := &transport.Local{BaseEnv: []string{"PATH=" + os.Getenv("PATH"), "BASE=base"}}
	tests := []struct {
		name, line string
		env        map[string]string
		want       int
		stdout     string
		stderr     string
	}{
		{name: "true", line: "true", want: 0},
		{name: "false", line: "false", want: 1},
		{name: "exit 42", line: "exit 42", want: 42},
		{name: "signal", line: "kill -9 $$", want: 137},
		{name: "streams", line: "echo out; echo err >&2", stdout: "out\n", stderr: "err\n"},
		{name: "env", line: `printf '%s|%s' "$BASE" "$X"`, env: map[string]string{"X": "it's $x `y`\n"}, stdout: "base|it's $x `y`\n"},
		{name: "only base env", line: `printf '%s' "${HOME-unset}"`, stdout: "unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr buffer
			got, err := l.Run(t.Context(), transport.Command{Line: tt.line, Env: tt.env, Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got != tt.want {
				t.Errorf("exit = %d, want %d", got, tt.want)
			}
			if stdout.String() != tt.stdout || stderr.String() != tt.stderr {
				t.Errorf("stdout %q stderr %q, want %q %q", stdout.String(), stderr.String(), tt.stdout, tt.stderr)
			}
		})
	}
}

func TestLocalRejectsInvalidEnv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ran")
	_, err := (&transport.Local{}).Run(t.Context(), transport.Command{Line: "touch " + transport.Quote(file), Env: map[string]string{"A=B": "x"}})
	if !errors.Is(err, transport.ErrInvalidEnv) {
		t.Fatalf("err = %v, want ErrInvalidEnv", err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("command ran: %v", err)
	}
}

func TestLocalCancelKillsProcessGroup(t *testing.T) {
	m := marker(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := startMarked(t, ctx, &transport.Local{}, m, nil)
	children := childrenOf(sshtest.PIDsWithArg(m))
	if len(children) == 0 {
		t.Fatal("no sleep child")
	}
	start := time.Now()
	cancel()
	err := <-done
	if took := time.Since(start); took > time.Second {
		t.Errorf("Run returned %v after cancel", took)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	waitFor(t, 2*time.Second, "the process group to die", func() bool {
		return len(sshtest.PIDsWithArg(m)) == 0 && !anyAlive(children)
	})
}

func TestLocalSecretNotOnCommandLine(t *testing.T) {
	secret := "s3cr3t-" + marker(t)
	m := marker(t)
	done := startMarked(t, t.Context(), &transport.Local{}, m, map[string]string{"DRBOOK_SECRET": secret})
	out, err := exec.Command("ps", "-eo", "args").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), m) || strings.Contains(string(out), secret) {
		t.Errorf("ps shows marker %v, secret %v; want marker only", strings.Contains(string(out), m), strings.Contains(string(out), secret))
	}
	sshtest.KillMarked(m)
	<-done
}
