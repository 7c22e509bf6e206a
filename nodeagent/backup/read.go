package backup

import (
	"bytes"
	"compress/flate"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// header is a parsed, checksummed (not yet authenticated) backup header.
type header struct {
	raw        []byte // all header bytes, magic to final CRC
	kdf        KDFParams
	salt       []byte
	chunkSize  int
	payloadLen uint64
	meta       Meta
	keyCheck   []byte
	mac        []byte
}

// ReadMeta reads only the plaintext header of a backup and returns its
// metadata, after checking the magic, the version and the header checksums.
// It needs no passphrase and does not authenticate the metadata: use it to
// list backups, and Read to trust one.
func ReadMeta(r io.Reader) (Meta, error) {
	h, err := readHeader(r)
	if err != nil {
		return Meta{}, err
	}
	return h.meta, nil
}

// readFull reads len(buf) bytes; running out of input is ErrTruncated.
func readFull(r io.Reader, buf []byte, what string) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: in %s", ErrTruncated, what)
		}
		return fmt.Errorf("backup: read %s: %w", what, err)
	}
	return nil
}

func readHeader(r io.Reader) (*header, error) {
	fixed := make([]byte, headerFixed)
	n, err := io.ReadFull(r, fixed[:len(Magic)])
	if err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("%w: empty file", ErrTruncated)
		case errors.Is(err, io.ErrUnexpectedEOF) && bytes.Equal(fixed[:n], []byte(Magic)[:n]):
			return nil, fmt.Errorf("%w: in magic", ErrTruncated)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, ErrNotBackup
		}
		return nil, fmt.Errorf("backup: read magic: %w", err)
	}
	if string(fixed[:len(Magic)]) != Magic {
		return nil, ErrNotBackup
	}
	if err := readFull(r, fixed[8:10], "version"); err != nil {
		return nil, err
	}
	if v := binary.BigEndian.Uint16(fixed[8:10]); v != FormatVersion {
		return nil, fmt.Errorf("%w: file has version %d", ErrUnsupportedVersion, v)
	}
	if err := readFull(r, fixed[10:], "header"); err != nil {
		return nil, err
	}
	if binary.BigEndian.Uint32(fixed[fixedSize:]) != crc32.Checksum(fixed[:fixedSize], crcTable) {
		return nil, fmt.Errorf("%w: header checksum", ErrCorrupt)
	}
	h := &header{
		kdf: KDFParams{
			Time:      binary.BigEndian.Uint32(fixed[10:14]),
			MemoryKiB: binary.BigEndian.Uint32(fixed[14:18]),
			Threads:   fixed[18],
		},
		salt:       fixed[19:51],
		payloadLen: binary.BigEndian.Uint64(fixed[55:63]),
	}
	chunkSize := binary.BigEndian.Uint32(fixed[51:55])
	metaLen := binary.BigEndian.Uint32(fixed[63:67])
	switch {
	case metaLen > MaxMetaSize:
		return nil, fmt.Errorf("%w: metadata length %d > %d", ErrCorrupt, metaLen, MaxMetaSize)
	case chunkSize < MinChunkSize || chunkSize > MaxChunkSize:
		return nil, fmt.Errorf("%w: chunk size %d out of range", ErrCorrupt, chunkSize)
	case h.payloadLen > MaxPayloadSize:
		return nil, fmt.Errorf("%w: payload length %d > %d", ErrCorrupt, h.payloadLen, MaxPayloadSize)
	case !h.kdf.valid():
		return nil, fmt.Errorf("%w: argon2id parameters %+v out of range", ErrCorrupt, h.kdf)
	}
	h.chunkSize = int(chunkSize)
	h.raw = make([]byte, headerFixed+int(metaLen)+headerTail)
	copy(h.raw, fixed)
	h.salt = h.raw[19:51]
	if err := readFull(r, h.raw[headerFixed:], "header"); err != nil {
		return nil, err
	}
	end := len(h.raw) - crcSize
	if binary.BigEndian.Uint32(h.raw[end:]) != crc32.Checksum(h.raw[headerFixed:end], crcTable) {
		return nil, fmt.Errorf("%w: metadata checksum", ErrCorrupt)
	}
	metaJSON := h.raw[headerFixed : headerFixed+int(metaLen)]
	h.keyCheck = h.raw[headerFixed+int(metaLen) : headerFixed+int(metaLen)+macSize]
	h.mac = h.raw[headerFixed+int(metaLen)+macSize : end]
	if err := json.Unmarshal(metaJSON, &h.meta); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrCorrupt, err)
	}
	if s, err := hex.DecodeString(h.meta.PayloadSHA256); err != nil || len(s) != sha256.Size {
		return nil, fmt.Errorf("%w: metadata payload_sha256 is not a SHA-256", ErrCorrupt)
	}
	return h, nil
}

