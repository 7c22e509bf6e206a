// Package backup writes and reads drbook's encrypted, authenticated, versioned
// backup files, and decides which backups retention removes.
//
// A backup holds one opaque payload (the agent's full snapshot) and plaintext
// metadata (Meta). The payload is compressed with DEFLATE and encrypted in
// chunks with AES-256-GCM under a key derived from a passphrase with argon2id.
// Read verifies the whole file before it returns anything, and tells apart a
// file that is not a backup (ErrNotBackup), a newer format
// (ErrUnsupportedVersion), a wrong passphrase (ErrWrongPassphrase), a file cut
// short (ErrTruncated) and any other damage or tampering (ErrCorrupt).
//
// # File format, version 1
//
// All integers are big-endian. CRC-32C uses the Castagnoli polynomial.
//
//	offset   size  field
//	0        8     magic "DRBKBAK\x00"
//	8        2     format version (1)
//	10       4     argon2id time (passes)
//	14       4     argon2id memory in KiB
//	18       1     argon2id threads
//	19       32    argon2id salt (random)
//	51       4     chunk size C: plaintext bytes per chunk
//	55       8     payload length (bytes before compression)
//	63       4     metadata length N
//	67       4     CRC-32C of bytes [0, 67)
//	71       N     metadata: JSON of Meta (plaintext, readable without the passphrase)
//	71+N     32    key check value
//	103+N    32    header MAC: HMAC-SHA256 of bytes [0, 103+N)
//	135+N    4     CRC-32C of bytes [71, 135+N)
//	139+N          chunk records, until and including the final one
//
// A chunk record is
//
//	4   word: bit 31 = final flag, bits 0-30 = ciphertext length L
//	4   CRC-32C of the word
//	L   AES-256-GCM ciphertext and tag of one chunk of the compressed stream
//
// Every chunk but the last holds exactly C plaintext bytes (L = C+16); the last
// one holds 0 to C bytes and has the final flag. Nothing follows it. Chunk i
// (from 0) is encrypted with the 12-byte nonce uint64(i) || uint32(final) and
// the header MAC as additional data, so chunks cannot be reordered, dropped,
// moved to another file, or the stream cut at a chunk boundary.
//
// Keys: argon2id(passphrase, salt, time, memory, threads) gives 32 bytes, from
// which HKDF-SHA256 expands the encryption key, the MAC key and the key-check
// key ("drbook backup v1 enc|mac|check"). The key check value is
// HMAC-SHA256(check key, "drbook backup v1 key check"): a mismatch means a
// wrong passphrase, as the CRCs have already excluded accidental damage.
//
// The decompressed payload must have the header's payload length and the
// SHA-256 recorded in Meta.PayloadSHA256.
//
// Readers refuse headers outside fixed bounds before allocating or deriving
// anything: metadata ≤ 64 KiB, chunk size 1 KiB–1 MiB, payload ≤ 1 GiB,
// argon2id memory ≤ 1 GiB, time ≤ 16, threads ≤ 16.
package backup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash/crc32"

	"golang.org/x/crypto/argon2"
)

// FormatVersion is the version of the file format Write produces.
const FormatVersion = 1

// Magic starts every backup file.
const Magic = "DRBKBAK\x00"

// Limits on what Write produces and Read accepts.
const (
	// MaxMetaSize is the largest metadata JSON accepted.
	MaxMetaSize = 64 << 10
	// MaxPayloadSize is the largest payload (before compression) accepted.
	MaxPayloadSize = 1 << 30
	// DefaultChunkSize is the plaintext size of each encrypted chunk.
	DefaultChunkSize = 64 << 10
	// MinChunkSize is the smallest chunk size accepted.
	MinChunkSize = 1 << 10
	// MaxChunkSize is the largest chunk size accepted.
	MaxChunkSize = 1 << 20
	// MinKDFMemoryKiB is the least argon2id memory accepted (8 MiB).
	MinKDFMemoryKiB = 8 << 10
	// MaxKDFMemoryKiB is the most argon2id memory accepted (1 GiB), so that a
	// hostile file cannot make a reader allocate more.
	MaxKDFMemoryKiB = 1 << 20
	// MaxKDFTime bounds argon2id passes.
	MaxKDFTime = 16
	// MaxKDFThreads bounds argon2id lanes.
	MaxKDFThreads = 16
)

