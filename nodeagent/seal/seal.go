// Package seal encrypts small secrets at rest with a node-local key.
//
// A node keeps one 32-byte sealing key in a file readable only by its owner
// (see LoadOrCreateKeyFile). The cluster master key and other secrets are stored
// sealed under that key with Seal and recovered with Open.
//
// Sealed format (version 1):
//
//	offset  size  field
//	0       1     version byte (0x01)
//	1       12    random AES-GCM nonce
//	13      n+16  AES-256-GCM ciphertext of the n-byte plaintext, with its tag
//
// The version byte is authenticated together with the caller's additional data,
// so a sealed value cannot be replayed under another version or another context.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySize is the size in bytes of a sealing key (AES-256).
const KeySize = 32

// Version is the format version byte that prefixes every sealed value.
const Version byte = 1

const nonceSize = 12

// Overhead is the number of bytes Seal adds to a plaintext.
const Overhead = 1 + nonceSize + 16

// ErrSealBroken is returned by Open for any sealed value that cannot be opened:
// wrong key, wrong additional data, unknown version, truncated or altered bytes.
// The rule: a sealed value is accepted only if it authenticates under the key.
var ErrSealBroken = errors.New("seal: sealed value does not authenticate (wrong key, wrong context or altered data)")

// ErrKeyFileMode is returned by LoadOrCreateKeyFile for a key file that is
// readable or writable by group or others. The rule: a key file is mode 0600 or
// stricter, owned by the agent's user alone.
var ErrKeyFileMode = errors.New("seal: key file must not be accessible by group or others (want mode 0600)")

// ErrKeySize is returned for a key that is not KeySize bytes long, including a
// key file whose content has the wrong length.
var ErrKeySize = errors.New("seal: key must be exactly 32 bytes")

// NewKey returns a fresh random key of KeySize bytes read from crypto/rand.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("seal: generate key: %w", err)
	}
	return k, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return cipher.NewGCM(block)
}

// versionedAAD binds the version byte to the caller's additional data.
func versionedAAD(v byte, aad []byte) []byte {
	out := make([]byte, 0, 1+len(aad))
	out = append(out, v)
	return append(out, aad...)
}

// Seal encrypts and authenticates plaintext under key with AES-256-GCM and a
// random nonce. aad is authenticated but not stored: the same aad must be given
// to Open. The result starts with the Version byte.
func Seal(key, plaintext, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, Overhead+len(plaintext))
	out[0] = Version
	if _, err := rand.Read(out[1 : 1+nonceSize]); err != nil {
		return nil, fmt.Errorf("seal: generate nonce: %w", err)
	}
	return aead.Seal(out, out[1:1+nonceSize], plaintext, versionedAAD(Version, aad)), nil // #nosec G407 -- the nonce is the random bytes read from crypto/rand just above
}

// Open authenticates and decrypts a value produced by Seal with the same key and
// aad. Any failure, whatever its cause, is ErrSealBroken; a key of the wrong
// size is also ErrKeySize.
func Open(key, sealed, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealBroken, err)
	}
	if len(sealed) < Overhead || sealed[0] != Version {
		return nil, ErrSealBroken
	}
	pt, err := aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], versionedAAD(Version, aad))
	if err != nil {
		return nil, ErrSealBroken
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}
