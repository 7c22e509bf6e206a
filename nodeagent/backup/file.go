package backup

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes a backup (see Write) to path atomically: to a temporary
// file with mode 0600 in the same directory, synced, then renamed over path.
// A cancelled ctx stops it before the file is published; on any error no file
// is left at path's temporary name and path is untouched.
func WriteFile(ctx context.Context, path string, meta Meta, payload, passphrase []byte, p KDFParams) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: create %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("backup: chmod %s: %w", tmp, err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := Write(bw, meta, payload, passphrase, p); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("backup: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: close %s: %w", tmp, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("backup: publish %s: %w", path, err)
	}
	// #nosec G304 -- the backup file the operator named
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ReadFile reads and fully verifies the backup at path (see Read).
func ReadFile(path string, passphrase []byte) (Meta, []byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the backup file the operator named
	if err != nil {
		return Meta{}, nil, fmt.Errorf("backup: open %s: %w", path, err)
	}
	defer f.Close()
	return Read(bufio.NewReaderSize(f, 256<<10), passphrase)
}
