package backup

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// fastKDF is the cheapest accepted KDF cost, to keep tests quick.
var fastKDF = KDFParams{Time: 1, MemoryKiB: MinKDFMemoryKiB, Threads: 1}

var pass = []byte("correct horse battery staple")

func testMeta() Meta {
	return Meta{
		ClusterID:    "cluster-7",
		NodeID:       "node-1",
		CreatedAt:    time.Date(2026, 11, 21, 3, 4, 5, 0, time.UTC),
		KeyCount:     3,
		AppliedIndex: 42,
	}
}

// payloadOf returns n bytes, the first half random, the second repetitive.
func payloadOf(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b[:n/2]); err != nil {
		t.Fatal(err)
	}
	for i := n / 2; i < n; i++ {
		b[i] = byte(i % 7)
	}
	return b
}

func mustWrite(t testing.TB, payload []byte, chunkSize int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf, testMeta(), payload, pass, fastKDF, chunkSize); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		payload   []byte
		chunkSize int
	}{
		{"empty", []byte{}, DefaultChunkSize},
		{"small", []byte("a few keys"), DefaultChunkSize},
		{"many chunks", payloadOf(t, 10_000), MinChunkSize},
		{"one default chunk", payloadOf(t, 50_000), DefaultChunkSize},
		{"several default chunks", payloadOf(t, 300_000), DefaultChunkSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := mustWrite(t, tc.payload, tc.chunkSize)
			meta, got, err := Read(bytes.NewReader(file), pass)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.payload) {
				t.Fatal("payload differs after round trip")
			}
			want := testMeta()
			sum := sha256.Sum256(tc.payload)
			want.PayloadSHA256 = hex.EncodeToString(sum[:])
			if meta != want {
				t.Fatalf("meta = %+v, want %+v", meta, want)
			}
			m2, err := ReadMeta(bytes.NewReader(file))
			if err != nil || m2 != want {
				t.Fatalf("ReadMeta = %+v, %v", m2, err)
			}
			if len(tc.payload) > 64 && bytes.Contains(file, tc.payload[:64]) {
				t.Fatal("payload appears in clear in the file")
			}
		})
	}
}

func TestWriteOverridesPayloadHash(t *testing.T) {
	m := testMeta()
	m.PayloadSHA256 = "bogus"
	var buf bytes.Buffer
	if err := Write(&buf, m, []byte("x"), pass, fastKDF); err != nil {
		t.Fatal(err)
	}
	got, _, err := Read(&buf, pass)
	if err != nil {
		t.Fatal(err)
	}
	if got.PayloadSHA256 == "bogus" || len(got.PayloadSHA256) != 64 {
		t.Fatalf("PayloadSHA256 = %q", got.PayloadSHA256)
	}
}