const (
	saltSize      = 32
	fixedSize     = 67
	macSize       = sha256.Size
	crcSize       = 4
	tagSize       = 16
	recordHdrSize = 8
	finalBit      = 1 << 31
	// headerFixed is the prefix read before the metadata: fixed fields + CRC.
	headerFixed = fixedSize + crcSize
	// headerTail is what follows the metadata: key check, MAC, CRC.
	headerTail = macSize + macSize + crcSize
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrNotBackup is returned for input that does not start with the backup
	// magic. The rule: only drbook backup files are read.
	ErrNotBackup = errors.New("backup: not a drbook backup file (bad magic)")
	// ErrUnsupportedVersion is returned for a format version this build does
	// not read. The rule: only format version 1 is understood.
	ErrUnsupportedVersion = errors.New("backup: unsupported backup format version (this build reads version 1)")
	// ErrWrongPassphrase is returned when the passphrase does not match the
	// file's key check value. The rule: a backup opens only with its passphrase.
	ErrWrongPassphrase = errors.New("backup: wrong passphrase")
	// ErrCorrupt is returned for a file that is damaged or was altered: a
	// checksum, MAC or chunk authentication failure, an out-of-range header
	// field, data after the final chunk, or a payload that does not match its
	// recorded length or SHA-256. The rule: every byte of a backup is verified.
	ErrCorrupt = errors.New("backup: file is corrupt or was tampered with (verification failed)")
	// ErrTruncated is returned for a file that ends before its final chunk.
	// The rule: a backup is complete or it is refused.
	ErrTruncated = errors.New("backup: file is truncated (ends before the final chunk)")
	// ErrEmptyPassphrase is returned by Write for an empty passphrase.
	ErrEmptyPassphrase = errors.New("backup: passphrase must not be empty")
	// ErrKDFParams is returned by Write for argon2id parameters outside the
	// bounds a reader accepts.
	ErrKDFParams = errors.New("backup: argon2id parameters out of range (time 1-16, threads 1-16, memory 8 MiB-1 GiB)")
	// ErrTooLarge is returned by Write for a payload larger than MaxPayloadSize
	// or metadata larger than MaxMetaSize.
	ErrTooLarge = errors.New("backup: payload or metadata too large")
)

// KDFParams are argon2id parameters.
type KDFParams struct {
	// Time is the number of passes over memory.
	Time uint32
	// MemoryKiB is the memory used, in KiB.
	MemoryKiB uint32
	// Threads is the number of lanes.
	Threads uint8
}

// DefaultKDF is the recommended key derivation cost: 64 MiB, 3 passes, 2
// lanes, about 0.1–0.15 s on a 2-core machine.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 2}

func (p KDFParams) valid() bool {
	return p.Time >= 1 && p.Time <= MaxKDFTime &&
		p.Threads >= 1 && p.Threads <= MaxKDFThreads &&
		p.MemoryKiB >= MinKDFMemoryKiB && p.MemoryKiB <= MaxKDFMemoryKiB &&
		p.MemoryKiB >= 8*uint32(p.Threads)
}

// keys are the subkeys derived from a passphrase.
type keys struct {
	aead  cipher.AEAD
	mac   []byte
	check []byte
}

func deriveKeys(passphrase, salt []byte, p KDFParams) (*keys, error) {
	master := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, 32)
	enc, err := hkdf.Expand(sha256.New, master, "drbook backup v1 enc", 32)
	if err != nil {
		return nil, err
	}
	mac, err := hkdf.Expand(sha256.New, master, "drbook backup v1 mac", 32)
	if err != nil {
		return nil, err
	}
	check, err := hkdf.Expand(sha256.New, master, "drbook backup v1 check", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &keys{aead: aead, mac: mac, check: check}, nil
}

func (k *keys) keyCheck() []byte {
	m := hmac.New(sha256.New, k.check)
	m.Write([]byte("drbook backup v1 key check"))
	return m.Sum(nil)
}

func (k *keys) headerMAC(header []byte) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write(header)
	return m.Sum(nil)
}

func chunkNonce(dst []byte, index uint64, final bool) []byte {
	dst = dst[:12]
	for i := range 8 {
		dst[i] = byte(index >> (56 - 8*i))
	}
	dst[8], dst[9], dst[10], dst[11] = 0, 0, 0, 0
	if final {
		dst[11] = 1
	}
	return dst
}
