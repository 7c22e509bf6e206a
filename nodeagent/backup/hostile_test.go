package backup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"strings"
	"testing"
	"time"
)

// headerWithMeta builds a backup header with valid checksums around meta.
func headerWithMeta(meta []byte) []byte {
	var b []byte
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, FormatVersion)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, MinKDFMemoryKiB)
	b = append(b, 1)
	b = append(b, make([]byte, saltSize)...)
	b = binary.BigEndian.AppendUint32(b, DefaultChunkSize)
	b = binary.BigEndian.AppendUint64(b, 10)
	b = binary.BigEndian.AppendUint32(b, uint32(len(meta))) // #nosec G115 -- test metadata is at most MaxMetaSize
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	b = append(b, meta...)
	b = append(b, make([]byte, 2*macSize)...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[headerFixed:], crcTable))
}

// TestHostileMetadata: metadata is bounded by the format (MaxMetaSize) and
// a nesting bomb in it, with every checksum right, is refused as corrupt,
// quickly. A device in place of a backup file is not a backup.
func TestHostileMetadata(t *testing.T) {
	cases := []struct {
		name string
		meta string
		want error
	}{
		{"64 KiB of [", strings.Repeat("[", MaxMetaSize), ErrCorrupt},
		{"nested objects", strings.Repeat(`{"a":`, MaxMetaSize/5), ErrCorrupt},
		{"nesting inside a field", `{"node_id":` + strings.Repeat("[", MaxMetaSize-20), ErrCorrupt},
		{"one byte over the cap", strings.Repeat(" ", MaxMetaSize+1), ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := ReadMeta(bytes.NewReader(headerWithMeta([]byte(c.meta))))
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	t.Run("/dev/zero", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadFile("/dev/zero", []byte("x")); !errors.Is(err, ErrNotBackup) {
			t.Fatalf("err %v, want ErrNotBackup", err)
		}
	})
}
