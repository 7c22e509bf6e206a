package steps

import (
	"io"
	"sync"
)

// capBuffer keeps the first max bytes written to it and drops the rest.
type capBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.buf); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		c.buf = append(c.buf, p[:room]...)
	}
	return len(p), nil
}

func (c *capBuffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf
}

// teeWriter writes to w (if any) and to the capture buffer.
func teeWriter(w io.Writer, c *capBuffer) io.Writer {
	if w == nil {
		return c
	}
	return io.MultiWriter(w, c)
}