func TestSaltIsRandom(t *testing.T) {
	a := mustWrite(t, []byte("same"), DefaultChunkSize)
	b := mustWrite(t, []byte("same"), DefaultChunkSize)
	if bytes.Equal(a[19:51], b[19:51]) || bytes.Equal(a, b) {
		t.Fatal("two backups share a salt")
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		pass []byte
		p    KDFParams
		meta Meta
		want error
	}{
		{"empty passphrase", nil, fastKDF, testMeta(), ErrEmptyPassphrase},
		{"zero params", pass, KDFParams{}, testMeta(), ErrKDFParams},
		{"zero time", pass, KDFParams{Time: 0, MemoryKiB: MinKDFMemoryKiB, Threads: 1}, testMeta(), ErrKDFParams},
		{"too much time", pass, KDFParams{Time: MaxKDFTime + 1, MemoryKiB: MinKDFMemoryKiB, Threads: 1}, testMeta(), ErrKDFParams},
		{"too little memory", pass, KDFParams{Time: 1, MemoryKiB: MinKDFMemoryKiB - 1, Threads: 1}, testMeta(), ErrKDFParams},
		{"too much memory", pass, KDFParams{Time: 1, MemoryKiB: MaxKDFMemoryKiB + 1, Threads: 1}, testMeta(), ErrKDFParams},
		{"zero threads", pass, KDFParams{Time: 1, MemoryKiB: MinKDFMemoryKiB, Threads: 0}, testMeta(), ErrKDFParams},
		{"too many threads", pass, KDFParams{Time: 1, MemoryKiB: MinKDFMemoryKiB, Threads: MaxKDFThreads + 1}, testMeta(), ErrKDFParams},
		{"huge metadata", pass, fastKDF, Meta{NodeID: string(bytes.Repeat([]byte("n"), MaxMetaSize))}, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tc.meta, []byte("x"), tc.pass, tc.p); !errors.Is(err, tc.want) {
				t.Fatalf("Write err = %v, want %v", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Fatal("Write produced output before refusing")
			}
		})
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestWritePropagatesWriterErrors(t *testing.T) {
	for _, after := range []int{0, 200, 70_000} {
		err := write(&failWriter{after: after}, testMeta(), payloadOf(t, 200_000), pass, fastKDF, DefaultChunkSize)
		if err == nil {
			t.Fatalf("writer failing after %d bytes: no error", after)
		}
	}
}

// layout describes the regions of a test file.
type layout struct {
	metaLen    int
	headerEnd  int   // first byte of the chunk records
	recordOffs []int // offset of each chunk record
}

func layoutOf(t testing.TB, file []byte) layout {
	t.Helper()
	l := layout{metaLen: int(binary.BigEndian.Uint32(file[63:67]))}
	l.headerEnd = headerFixed + l.metaLen + headerTail
	for off := l.headerEnd; off < len(file); {
		l.recordOffs = append(l.recordOffs, off)
		word := binary.BigEndian.Uint32(file[off:])
		off += recordHdrSize + int(word&^finalBit)
	}
	return l
}

func flip(file []byte, off int) []byte {
	b := bytes.Clone(file)
	b[off] ^= 0x10
	return b
}

func TestReadSentinels(t *testing.T) {
	payload := payloadOf(t, 6000)
	file := mustWrite(t, payload, MinChunkSize)
	l := layoutOf(t, file)
	if len(l.recordOffs) < 3 {
		t.Fatalf("want several chunks, got %d", len(l.recordOffs))
	}
	other := mustWrite(t, payload, MinChunkSize)
	lo := layoutOf(t, other)

	withVersion := func(v uint16) []byte {
		b := bytes.Clone(file)
		binary.BigEndian.PutUint16(b[8:], v)
		return b
	}
	// refixCRCs recomputes both header CRCs after a deliberate edit, so that
	// only the cryptographic checks can catch it.
	refixCRCs := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[fixedSize:], crc32.Checksum(b[:fixedSize], crcTable))
		end := l.headerEnd - crcSize
		binary.BigEndian.PutUint32(b[end:], crc32.Checksum(b[headerFixed:end], crcTable))
		return b
	}
	editKDF := refixCRCs(func() []byte { b := bytes.Clone(file); b[13]++; return b }())
	editSalt := refixCRCs(flip(file, 30))
	editMeta := func() []byte {
		b := bytes.Clone(file)
		i := bytes.Index(b, []byte(`"key_count":3`))
		b[i+len(`"key_count":`)] = '4'
		return refixCRCs(b)
	}()
	editPayloadLen := refixCRCs(func() []byte { b := bytes.Clone(file); b[62]++; return b }())
	editChunkSize := refixCRCs(func() []byte { b := bytes.Clone(file); b[53] = 8; return b }())
	swapChunks := func() []byte {
		b := bytes.Clone(file)
		r0, r1, r2 := l.recordOffs[0], l.recordOffs[1], l.recordOffs[2]
		copy(b[r0:r2], append(bytes.Clone(file[r1:r2]), file[r0:r1]...))
		return b
	}()
	dropChunk := append(bytes.Clone(file[:l.recordOffs[1]]), file[l.recordOffs[2]:]...)
	spliceOther := append(bytes.Clone(file[:l.recordOffs[1]]), other[lo.recordOffs[1]:]...)
	last := l.recordOffs[len(l.recordOffs)-1]
	finalAsNonFinal := func() []byte {
		// Clear the final flag and fix the record CRC: authentication must
		// still refuse it (and the length no longer fits a non-final chunk).
		b := bytes.Clone(file)
		w := binary.BigEndian.Uint32(b[last:]) &^ finalBit
		binary.BigEndian.PutUint32(b[last:], w)
		binary.BigEndian.PutUint32(b[last+4:], crc32.Checksum(b[last:last+4], crcTable))
		return b
	}()
	nonFinalAsFinal := func() []byte {
		b := bytes.Clone(file[:l.recordOffs[2]])
		r := l.recordOffs[1]
		w := binary.BigEndian.Uint32(b[r:]) | finalBit
		binary.BigEndian.PutUint32(b[r:], w)
		binary.BigEndian.PutUint32(b[r+4:], crc32.Checksum(b[r:r+4], crcTable))
		return b
	}()

	for _, tc := range []struct {
		name string
		in   []byte
		pass []byte
		want error
	}{
		{"empty file", nil, pass, ErrTruncated},
		{"half magic", []byte("DRBK"), pass, ErrTruncated},
		{"magic only", []byte(Magic), pass, ErrTruncated},
		{"short garbage", []byte("hi"), pass, ErrNotBackup},
		{"text file", []byte("#!/bin/sh\necho not a backup\n"), pass, ErrNotBackup},
		{"gzip file", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, pass, ErrNotBackup},
		{"version 0", withVersion(0), pass, ErrUnsupportedVersion},
		{"version 2", withVersion(2), pass, ErrUnsupportedVersion},
		{"version 0xffff", withVersion(0xffff), pass, ErrUnsupportedVersion},
		{"wrong passphrase", file, []byte("Correct horse battery staple"), ErrWrongPassphrase},
		{"empty passphrase", file, nil, ErrWrongPassphrase},
		{"flip kdf time", flip(file, 13), pass, ErrCorrupt},
		{"flip kdf memory", flip(file, 16), pass, ErrCorrupt},
		{"flip kdf threads", flip(file, 18), pass, ErrCorrupt},
		{"flip salt", flip(file, 40), pass, ErrCorrupt},
		{"flip chunk size", flip(file, 53), pass, ErrCorrupt},
		{"flip payload length", flip(file, 60), pass, ErrCorrupt},
		{"flip metadata length", flip(file, 64), pass, ErrCorrupt},
		{"flip fixed CRC", flip(file, 68), pass, ErrCorrupt},
		{"flip metadata", flip(file, headerFixed+5), pass, ErrCorrupt},
		{"flip key check", flip(file, headerFixed+l.metaLen+3), pass, ErrCorrupt},
		{"flip header MAC", flip(file, headerFixed+l.metaLen+macSize+3), pass, ErrCorrupt},
		{"flip header CRC", flip(file, l.headerEnd-1), pass, ErrCorrupt},
		{"flip chunk length", flip(file, l.recordOffs[1]+2), pass, ErrCorrupt},
		{"flip chunk final flag", flip(file, l.recordOffs[1]), pass, ErrCorrupt},
		{"flip chunk CRC", flip(file, l.recordOffs[1]+5), pass, ErrCorrupt},
		{"flip chunk ciphertext", flip(file, l.recordOffs[1]+100), pass, ErrCorrupt},
		{"flip chunk tag", flip(file, l.recordOffs[2]-1), pass, ErrCorrupt},
		{"flip final chunk length", flip(file, last+3), pass, ErrCorrupt},
		{"flip final chunk", flip(file, len(file)-20), pass, ErrCorrupt},
		{"flip final tag", flip(file, len(file)-1), pass, ErrCorrupt},
		{"kdf params edited, CRC fixed", editKDF, pass, ErrWrongPassphrase},
		{"salt edited, CRC fixed", editSalt, pass, ErrWrongPassphrase},
		{"metadata edited, CRC fixed", editMeta, pass, ErrCorrupt},
		{"payload length edited, CRC fixed", editPayloadLen, pass, ErrCorrupt},
		{"chunk size edited, CRC fixed", editChunkSize, pass, ErrCorrupt},
		{"chunks swapped", swapChunks, pass, ErrCorrupt},
		{"chunk dropped", dropChunk, pass, ErrCorrupt},
		{"chunks spliced from another backup", spliceOther, pass, ErrCorrupt},
		{"final flag cleared", finalAsNonFinal, pass, ErrCorrupt},
		{"stream cut, last kept chunk marked final", nonFinalAsFinal, pass, ErrCorrupt},
		{"trailing byte", append(bytes.Clone(file), 0), pass, ErrCorrupt},
		{"backup appended", append(bytes.Clone(file), file...), pass, ErrCorrupt},
		{"cut inside fixed header", file[:40], pass, ErrTruncated},
		{"cut inside metadata", file[:headerFixed+10], pass, ErrTruncated},
		{"cut inside header MAC", file[:l.headerEnd-10], pass, ErrTruncated},
		{"cut after header", file[:l.headerEnd], pass, ErrTruncated},
		{"cut inside chunk header", file[:l.recordOffs[1]+3], pass, ErrTruncated},
		{"cut inside chunk", file[:l.recordOffs[1]+500], pass, ErrTruncated},
		{"cut at chunk boundary", file[:l.recordOffs[2]], pass, ErrTruncated},
		{"cut before final chunk", file[:last], pass, ErrTruncated},
		{"last byte missing", file[:len(file)-1], pass, ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta, got, err := Read(bytes.NewReader(tc.in), tc.pass)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read err = %v, want %v", err, tc.want)
			}
			t.Log(err)
			if got != nil || meta != (Meta{}) {
				t.Fatal("Read returned data with an error")
			}
			for _, other := range []error{ErrNotBackup, ErrUnsupportedVersion, ErrWrongPassphrase, ErrCorrupt, ErrTruncated} {
				if other != tc.want && errors.Is(err, other) {
					t.Fatalf("error %v matches two sentinels", err)
				}
			}
		})
	}
}

