package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/hostile"
)

// endless is a reader that never ends: a writer that writes forever.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = "key: value\n"[i%11]
	}
	return len(p), nil
}

// lintBomb writes an alias bomb nested depth deep with fan aliases a level.
func lintBomb(indent string, depth, fan int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%sa0: &a0 [%s]\n", indent, strings.TrimSuffix(strings.Repeat("lol, ", fan), ", "))
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, "%sa%d: &a%d [%s]\n", indent, i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), fan), ", "))
	}
	return b.String()
}

// TestLintHostileInput runs `drbook lint` on hostile input — alias bombs
// in a runbook and in an answers file, 100 KB of [, /dev/zero, a FIFO
// written forever, and stdin (/dev/stdin) fed forever through a pipe — in a
// child under a 2 GiB address-space limit. Each must be a clear lint error
// within 1 s of CPU and 200 MB of memory.
func TestLintHostileInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	okRunbook := write("ok.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: ok\ninputs:\n  x: {type: string, prompt: X, optional: true}\nsteps:\n  - id: a\n    run: shell\n    with: {command: \"true\"}\n")
	bomb := write("bomb.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: bomb\nsteps:\n  - id: a\n    run: shell\n    with:\n      command: \"true\"\n      env:\n"+lintBomb("        ", 8, 9))
	answers := write("answers.yaml", "inputs:\n"+lintBomb("  ", 8, 9))
	brackets := write("brackets.yaml", strings.Repeat("[", 100_000))
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		stdin bool
		setup func(t *testing.T)
		want  string
	}{
		{name: "alias bomb runbook", args: []string{bomb}, want: bomb + ":15:"},
		{name: "alias bomb answers", args: []string{okRunbook, "--answers", answers}, want: answers + ":7:"},
		{name: "100 KB of [", args: []string{brackets}, want: brackets + ":1:32769: more than 32768 lines and YAML indicators"},
		{name: "/dev/zero", args: []string{"/dev/zero"}, want: "/dev/zero: larger than 4 MiB"},
		{name: "FIFO written forever", args: []string{fifo}, setup: func(t *testing.T) { writeForever(t, fifo) }, want: fifo + ": larger than 4 MiB"},
		{name: "stdin fed forever", args: []string{"/dev/stdin"}, stdin: true, want: "/dev/stdin: larger than 4 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var in io.Reader // nil: no stdin
			if c.stdin {
				in = endless{}
			}
			r, err := hostile.Run(ctx, hostile.DefaultLimit, in, []string{"NO_COLOR=1"}, drbookBin, append([]string{"lint"}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("drbook lint %s: %s", c.name, r)
			if r.ExitCode != exitFailed {
				t.Errorf("exit %d, want %d (lint problems)\nstdout: %s\nstderr: %s", r.ExitCode, exitFailed, r.Stdout, r.Stderr)
			}
			if !strings.Contains(r.Stdout, c.want) {
				t.Errorf("output does not contain %q:\n%s", c.want, r.Stdout)
			}
			if r.CPU > time.Second {
				t.Errorf("took %v of CPU, want under 1 s", r.CPU)
			}
			if r.HWM > 200<<20 || r.PeakRSS > 200<<20 {
				t.Errorf("peak RSS: VmHWM %d MB, ru_maxrss %d MB; want under 200 MB", r.HWM>>20, r.PeakRSS>>20)
			}
		})
	}
}

// writeForever writes to a FIFO until its reader goes away or the test
// ends; the test waits for the writer to stop.
func writeForever(t *testing.T, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		if f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close() // wakes an open that still waits for a reader
		}
		<-done
	})
	go func() {
		defer close(done)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		chunk := []byte(strings.Repeat("key: value\n", 1000))
		for ctx.Err() == nil {
			if _, err := f.Write(chunk); err != nil {
				return // EPIPE: the reader closed
			}
		}
	}()
}

// TestAgentFileArgsHostile: files the drbook-agent CLI reads from its
// operator (a keys manifest, a passphrase file) are read with a cap, so
// /dev/zero in their place is a clear error within 1 s and 200 MB.
func TestAgentFileArgsHostile(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"keys manifest", []string{"keys", "verify", "--manifest", "/dev/zero", "--data", data}, 2, "manifest /dev/zero: larger than 64 MiB"},
		{"passphrase file", []string{"backup", "create", "--key-file", "/dev/zero", "--data", data}, 1, "/dev/zero: larger than 64 KiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r, err := hostile.Run(ctx, hostile.DefaultLimit, nil, nil, agentBin, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("drbook-agent %s: %s", c.name, r)
			if r.ExitCode != c.code || !strings.Contains(r.Stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.ExitCode, r.Stderr, c.code, c.want)
			}
			if r.CPU > time.Second || r.HWM > 200<<20 {
				t.Errorf("cpu %v, VmHWM %d MB: want under 1 s and 200 MB", r.CPU, r.HWM>>20)
			}
		})
	}
}
