package plugin_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/hostile"
	"github.com/drbook/drbook/steps/plugin"
)

// TestLockFileHostile: a lock file that is /dev/zero or a FIFO written
// forever is refused as too large, in a child under a 2 GiB address-space
// limit, within 1 s of CPU and 200 MB.
func TestLockFileHostile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, plugin.LockFileName)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		writer     bool
	}{
		{"/dev/zero", "/dev/zero", false},
		{"FIFO written forever", fifo, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.writer {
				stop := feedForever(c.path)
				defer stop()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r, err := hostile.Test(ctx, hostile.DefaultLimit, "TestLockFileHostileChild", "HOSTILE_FILE="+c.path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s", c.name, r)
			if r.ExitCode != 0 || !strings.Contains(r.Stdout, c.path+": larger than 1 MiB") {
				t.Fatalf("want a refusal naming the file and 1 MiB: %s\n%s%s", r, r.Stdout, r.Stderr)
			}
			if r.CPU > time.Second || r.HWM > 200<<20 {
				t.Errorf("cpu %v, VmHWM %d MB: want under 1 s and 200 MB", r.CPU, r.HWM>>20)
			}
		})
	}
}

// TestLockFileHostileChild is the child side of TestLockFileHostile.
func TestLockFileHostileChild(t *testing.T) {
	if !hostile.IsChild() {
		return
	}
	_, err := plugin.ReadLockFile(os.Getenv("HOSTILE_FILE"))
	t.Logf("result: %v", err)
	os.Stdout.WriteString("result: " + errString(err) + "\n")
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// feedForever writes to a FIFO until its reader goes away; stop ends the
// writer and waits for it.
func feedForever(path string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		chunk := []byte(strings.Repeat("# pin\n", 2000))
		for ctx.Err() == nil {
			if _, err := f.Write(chunk); err != nil {
				return
			}
		}
	}()
	return func() {
		cancel()
		if f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-done
	}
}