// Read reads a backup written by Write and returns its metadata and payload.
// It verifies everything — magic, version, header checksums, key check,
// header MAC, every chunk's authentication and order, the final chunk, the
// absence of trailing data, and the payload's length and SHA-256 — before it
// returns; on any failure it returns only an error (see the package errors).
// Memory use is the payload plus the KDF's and one chunk.
func Read(r io.Reader, passphrase []byte) (Meta, []byte, error) {
	h, err := readHeader(r)
	if err != nil {
		return Meta{}, nil, err
	}
	k, err := deriveKeys(passphrase, h.salt, h.kdf)
	if err != nil {
		return Meta{}, nil, fmt.Errorf("backup: derive keys: %w", err)
	}
	if !hmac.Equal(k.keyCheck(), h.keyCheck) {
		return Meta{}, nil, ErrWrongPassphrase
	}
	if !hmac.Equal(k.headerMAC(h.raw[:len(h.raw)-macSize-crcSize]), h.mac) {
		return Meta{}, nil, fmt.Errorf("%w: header authentication", ErrCorrupt)
	}
	cr := &chunkReader{r: r, k: k, aad: h.mac, chunkSize: h.chunkSize}
	zr := flate.NewReader(cr)
	var out bytes.Buffer
	out.Grow(int(min(h.payloadLen, 64<<20)))                           // #nosec G115 -- min() bounds it to 64 MiB
	n, err := io.Copy(&out, io.LimitReader(zr, int64(h.payloadLen)+1)) // #nosec G115 -- a header length above MaxInt64 gives a negative limit: nothing is read and the length check below refuses the file
	if cr.err != nil {
		return Meta{}, nil, cr.err
	}
	if err != nil {
		return Meta{}, nil, fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
	}
	// #nosec G115 -- n comes from io.Copy and is never negative
	if uint64(n) != h.payloadLen {
		return Meta{}, nil, fmt.Errorf("%w: payload is %d bytes, header says %d", ErrCorrupt, n, h.payloadLen)
	}
	// The compressed stream ended: the chunks must end with it, and the file
	// with the final chunk.
	if extra, err := io.Copy(io.Discard, cr); err != nil || extra != 0 {
		if cr.err != nil {
			return Meta{}, nil, cr.err
		}
		return Meta{}, nil, fmt.Errorf("%w: data after the compressed stream", ErrCorrupt)
	}
	var probe [1]byte
	if m, _ := io.ReadFull(r, probe[:]); m != 0 {
		return Meta{}, nil, fmt.Errorf("%w: data after the final chunk", ErrCorrupt)
	}
	sum := sha256.Sum256(out.Bytes())
	if hex.EncodeToString(sum[:]) != h.meta.PayloadSHA256 {
		return Meta{}, nil, fmt.Errorf("%w: payload SHA-256 mismatch", ErrCorrupt)
	}
	return h.meta, out.Bytes(), nil
}

// chunkReader authenticates and decrypts chunk records one at a time and
// serves their plaintext, the compressed stream. It implements io.ByteReader
// so that flate reads from it without buffering ahead.
type chunkReader struct {
	r         io.Reader
	k         *keys
	aad       []byte
	chunkSize int
	index     uint64
	final     bool // the final chunk has been decrypted
	buf       []byte
	pos       int
	rec       []byte
	nonce     [12]byte
	err       error // first verification error, sticky
}

// next reads, checks and decrypts the next record into buf.
func (c *chunkReader) next() error {
	if c.final {
		return io.EOF
	}
	var hdr [recordHdrSize]byte
	if err := readFull(c.r, hdr[:], fmt.Sprintf("chunk %d header", c.index)); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(hdr[4:]) != crc32.Checksum(hdr[:4], crcTable) {
		return fmt.Errorf("%w: chunk %d header checksum", ErrCorrupt, c.index)
	}
	word := binary.BigEndian.Uint32(hdr[:4])
	final := word&finalBit != 0
	l := int(word &^ finalBit)
	if (!final && l != c.chunkSize+tagSize) || l < tagSize || l > c.chunkSize+tagSize {
		return fmt.Errorf("%w: chunk %d length %d", ErrCorrupt, c.index, l)
	}
	if cap(c.rec) < l {
		c.rec = make([]byte, 0, c.chunkSize+tagSize)
	}
	c.rec = c.rec[:l]
	if err := readFull(c.r, c.rec, fmt.Sprintf("chunk %d", c.index)); err != nil {
		return err
	}
	pt, err := c.k.aead.Open(c.buf[:0], chunkNonce(c.nonce[:], c.index, final), c.rec, c.aad)
	if err != nil {
		return fmt.Errorf("%w: chunk %d authentication", ErrCorrupt, c.index)
	}
	c.buf, c.pos = pt, 0
	c.index++
	c.final = final
	return nil
}

func (c *chunkReader) fill() error {
	for c.pos == len(c.buf) {
		if c.err != nil {
			return c.err
		}
		if err := c.next(); err != nil {
			if err != io.EOF {
				c.err = err
			}
			return err
		}
	}
	return nil
}

// Read implements io.Reader.
func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := c.fill(); err != nil {
		return 0, err
	}
	n := copy(p, c.buf[c.pos:])
	c.pos += n
	return n, nil
}

// ReadByte implements io.ByteReader.
func (c *chunkReader) ReadByte() (byte, error) {
	if err := c.fill(); err != nil {
		return 0, err
	}
	b := c.buf[c.pos]
	c.pos++
	return b, nil
}
