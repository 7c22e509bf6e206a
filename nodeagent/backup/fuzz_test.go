package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
