package plugin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/drbook/drbook/internal/capread"
	"github.com/drbook/drbook/runbooks"
)

// LockFileName is the lock file drbook reads beside a runbook and in a
// plugin directory: lines "SHA256  PATH" (sha256sum's format), PATH relative
// to the lock file's directory; '#' starts a comment.
const LockFileName = "drbook-plugins.lock"

// maxLockFileBytes bounds a lock file (a line per plugin).
const maxLockFileBytes = 1 << 20

// FilePrefix is how plugin executables found in a plugin directory are named.
const FilePrefix = "drbook-plugin-"

// Sentinel errors.
var (
	// ErrPinMismatch: the plugin executable's SHA-256 differs from its pin
	// (it was changed or replaced); it is refused.
	ErrPinMismatch = errors.New("plugin executable does not match its SHA-256 pin (rule: every plugin is pinned; a changed binary is refused)")
	// ErrUnpinned: no pin was found for a plugin executable; it is refused.
	ErrUnpinned = errors.New("plugin executable has no SHA-256 pin (rule: pin it in the runbook's plugins: or in " + LockFileName + ")")
	// ErrProtocol: the plugin speaks another protocol version, or is not a
	// drbook plugin at all.
	ErrProtocol = errors.New("plugin protocol mismatch")
	// ErrCrashed: the plugin process ended during a step.
	ErrCrashed = errors.New("plugin process exited during the step")
	// ErrHung: the plugin did not end a step when its time was up and was
	// killed.
	ErrHung = errors.New("plugin did not end the step in time and was killed")
	// ErrKindClash: two plugins (or a plugin and drbook) provide one kind.
	ErrKindClash = errors.New("step kind is provided twice")
)

var hexSHA = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Pin is one plugin executable and the SHA-256 it must have.
type Pin struct {
	// Path is absolute.
	Path   string
	SHA256 string
	// Source says where the pin came from, for messages.
	Source string
}

// FileSHA256 returns the hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	// #nosec G304 -- hashing the plugin binary the operator named, to check its pin
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash plugin: %w", err)
	}
	defer f.Close()
	// A plugin is a regular executable file: a device or FIFO would be
	// hashed without end.
	if st, err := f.Stat(); err != nil {
		return "", fmt.Errorf("hash plugin %s: %w", path, err)
	} else if !st.Mode().IsRegular() {
		return "", fmt.Errorf("hash plugin %s: not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash plugin %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckPin hashes the pinned file and compares.
func CheckPin(p Pin) error {
	got, err := FileSHA256(p.Path)
	if err != nil {
		return err
	}
	if got != p.SHA256 {
		return fmt.Errorf("%s: %w: pinned %s (%s), file has %s", p.Path, ErrPinMismatch, short(p.SHA256), p.Source, short(got))
	}
	return nil
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// LockFile is a parsed drbook-plugins.lock: pins by absolute path.
type LockFile struct {
	Path string
	Pins map[string]string
}

// ReadLockFile reads a lock file; a missing file is an empty lock.
func ReadLockFile(path string) (*LockFile, error) {
	lf := &LockFile{Path: path, Pins: map[string]string{}}
	// A lock file is a few lines; the cap stops a device or FIFO put in its
	// place from being read without end.
	b, err := capread.ReadFile(path, maxLockFileBytes)
	if errors.Is(err, os.ErrNotExist) {
		return lf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock file: %w", err)
	}
	return lf, lf.parse(b)
}

func (lf *LockFile) parse(b []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, path, ok := strings.Cut(line, " ")
		path = strings.TrimPrefix(strings.TrimSpace(path), "*")
		if !ok || !hexSHA.MatchString(sum) || path == "" {
			return fmt.Errorf("%s:%d: want \"SHA256  PATH\" (lowercase hex SHA-256)", lf.Path, n)
		}
		lf.Pins[lf.abs(path)] = sum
	}
	return sc.Err()
}

func (lf *LockFile) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(filepath.Dir(lf.Path), p)
}

// Format renders pins as lock file lines, paths relative to the lock file.
func (lf *LockFile) Format() []byte {
	paths := make([]string, 0, len(lf.Pins))
	for p := range lf.Pins {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b bytes.Buffer
	b.WriteString("# drbook plugin pins: SHA256  PATH (relative to this file). A changed binary is refused.\n")
	for _, p := range paths {
		rel, err := filepath.Rel(filepath.Dir(lf.Path), p)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = p
		}
		fmt.Fprintf(&b, "%s  %s\n", lf.Pins[p], rel)
	}
	return b.Bytes()
}

// DirPins lists the plugin executables (drbook-plugin-*) in dir with their
// pins from dir's lock file. A plugin without a pin gets an empty SHA256
// (loading it fails with ErrUnpinned). A missing dir has no plugins.
func DirPins(dir string) ([]Pin, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("plugin dir: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin dir: %w", err)
	}
	lf, err := ReadLockFile(filepath.Join(dir, LockFileName))
	if err != nil {
		return nil, err
	}
	var pins []Pin
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), FilePrefix) || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Mode()&0o111 == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		pins = append(pins, Pin{Path: p, SHA256: lf.Pins[p], Source: lf.Path})
	}
	return pins, nil
}

// RunbookPins resolves a runbook's plugins: entries against its file's
// directory. An entry without sha256: takes its pin from the lock file
// beside the runbook. Shipped (library:) runbooks have no plugins.
func RunbookPins(rb *runbooks.Runbook) ([]Pin, error) {
	if len(rb.Plugins) == 0 {
		return nil, nil
	}
	base, err := filepath.Abs(filepath.Dir(rb.File))
	if err != nil {
		return nil, fmt.Errorf("runbook plugins: %w", err)
	}
	lf, err := ReadLockFile(filepath.Join(base, LockFileName))
	if err != nil {
		return nil, err
	}
	pins := make([]Pin, 0, len(rb.Plugins))
	for _, pl := range rb.Plugins {
		path := pl.Path
		if rest, ok := strings.CutPrefix(path, "~/"); ok {
			if home, err := os.UserHomeDir(); err == nil {
				path = filepath.Join(home, rest)
			}
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(base, path)
		}
		path = filepath.Clean(path)
		pos := pl.At("path")
		pin := Pin{Path: path, SHA256: pl.SHA256, Source: fmt.Sprintf("%s:%d:%d", rb.File, pos.Line, pos.Col)}
		if pin.SHA256 == "" {
			pin.SHA256, pin.Source = lf.Pins[path], lf.Path
		}
		pins = append(pins, pin)
	}
	return pins, nil
}

// DefaultDir is $XDG_CONFIG_HOME/drbook/plugins (~/.config/drbook/plugins).
func DefaultDir() string {
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "drbook", "plugins")
}
