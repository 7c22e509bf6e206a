package backup

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
	"time"
)

// synthPayload builds a realistic snapshot of n keys: one JSON object per
// key with its metadata and 64 bytes of encrypted (random) key material
// (base64 in JSON), about 205 bytes per key, so 100,000 keys make about 20 MB
// whose random part does not compress.
func synthPayload(tb testing.TB, n int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	buf.Grow(n * 240)
	material := make([]byte, 64)
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		if _, err := rand.Read(material); err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&buf, `{"id":"key-%06d","alg":"AES-256-GCM","version":%d,"created":%q,"owner":"team-%02d","state":"active","wrapped":%q}`+"\n",
			i, 1+i%5, created.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i%40, base64.StdEncoding.EncodeToString(material))
	}
	return buf.Bytes()
}

func BenchmarkWrite100k(b *testing.B) {
	payload := synthPayload(b, 100_000)
	meta := testMeta()
	meta.KeyCount = 100_000
	var out bytes.Buffer
	out.Grow(len(payload) + len(payload)/4)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := Write(&out, meta, payload, pass, DefaultKDF); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(payload))/1e6, "payload-MB")
	b.ReportMetric(float64(out.Len())/1e6, "file-MB")
}

func BenchmarkRead100k(b *testing.B) {
	payload := synthPayload(b, 100_000)
	meta := testMeta()
	meta.KeyCount = 100_000
	var out bytes.Buffer
	if err := Write(&out, meta, payload, pass, DefaultKDF); err != nil {
		b.Fatal(err)
	}
	file := out.Bytes()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		_, got, err := Read(bytes.NewReader(file), pass)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(payload) {
			b.Fatal("short payload")
		}
	}
	b.ReportMetric(float64(len(file))/1e6, "file-MB")
}

// BenchmarkKDF measures DefaultKDF alone, the fixed cost of every Write and Read.
func BenchmarkKDF(b *testing.B) {
	salt := make([]byte, saltSize)
	for b.Loop() {
		if _, err := deriveKeys(pass, salt, DefaultKDF); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteIncompressible20MB is the worst case for the compressor: a
// raw binary payload of random bytes.
func BenchmarkWriteIncompressible20MB(b *testing.B) {
	payload := make([]byte, 20<<20)
	if _, err := rand.Read(payload); err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	out.Grow(len(payload) + len(payload)/8)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := Write(&out, testMeta(), payload, pass, DefaultKDF); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.Len())/1e6, "file-MB")
}
