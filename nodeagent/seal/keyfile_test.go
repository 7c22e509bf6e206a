package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreateKeyFileCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keys")
	path := filepath.Join(dir, "node.key")
	key, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != KeySize {
		t.Fatalf("key length %d", len(key))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Fatalf("key file mode %#o, want 0600", got)
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := dst.Mode().Perm(); got != 0o700 {
		t.Fatalf("key dir mode %#o, want 0700", got)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, key) {
		t.Fatal("returned key differs from the file content")
	}
	again, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, key) {
		t.Fatal("second load returned a different key")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key file (temp file left behind?)", len(entries))
	}
}

func TestLoadOrCreateKeyFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKeyFile(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("caller %d got a different key", i)
		}
	}
}

func TestLoadOrCreateKeyFileErrors(t *testing.T) {
	good := bytes.Repeat([]byte{1}, KeySize)
	for _, tc := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    error
	}{
		{"world readable", good, 0o604, ErrKeyFileMode},
		{"group readable", good, 0o640, ErrKeyFileMode},
		{"0644", good, 0o644, ErrKeyFileMode},
		{"group writable", good, 0o620, ErrKeyFileMode},
		{"world executable", good, 0o601, ErrKeyFileMode},
		{"0666", good, 0o666, ErrKeyFileMode},
		{"empty file", nil, 0o600, ErrKeySize},
		{"short file", good[:31], 0o600, ErrKeySize},
		{"long file", append(bytes.Clone(good), '\n'), 0o600, ErrKeySize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			key, err := LoadOrCreateKeyFile(path)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if key != nil {
				t.Fatal("key returned with an error")
			}
			after, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(after, tc.content) {
				t.Fatal("a refused key file was modified")
			}
		})
	}
}

func TestLoadOrCreateKeyFileAcceptsStricterMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	want := bytes.Repeat([]byte{9}, KeySize)
	if err := os.WriteFile(path, want, 0o400); err != nil {
		t.Fatal(err)
	}
	got, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read-only key file not loaded as is")
	}
}

func TestLoadOrCreateKeyFileNotRegular(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("a directory was accepted as a key file")
	}
}
