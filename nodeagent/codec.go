package nodeagent

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Key is one security object. Material is sealed under the cluster master
// key (CMK) with the key id as associated data; plaintext material never
// enters the raft log, snapshots or backups.
type Key struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Type    string `json:"type,omitempty"`
	Group   string `json:"group,omitempty"`
	Created int64  `json:"created_unix_nano"`
	Sealed  []byte `json:"-"`
}

// maxField bounds one encoded field so a damaged stream cannot make the
// decoder allocate without limit.
const maxField = 1 << 20

// keyWriter writes keys in the compact binary form used by snapshots,
// backups and bulk raft commands: per key, length-prefixed id, name, type,
// group, a varint creation time and the length-prefixed sealed material.
type keyWriter struct {
	w   byteWriter
	buf [binary.MaxVarintLen64]byte
}

// byteWriter is what keyWriter writes to: a *bufio.Writer or an in-memory
// *bytes.Buffer (no extra buffering).
type byteWriter interface {
	io.Writer
	io.StringWriter
}

// flusher is implemented by buffered writers.
type flusher interface{ Flush() error }

func newKeyWriter(w io.Writer) *keyWriter {
	if bw, ok := w.(byteWriter); ok {
		return &keyWriter{w: bw}
	}
	return &keyWriter{w: bufio.NewWriterSize(w, 256<<10)}
}

func (kw *keyWriter) uvarint(v uint64) error {
	n := binary.PutUvarint(kw.buf[:], v)
	_, err := kw.w.Write(kw.buf[:n])
	return err
}

func (kw *keyWriter) bytes(b []byte) error {
	if err := kw.uvarint(uint64(len(b))); err != nil {
		return err
	}
	_, err := kw.w.Write(b)
	return err
}

func (kw *keyWriter) str(s string) error {
	if err := kw.uvarint(uint64(len(s))); err != nil {
		return err
	}
	_, err := kw.w.WriteString(s)
	return err
}

// writeKey appends one key.
func (kw *keyWriter) writeKey(k *Key) error {
	for _, s := range []string{k.ID, k.Name, k.Type, k.Group} {
		if err := kw.str(s); err != nil {
			return err
		}
	}
	n := binary.PutVarint(kw.buf[:], k.Created)
	if _, err := kw.w.Write(kw.buf[:n]); err != nil {
		return err
	}
	return kw.bytes(k.Sealed)
}

// writeKeys writes a count followed by the keys, and flushes.
func (kw *keyWriter) writeKeys(keys []*Key) error {
	if err := kw.uvarint(uint64(len(keys))); err != nil {
		return err
	}
	for _, k := range keys {
		if err := kw.writeKey(k); err != nil {
			return err
		}
	}
	if f, ok := kw.w.(flusher); ok {
		return f.Flush()
	}
	return nil
}

// keyReader is the inverse of keyWriter.
type keyReader struct {
	r byteReader
}

// byteReader is what keyReader reads from: a *bufio.Reader or an in-memory
// *bytes.Reader.
type byteReader interface {
	io.Reader
	io.ByteReader
}

func newKeyReader(r io.Reader) *keyReader {
	if br, ok := r.(byteReader); ok {
		return &keyReader{r: br}
	}
	return &keyReader{r: bufio.NewReaderSize(r, 256<<10)}
}

func (kr *keyReader) bytes() ([]byte, error) {
	n, err := binary.ReadUvarint(kr.r)
	if err != nil {
		return nil, err
	}
	if n > maxField {
		return nil, fmt.Errorf("field of %d bytes exceeds limit", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(kr.r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (kr *keyReader) readKey() (*Key, error) {
	var fields [4]string
	for i := range fields {
		b, err := kr.bytes()
		if err != nil {
			return nil, err
		}
		fields[i] = string(b)
	}
	created, err := binary.ReadVarint(kr.r)
	if err != nil {
		return nil, err
	}
	sealed, err := kr.bytes()
	if err != nil {
		return nil, err
	}
	return &Key{ID: fields[0], Name: fields[1], Type: fields[2], Group: fields[3], Created: created, Sealed: sealed}, nil
}

// readKeys reads a count and that many keys.
func (kr *keyReader) readKeys() ([]*Key, error) {
	n, err := binary.ReadUvarint(kr.r)
	if err != nil {
		return nil, fmt.Errorf("read key count: %w", err)
	}
	if n > 1<<26 {
		return nil, errors.New("key count exceeds limit")
	}
	keys := make([]*Key, 0, min(n, 1<<20))
	for i := uint64(0); i < n; i++ {
		k, err := kr.readKey()
		if err != nil {
			return nil, fmt.Errorf("read key %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
