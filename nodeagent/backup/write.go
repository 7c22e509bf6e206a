package backup

import (
	"compress/flate"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"time"
)

// Meta is the plaintext metadata of a backup. It is readable without the
// passphrase (ReadMeta) and authenticated by Read.
type Meta struct {
	// ClusterID identifies the cluster the backup was taken from.
	ClusterID string `json:"cluster_id"`
	// NodeID identifies the node that wrote the backup.
	NodeID string `json:"node_id"`
	// CreatedAt is when the backup was taken.
	CreatedAt time.Time `json:"created_at"`
	// KeyCount is the number of keys in the snapshot.
	KeyCount int `json:"key_count"`
	// AppliedIndex is the Raft index the snapshot reflects.
	AppliedIndex uint64 `json:"applied_index"`
	// PayloadSHA256 is the hex SHA-256 of the payload; Write sets it.
	PayloadSHA256 string `json:"payload_sha256"`
}

// Write writes a backup of payload with meta to w, encrypted under a key
// derived from passphrase with argon2id parameters p. It sets
// meta.PayloadSHA256 from payload (any value given is replaced). The output is
// produced in one pass with memory independent of the payload size beyond
// the KDF's.
func Write(w io.Writer, meta Meta, payload []byte, passphrase []byte, p KDFParams) error {
	return write(w, meta, payload, passphrase, p, DefaultChunkSize)
}

func write(w io.Writer, meta Meta, payload, passphrase []byte, p KDFParams, chunkSize int) error {
	if len(passphrase) == 0 {
		return ErrEmptyPassphrase
	}
	if !p.valid() {
		return fmt.Errorf("%w: got %+v", ErrKDFParams, p)
	}
	if len(payload) > MaxPayloadSize {
		return fmt.Errorf("%w: payload %d bytes > %d", ErrTooLarge, len(payload), MaxPayloadSize)
	}
	sum := sha256.Sum256(payload)
	meta.PayloadSHA256 = hex.EncodeToString(sum[:])
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("backup: encode metadata: %w", err)
	}
	if len(metaJSON) > MaxMetaSize {
		return fmt.Errorf("%w: metadata %d bytes > %d", ErrTooLarge, len(metaJSON), MaxMetaSize)
	}
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return fmt.Errorf("backup: generate salt: %w", err)
	}
	k, err := deriveKeys(passphrase, salt, p)
	if err != nil {
		return fmt.Errorf("backup: derive keys: %w", err)
	}

	hdr, mac := buildHeader(k, p, salt, chunkSize, uint64(len(payload)), metaJSON)
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("backup: write header: %w", err)
	}

	cw := newChunkWriter(w, k, mac, chunkSize)
	zw, err := flate.NewWriter(cw, flate.BestSpeed)
	if err != nil {
		return fmt.Errorf("backup: compressor: %w", err)
	}
	if _, err := zw.Write(payload); err != nil {
		return fmt.Errorf("backup: write payload: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("backup: write payload: %w", err)
	}
	if err := cw.close(); err != nil {
		return fmt.Errorf("backup: write final chunk: %w", err)
	}
	return nil
}

// buildHeader returns the header bytes and the header MAC.
func buildHeader(k *keys, p KDFParams, salt []byte, chunkSize int, payloadLen uint64, metaJSON []byte) (hdr, mac []byte) {
	hdr = make([]byte, 0, headerFixed+len(metaJSON)+headerTail)
	hdr = append(hdr, Magic...)
	hdr = binary.BigEndian.AppendUint16(hdr, FormatVersion)
	hdr = binary.BigEndian.AppendUint32(hdr, p.Time)
	hdr = binary.BigEndian.AppendUint32(hdr, p.MemoryKiB)
	hdr = append(hdr, p.Threads)
	hdr = append(hdr, salt...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(chunkSize)) // #nosec G115 -- chunk sizes are small constants (KiB..MiB) chosen by this package
	hdr = binary.BigEndian.AppendUint64(hdr, payloadLen)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(metaJSON))) // #nosec G115 -- len(metaJSON) <= MaxMetaSize, checked in write
	hdr = binary.BigEndian.AppendUint32(hdr, crc32.Checksum(hdr, crcTable))
	hdr = append(hdr, metaJSON...)
	hdr = append(hdr, k.keyCheck()...)
	mac = k.headerMAC(hdr)
	hdr = append(hdr, mac...)
	hdr = binary.BigEndian.AppendUint32(hdr, crc32.Checksum(hdr[headerFixed:], crcTable))
	return hdr, mac
}

func newChunkWriter(w io.Writer, k *keys, aad []byte, chunkSize int) *chunkWriter {
	return &chunkWriter{w: w, k: k, aad: aad, buf: make([]byte, 0, chunkSize), rec: make([]byte, recordHdrSize, recordHdrSize+chunkSize+tagSize)}
}

// chunkWriter cuts the compressed stream into chunks and writes each as an
// encrypted record. A full chunk is held back until more data arrives, so
// that the last chunk written is always the one with the final flag.
type chunkWriter struct {
	w     io.Writer
	k     *keys
	aad   []byte
	buf   []byte
	rec   []byte
	index uint64
	nonce [12]byte
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(false); err != nil {
				return n - len(p), err
			}
		}
		m := copy(c.buf[len(c.buf):cap(c.buf)], p)
		c.buf = c.buf[:len(c.buf)+m]
		p = p[m:]
	}
	return n, nil
}

func (c *chunkWriter) flush(final bool) error {
	rec := c.k.aead.Seal(c.rec[:recordHdrSize], chunkNonce(c.nonce[:], c.index, final), c.buf, c.aad) // #nosec G407 -- chunkNonce derives a unique nonce per chunk from a random per-file prefix and the chunk index (STREAM construction)
	word := uint32(len(rec) - recordHdrSize)                                                          // #nosec G115 -- a record is at most one chunk plus the tag, far below 4 GiB
	if final {
		word |= finalBit
	}
	binary.BigEndian.PutUint32(rec[0:4], word)
	binary.BigEndian.PutUint32(rec[4:8], crc32.Checksum(rec[0:4], crcTable))
	if _, err := c.w.Write(rec); err != nil {
		return err
	}
	c.index++
	c.buf = c.buf[:0]
	return nil
}

func (c *chunkWriter) close() error { return c.flush(true) }
