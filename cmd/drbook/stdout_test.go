package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestStdoutGuardReleaseWakesWatcher: release returns at once, not at the
// watcher's next poll timeout (made an hour here), and the guard still
// notices a reader that goes away.
func TestStdoutGuardReleaseWakesWatcher(t *testing.T) {
	old := stdoutPollEvery
	stdoutPollEvery = time.Hour
	t.Cleanup(func() { stdoutPollEvery = old })
	tests := []struct {
		name        string
		closeReader bool
	}{
		{"run over", false},
		{"reader gone", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			ctx, out, release := guardStdout(context.Background(), w)
			if _, err := out.Write([]byte("line\n")); err != nil {
				t.Fatal(err)
			}
			if tc.closeReader {
				r.Close()
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("the guard did not notice that the reader closed")
				}
			} else {
				defer r.Close()
				time.Sleep(200 * time.Millisecond) // the watcher is in its poll
			}
			done := make(chan struct{})
			go func() { release(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("release waited for the watcher's poll timeout")
			}
			if !tc.closeReader && context.Cause(ctx) == errStdoutClosed {
				t.Error("the run was cancelled as if stdout had closed")
			}
		})
	}
}
