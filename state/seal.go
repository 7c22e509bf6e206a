package state

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SealedPrefix starts every sealed string.
const SealedPrefix = "sealed:v1:"

// sealKeySize is the size of the AES-256 sealing key.
const sealKeySize = 32

// sealAAD binds sealed values to their purpose.
const sealAAD = "drbook/state/seal/v1"

// IsSealed reports whether s is a sealed string.
func IsSealed(s string) bool { return strings.HasPrefix(s, SealedPrefix) }

// Seal encrypts plain with the database's key (AES-256-GCM, random nonce)
// and returns "sealed:v1:" + base64(nonce|ciphertext). Store secrets only in
// this form.
func (db *DB) Seal(plain string) (string, error) {
	aead, err := newAEAD(db.key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := aead.Seal(nonce, nonce, []byte(plain), []byte(sealAAD))
	return SealedPrefix + base64.StdEncoding.EncodeToString(out), nil
}

// Unseal decrypts a string made by Seal. Any failure is ErrSealBroken.
func (db *DB) Unseal(s string) (string, error) {
	if !IsSealed(s) {
		return "", fmt.Errorf("%w: not a sealed string", ErrSealBroken)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SealedPrefix))
	if err != nil {
		return "", fmt.Errorf("%w: bad encoding", ErrSealBroken)
	}
	aead, err := newAEAD(db.key)
	if err != nil {
		return "", err
	}
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("%w: too short", ErrSealBroken)
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(sealAAD))
	if err != nil {
		return "", fmt.Errorf("%w: authentication failed", ErrSealBroken)
	}
	return string(plain), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != sealKeySize {
		return nil, fmt.Errorf("%w: no sealing key", ErrSealBroken)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return cipher.NewGCM(block)
}

// loadOrCreateKey reads the 32-byte key at path, creating it (mode 0600,
// atomically: temp file + hard link, so concurrent openers agree) if absent.
// A key file with a wider mode is narrowed to 0600.
func loadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, sealKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".drbook.key.*")
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", fileErr(err))
	}
	defer os.Remove(tmp.Name())
	// CreateTemp uses 0600; chmod anyway in case of an odd umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sealing key: %w", fileErr(err))
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sealing key: %w", fileErr(err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sealing key: %w", fileErr(err))
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("sealing key: %w", fileErr(err))
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path) // another process won the race
		}
		return nil, fmt.Errorf("sealing key: %w", fileErr(err))
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return key, nil
}

func readKey(path string) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the sealing key file beside the operator's database
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("sealing key %s: %w", path, fileErr(err))
	}
	defer f.Close()
	if err := narrowMode(path, f); err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	key := make([]byte, sealKeySize+1)
	n, _ := f.Read(key)
	if n != sealKeySize {
		return nil, fmt.Errorf("sealing key %s: want %d bytes, have %d: %w", path, sealKeySize, n, ErrCorrupt)
	}
	return key[:sealKeySize], nil
}
