package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
)

// TestAnswerTooLarge: a node whose drbook-agent prints 80 MB instead of a
// JSON answer gets a clear error naming what was dropped: drbook keeps 64 MiB of it.
func TestAnswerTooLarge(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "drbook-agent")
	script := "#!/bin/sh\nhead -c 80000000 /dev/zero | tr '\\0' x\n"
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil { // #nosec G306 -- a test script that must be executable
		t.Fatal(err)
	}
	n := &runbooks.Node{Name: "n1", Transport: runbooks.TransportLocal}
	n.Agent.Command = fake
	x := &steps.Exec{Stdout: io.Discard, Stderr: io.Discard}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out map[string]any
	_, err := call(ctx, x, &transport.Local{}, n, []string{"status"}, nil, &out)
	if !errors.Is(err, ErrAnswerTooLarge) {
		t.Fatalf("err %v, want ErrAnswerTooLarge", err)
	}
	if want := "12891136 bytes more were dropped"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
