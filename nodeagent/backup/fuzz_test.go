package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read. It must never panic, must return
// one of the package's sentinel errors for anything it refuses, and may
// accept only a file whose payload matches its metadata. Seeds: a valid
// backup, truncated and bit-flipped copies, and non-backups.
func FuzzRead(f *testing.F) {
	passphrase := []byte("fuzz passphrase")
	var buf bytes.Buffer
	if err := write(&buf, testMeta(), []byte("fuzz payload: key material and metadata"), passphrase, fastKDF, MinChunkSize); err != nil {
		f.Fatal(err)
	}
	valid := buf.Bytes()
	f.Add(valid)
	for _, cut := range []int{0, 4, 10, 40, 70, len(valid) / 2, len(valid) - 1} {
		f.Add(valid[:cut])
	}
	for _, off := range []int{3, 9, 15, 40, 60, 64, 80, len(valid) - 30, len(valid) - 1} {
		b := bytes.Clone(valid)
		b[off] ^= 0x04
		f.Add(b)
	}
	f.Add([]byte("not a backup at all"))
	f.Add(append([]byte(Magic), 0, 1, 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, payload, err := Read(bytes.NewReader(data), passphrase)
		if err != nil {
			if payload != nil || meta != (Meta{}) {
				t.Fatal("data returned with an error")
			}
			for _, s := range []error{ErrNotBackup, ErrUnsupportedVersion, ErrWrongPassphrase, ErrCorrupt, ErrTruncated} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without sentinel: %v", err)
		}
		sum := sha256.Sum256(payload)
		if hex.EncodeToString(sum[:]) != meta.PayloadSHA256 {
			t.Fatal("accepted payload does not match its hash")
		}
		m2, err := ReadMeta(bytes.NewReader(data))
		if err != nil || m2 != meta {
			t.Fatalf("ReadMeta disagrees with Read: %v", err)
		}
	})
}

// FuzzReadMetaFixedCRC mutates header fields and recomputes the header
// checksums, so that the fuzzer reaches the bounds checks and the metadata
// decoder behind them. ReadMeta must never panic, must refuse out-of-range
// fields with ErrCorrupt, and anything it accepts must be within bounds.
func FuzzReadMetaFixedCRC(f *testing.F) {
	f.Add(uint32(1), uint32(MinKDFMemoryKiB), uint8(1), uint32(DefaultChunkSize), uint64(10), []byte(`{"node_id":"n1","payload_sha256":"`+strings.Repeat("ab", 32)+`"}`), uint16(0))
	f.Add(uint32(0xffffffff), uint32(0xffffffff), uint8(0xff), uint32(0xffffffff), uint64(1<<63), []byte(`{`), uint16(0xffff))
	f.Add(uint32(3), uint32(MaxKDFMemoryKiB+1), uint8(2), uint32(MaxChunkSize), uint64(MaxPayloadSize), []byte(`null`), uint16(3))
	// Nesting bombs as metadata: refused by the JSON decoder's depth limit,
	// in time linear in the (capped) metadata.
	for _, bomb := range []string{strings.Repeat("[", MaxMetaSize), strings.Repeat(`{"a":`, MaxMetaSize/5), `{"node_id":` + strings.Repeat("[", MaxMetaSize-20)} {
		f.Add(uint32(1), uint32(MinKDFMemoryKiB), uint8(1), uint32(DefaultChunkSize), uint64(10), []byte(bomb), uint16(0))
	}
	f.Fuzz(func(t *testing.T, tm, mem uint32, threads uint8, chunk uint32, plen uint64, meta []byte, metaLenDelta uint16) {
		if len(meta) > MaxMetaSize+16 {
			return
		}
		declared := uint32(len(meta)) + uint32(metaLenDelta%4) // sometimes longer than what follows
		var b []byte
		b = append(b, Magic...)
		b = binary.BigEndian.AppendUint16(b, FormatVersion)
		b = binary.BigEndian.AppendUint32(b, tm)
		b = binary.BigEndian.AppendUint32(b, mem)
		b = append(b, threads)
		b = append(b, make([]byte, saltSize)...)
		b = binary.BigEndian.AppendUint32(b, chunk)
		b = binary.BigEndian.AppendUint64(b, plen)
		b = binary.BigEndian.AppendUint32(b, declared)
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
		b = append(b, meta...)
		b = append(b, make([]byte, 2*macSize)...)
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[headerFixed:], crcTable))
		m, err := ReadMeta(bytes.NewReader(b))
		p := KDFParams{Time: tm, MemoryKiB: mem, Threads: threads}
		inBounds := p.valid() && chunk >= MinChunkSize && chunk <= MaxChunkSize && plen <= MaxPayloadSize && declared <= MaxMetaSize
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("unexpected error class: %v", err)
			}
			if !inBounds && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("out-of-range header not refused as corrupt: %v", err)
			}
			return
		}
		if !inBounds {
			t.Fatalf("out-of-range header accepted: %+v chunk %d payload %d meta %d", p, chunk, plen, declared)
		}
		if len(m.PayloadSHA256) != 64 {
			t.Fatalf("accepted metadata without a SHA-256: %+v", m)
		}
	})
}
