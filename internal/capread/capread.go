// Package capread reads files and streams with a hard size cap. It is the one
// way drbook reads a document it will parse (runbooks, inventories, answers,
// secret files, lock files, manifests): whatever the file is — a regular
// file, a device such as /dev/zero, a FIFO, a pipe on stdin — at most the
// cap plus one byte is ever read, so a hostile or mistaken path cannot make
// drbook allocate more than the cap.
package capread

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// ErrTooLarge is wrapped by every error about input over its cap.
var ErrTooLarge = errors.New("input is larger than its size limit")

// ErrIsDir is returned (in an *fs.PathError) for a directory.
var ErrIsDir = errors.New("is a directory, not a file")

// TooLargeError says which input went over which cap.
type TooLargeError struct {
	// Name is the file name (or a description of the stream).
	Name string
	// Limit is the cap in bytes.
	Limit int64
}

// Error reads "NAME: larger than 4 MiB (read stopped there)".
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: larger than %s (read stopped there)", e.Name, Size(e.Limit))
}

// Is lets errors.Is(err, ErrTooLarge) match.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Size formats a byte count the way the messages do: "4 MiB", "64 KiB", "10 bytes".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ReadAll reads r to its end, or fails with a *TooLargeError as soon as more
// than limit bytes arrive. It never reads more than limit+1 bytes from r.
func ReadAll(r io.Reader, limit int64, name string) ([]byte, error) {
	return readAll(r, limit, name, 0)
}

func readAll(r io.Reader, limit int64, name string, sizeHint int64) ([]byte, error) {
	if limit < 0 {
		limit = 0
	}
	lr := io.LimitReader(r, limit+1)
	// Read in chunks, never copying while growing: the first chunk is the
	// size the file reports (trusted only up to the cap), or 64 KiB; the
	// rest 1 MiB each. A typical file is one chunk, returned as is; a
	// refused one never costs more than the cap.
	size := int64(64 << 10)
	if sizeHint > 0 {
		size = min(sizeHint, limit) + 1
	}
	var chunks [][]byte
	var total int64
	for {
		buf := make([]byte, min(size, limit+1-total))
		n, err := io.ReadFull(lr, buf)
		if n > 0 {
			chunks = append(chunks, buf[:n])
			total += int64(n)
		}
		if total > limit {
			return nil, &TooLargeError{Name: name, Limit: limit}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		size = 1 << 20
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	return bytes.Join(chunks, nil), nil
}

// ReadFile reads the file at path with a cap (see ReadAll). It works the same
// for regular files, devices, FIFOs and pipes: the size the file reports is
// never trusted. A directory is an error.
func ReadFile(path string, limit int64) ([]byte, error) {
	return ReadFileContext(context.Background(), path, limit)
}

// ReadFileContext is ReadFile that stops when ctx is done: a FIFO or pipe
// whose writer never finishes is abandoned (reading from it fails with
// ctx's error). Opening a FIFO that has no writer at all still waits for
// one: that is how open(2) works.
func ReadFileContext(ctx context.Context, path string, limit int64) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the caller names the file the operator gave; its size is capped here
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: ErrIsDir}
	}
	var hint int64
	if st.Mode().IsRegular() {
		hint = st.Size()
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			// Pipes and FIFOs are pollable: a past deadline wakes a blocked
			// Read. Regular files ignore it (and never block for long).
			_ = f.SetReadDeadline(time.Now())
		})
		defer stop()
	}
	b, err := readAll(f, limit, path, hint)
	if err != nil && ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("read %s: %w", path, ctx.Err())
	}
	return b, err
}

// Buffer is an io.Writer that keeps at most Limit bytes and counts the rest.
// Writes never fail, so a producer (a remote command's output, say) is not
// disturbed; after it is done, Over tells whether anything was dropped.
type Buffer struct {
	// Limit is the number of bytes kept.
	Limit int
	buf   []byte
	over  int64
}

// Write keeps what fits under the limit and counts the rest.
func (b *Buffer) Write(p []byte) (int, error) {
	room := b.Limit - len(b.buf)
	if room >= len(p) {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	if room > 0 {
		b.buf = append(b.buf, p[:room]...)
	}
	b.over += int64(len(p) - max(room, 0))
	return len(p), nil
}

// Bytes returns the bytes kept.
func (b *Buffer) Bytes() []byte { return b.buf }

// String returns the bytes kept as a string.
func (b *Buffer) String() string { return string(b.buf) }

// Over returns how many bytes were dropped (0 if everything fit).
func (b *Buffer) Over() int64 { return b.over }