// TestReadTamperSweep flips one bit in every header byte and in a sample of
// chunk bytes, and truncates at a sample of offsets: each must be refused
// with the sentinel of its region.
func TestReadTamperSweep(t *testing.T) {
	file := mustWrite(t, payloadOf(t, 5000), MinChunkSize)
	l := layoutOf(t, file)
	expectFlip := func(off int) error {
		switch {
		case off < len(Magic):
			return ErrNotBackup
		case off < 10:
			return ErrUnsupportedVersion
		default:
			return ErrCorrupt
		}
	}
	var offsets []int
	for off := range l.headerEnd {
		offsets = append(offsets, off)
	}
	for off := l.headerEnd; off < len(file); off += 53 {
		offsets = append(offsets, off)
	}
	for _, r := range l.recordOffs {
		for i := range recordHdrSize {
			offsets = append(offsets, r+i)
		}
	}
	offsets = append(offsets, len(file)-1)
	for _, off := range offsets {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(file)
			b[off] ^= bit
			_, got, err := Read(bytes.NewReader(b), pass)
			if want := expectFlip(off); !errors.Is(err, want) || got != nil {
				t.Fatalf("flip %#x at offset %d: err = %v, want %v", bit, off, err, want)
			}
		}
	}
	for cut := 0; cut < len(file); cut += 1 + cut/4 {
		_, got, err := Read(bytes.NewReader(file[:cut]), pass)
		if !errors.Is(err, ErrTruncated) || got != nil {
			t.Fatalf("cut at %d of %d: err = %v, want ErrTruncated", cut, len(file), err)
		}
	}
}

