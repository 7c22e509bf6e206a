package capread

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// endless never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

func TestReadAll(t *testing.T) {
	cases := []struct {
		name  string
		in    io.Reader
		limit int64
		want  string
		err   string
	}{
		{"under", strings.NewReader("abc"), 4, "abc", ""},
		{"at the cap", strings.NewReader("abcd"), 4, "abcd", ""},
		{"one over", strings.NewReader("abcde"), 4, "", "x: larger than 4 bytes"},
		{"endless", endless{}, 1 << 20, "", "x: larger than 1 MiB"},
		{"empty", strings.NewReader(""), 4, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ReadAll(c.in, c.limit, "x")
			switch {
			case c.err == "" && (err != nil || string(got) != c.want):
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			case c.err != "" && (err == nil || err.Error() != c.err+" (read stopped there)" || !errors.Is(err, ErrTooLarge)):
				t.Fatalf("err %v, want %q wrapping ErrTooLarge", err, c.err)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(small, 5); err != nil || string(b) != "hello" {
		t.Fatalf("got %q, %v", b, err)
	}
	if _, err := ReadFile(small, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if _, err := ReadFile("/dev/zero", 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("/dev/zero: err %v, want ErrTooLarge", err)
	}
	if _, err := ReadFile(dir, 1<<20); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("directory: err %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: err %v, want ErrNotExist", err)
	}
}

// TestReadFileContextFIFO: a FIFO whose writer never writes nor closes is
// abandoned when the context ends.
func TestReadFileContextFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	w := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			w <- nil
			return
		}
		w <- f // held open, silent, until the test ends
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := ReadFileContext(ctx, p, 1<<20)
	if f := <-w; f != nil {
		defer f.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestBuffer(t *testing.T) {
	b := Buffer{Limit: 5}
	for _, s := range []string{"ab", "cd", "efgh", "ij"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if b.String() != "abcde" || b.Over() != 5 {
		t.Fatalf("kept %q, over %d; want abcde and 5", b.String(), b.Over())
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{4 << 20: "4 MiB", 64 << 10: "64 KiB", 10: "10 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
