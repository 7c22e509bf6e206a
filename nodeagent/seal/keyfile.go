package seal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreateKeyFile returns the sealing key stored at path, creating it first
// if the file does not exist. A new file is written with mode 0600 in a
// directory created with mode 0700, and published atomically: concurrent callers
// all end up with the same key. An existing file must be a regular file with no
// group or other permission bits (else ErrKeyFileMode) holding exactly KeySize
// bytes (else ErrKeySize).
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	key, err := loadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := createKeyFile(path); err != nil {
		return nil, err
	}
	return loadKeyFile(path)
}

func loadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the node's key file inside its own data directory
	if err != nil {
		return nil, fmt.Errorf("seal: open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: stat key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: key file %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o", ErrKeyFileMode, path, st.Mode().Perm())
	}
	// Read one byte more than a key so that an oversized file is detected.
	buf, err := io.ReadAll(io.LimitReader(f, KeySize+1))
	if err != nil {
		return nil, fmt.Errorf("seal: read key file: %w", err)
	}
	if len(buf) != KeySize {
		return nil, fmt.Errorf("%w: key file %s holds %d bytes or more", ErrKeySize, path, len(buf))
	}
	return buf, nil
}

// createKeyFile writes a new key to a temporary file in the same directory and
// links it to path, which fails if another process created path first; in that
// case the other process's key wins and is loaded by the caller.
func createKeyFile(path string) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("seal: create key directory: %w", err)
	}
	key, err := NewKey()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".seal-key-*")
	if err != nil {
		return fmt.Errorf("seal: create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		_ = os.Remove(tmpName)
	}()
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("seal: chmod key file: %w", err)
	}
	if _, err := io.Copy(tmp, bytes.NewReader(key)); err != nil {
		tmp.Close()
		return fmt.Errorf("seal: write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("seal: sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("seal: close key file: %w", err)
	}
	if err := os.Link(tmpName, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("seal: publish key file: %w", err)
	}
	// #nosec G304 -- the node's key file inside its own data directory
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