// craft builds a file whose header and chunks authenticate but whose
// content breaks a later rule, to exercise the payload checks.
func craft(t *testing.T, metaJSON []byte, payloadLen uint64, compressed []byte, trailerInChunks []byte) []byte {
	t.Helper()
	salt := bytes.Repeat([]byte{1}, saltSize)
	k, err := deriveKeys(pass, salt, fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	hdr, mac := buildHeader(k, fastKDF, salt, MinChunkSize, payloadLen, metaJSON)
	buf.Write(hdr)
	cw := newChunkWriter(&buf, k, mac, MinChunkSize)
	cw.Write(compressed)
	cw.Write(trailerInChunks)
	if err := cw.close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func deflate(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func TestReadAuthenticatedButInconsistent(t *testing.T) {
	payload := payloadOf(t, 4000)
	sum := sha256.Sum256(payload)
	metaFor := func(hash string) []byte {
		m := testMeta()
		m.PayloadSHA256 = hash
		b, _ := json.Marshal(m)
		return b
	}
	good := metaFor(hex.EncodeToString(sum[:]))
	zero := metaFor(hex.EncodeToString(make([]byte, 32)))
	bomb := deflate(t, make([]byte, 1<<20))
	for _, tc := range []struct {
		name string
		file []byte
		want error
	}{
		{"control: consistent", craft(t, good, uint64(len(payload)), deflate(t, payload), nil), nil},
		{"payload hash mismatch", craft(t, zero, uint64(len(payload)), deflate(t, payload), nil), ErrCorrupt},
		{"payload longer than header says", craft(t, good, uint64(len(payload)-1), deflate(t, payload), nil), ErrCorrupt},
		{"payload shorter than header says", craft(t, good, uint64(len(payload)+1), deflate(t, payload), nil), ErrCorrupt},
		{"decompression bomb", craft(t, good, 10, bomb, nil), ErrCorrupt},
		{"garbage after compressed stream", craft(t, good, uint64(len(payload)), deflate(t, payload), []byte("junk")), ErrCorrupt},
		{"not deflate", craft(t, good, uint64(len(payload)), bytes.Repeat([]byte{0xff}, 3000), nil), ErrCorrupt},
		{"compressed stream cut", craft(t, good, uint64(len(payload)), deflate(t, payload)[:1000], nil), ErrCorrupt},
		{"metadata not JSON", craft(t, []byte("{"), 0, deflate(t, nil), nil), ErrCorrupt},
		{"metadata without hash", craft(t, []byte("{}"), 0, deflate(t, nil), nil), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got, err := Read(bytes.NewReader(tc.file), pass)
			if tc.want == nil {
				if err != nil || !bytes.Equal(got, payload) {
					t.Fatalf("control file refused: %v", err)
				}
				return
			}
			t.Log(err)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("Read err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadMetaErrors(t *testing.T) {
	file := mustWrite(t, []byte("payload"), DefaultChunkSize)
	l := layoutOf(t, file)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"not a backup", []byte("hello, world"), ErrNotBackup},
		{"version 9", func() []byte { b := bytes.Clone(file); b[9] = 9; return b }(), ErrUnsupportedVersion},
		{"flipped metadata", flip(file, headerFixed+3), ErrCorrupt},
		{"cut in header", file[:l.headerEnd-1], ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadMeta(bytes.NewReader(tc.in)); !errors.Is(err, tc.want) {
				t.Fatalf("ReadMeta err = %v, want %v", err, tc.want)
			}
		})
	}
	// ReadMeta needs only the header: chunk damage is Read's business.
	if _, err := ReadMeta(bytes.NewReader(file[:l.headerEnd])); err != nil {
		t.Fatalf("ReadMeta of a bare header: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReadPropagatesIOErrors(t *testing.T) {
	file := mustWrite(t, payloadOf(t, 5000), MinChunkSize)
	ioErr := errors.New("device gone")
	for _, cut := range []int{0, 5, 30, len(file) / 2} {
		r := io.MultiReader(bytes.NewReader(file[:cut]), errReader{ioErr})
		if _, _, err := Read(r, pass); !errors.Is(err, ioErr) {
			t.Fatalf("I/O error at %d: err = %v, want the reader's error", cut, err)
		}
	}
}

func TestGoldenV1(t *testing.T) {
	path := filepath.Join("testdata", "v1.drbkbak")
	payload := []byte("{\"keys\":[{\"id\":\"k1\",\"wrapped\":\"AAECAw==\"}]}\n")
	if *update {
		var buf bytes.Buffer
		if err := Write(&buf, testMeta(), payload, []byte("golden passphrase"), fastKDF); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	meta, got, err := Read(bytes.NewReader(file), []byte("golden passphrase"))
	if err != nil {
		t.Fatalf("format version 1 file no longer reads: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("payload %q", got)
	}
	want := testMeta()
	sum := sha256.Sum256(payload)
	want.PayloadSHA256 = hex.EncodeToString(sum[:])
	if meta != want {
		t.Fatalf("meta %+v, want %+v", meta, want)
	}
	if _, _, err := Read(bytes.NewReader(file), []byte("golden passphrasE")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase on golden file: %v", err)
	}
}

func TestWriteFileReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b1.drbkbak")
	payload := payloadOf(t, 100_000)
	if err := WriteFile(context.Background(), path, testMeta(), payload, pass, fastKDF); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file mode %#o, want 0600", st.Mode().Perm())
	}
	_, got, err := ReadFile(path, pass)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("ReadFile: %v", err)
	}
	// A refused write leaves nothing behind.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteFile(ctx, filepath.Join(dir, "b2.drbkbak"), testMeta(), payload, pass, fastKDF); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled WriteFile: %v", err)
	}
	if err := WriteFile(context.Background(), filepath.Join(dir, "b3.drbkbak"), testMeta(), payload, nil, fastKDF); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("WriteFile without passphrase: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only b1.drbkbak", names)
	}
}

func ExampleWrite() {
	var buf bytes.Buffer
	meta := Meta{ClusterID: "c1", NodeID: "n1", KeyCount: 1}
	if err := Write(&buf, meta, []byte("snapshot"), []byte("passphrase"), KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		panic(err)
	}
	_, payload, err := Read(&buf, []byte("passphrase"))
	fmt.Println(string(payload), err)
	// Output: snapshot <nil>
}
