package evidence_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/evidence"
)

// copyDir copies a bundle (flat files and subdirectories).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func bundleFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

// TestBundleVerifiesWithoutDrbook: the bundle of a signed run verifies
// with sha256sum -c, ssh-keygen -Y verify (one call per signature, with
// the principal ssh-keygen -Y find-principals names) and the shell loop of
// VERIFY.md that re-derives the signed hashes; and with VerifyBundle. One
// byte changed in any file fails both sha256sum -c and VerifyBundle, which
// names the file.
func TestBundleVerifiesWithoutDrbook(t *testing.T) {
	sha := needTool(t, "sha256sum")
	kg := needTool(t, "ssh-keygen")
	dir := t.TempDir()
	sg, line := keygen(t, dir, "alice", "alice@example.org")
	allowedPath := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(allowedPath, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	db, id := signedRun(t, sg)
	evs := events(t, db, id)
	bundle := filepath.Join(dir, "bundle")
	names, err := evidence.WriteBundle(bundle, id, evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 8 { // events, 2×(sig+msg), runbook, VERIFY.md, MANIFEST
		t.Errorf("files %v", names)
	}
	if _, err := evidence.WriteBundle(bundle, id, evs); err == nil {
		t.Error("a second bundle into the same directory was written")
	}

	run := func(dir, stdin string, name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if stdin != "" {
			f, err := os.Open(filepath.Join(dir, stdin))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd.Stdin = f
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(bundle, "", sha, "-c", "MANIFEST"); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	sigs, _ := filepath.Glob(filepath.Join(bundle, "signatures", "*.sig"))
	if len(sigs) != 2 {
		t.Fatalf("signatures %v", sigs)
	}
	for _, s := range sigs {
		rel, _ := filepath.Rel(bundle, s)
		out, err := run(bundle, "", kg, "-Y", "find-principals", "-f", allowedPath, "-n", opsig.Namespace, "-s", rel)
		if err != nil || strings.TrimSpace(out) != "alice@example.org" {
			t.Fatalf("find-principals %s: %v\n%s", rel, err, out)
		}
		msg := strings.TrimSuffix(rel, ".sig") + ".msg"
		out, err = run(bundle, msg, kg, "-Y", "verify", "-f", allowedPath, "-I", "alice@example.org", "-n", opsig.Namespace, "-s", rel)
		if err != nil || !strings.Contains(out, "Good") {
			t.Fatalf("ssh-keygen -Y verify %s: %v\n%s", rel, err, out)
		}
	}
	// The shell loop of VERIFY.md re-derives the hashes the messages sign.
	vm, err := os.ReadFile(filepath.Join(bundle, evidence.VerifyFile))
	if err != nil {
		t.Fatal(err)
	}
	loop := regexp.MustCompile(`(?s)\n    (prev=.*?done < events.jsonl[^\n]*)\n`).FindStringSubmatch(string(vm))
	if loop == nil {
		t.Fatalf("VERIFY.md has no chain loop:\n%s", vm)
	}
	script := strings.ReplaceAll(loop[1], "\n    ", "\n")
	out, err := run(bundle, "", "sh", "-c", script)
	if err != nil {
		t.Fatalf("chain loop: %v\n%s\n%s", err, script, out)
	}
	for _, s := range sigs {
		msg, _ := os.ReadFile(strings.TrimSuffix(s, ".sig") + ".msg")
		_, seq, hash, err := state.ParseSignedMessage(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, strconv.FormatInt(seq, 10)+" "+hash+"\n") {
			t.Errorf("the shell loop does not derive %d %s:\n%s", seq, hash, out)
		}
	}
	if rep, _, err := evidence.VerifyBundle(bundle, allowedFrom(t, line)); err != nil || rep.Status != evidence.StatusSigned {
		t.Fatalf("VerifyBundle: %+v %v", rep, err)
	}

	// One byte changed in any file.
	for _, name := range bundleFiles(t, bundle) {
		t.Run(name, func(t *testing.T) {
			c := filepath.Join(t.TempDir(), "b")
			copyDir(t, bundle, c)
			p := filepath.Join(c, filepath.FromSlash(name))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			i := len(b) / 2
			b[i] ^= 0x01
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := run(c, "", sha, "-c", "--quiet", "MANIFEST"); err == nil {
				t.Errorf("sha256sum -c passed with byte %d of %s changed\n%s", i, name, out)
			}
			_, _, err = evidence.VerifyBundle(c, allowedFrom(t, line))
			if !errors.Is(err, evidence.ErrBundle) {
				t.Fatalf("VerifyBundle with %s changed: %v", name, err)
			}
			if !strings.Contains(err.Error(), name) && !strings.Contains(err.Error(), evidence.ManifestFile) {
				t.Errorf("the error does not name the file: %v", err)
			}
		})
	}

	// Consistent forgery: an edited event with MANIFEST recomputed still
	// fails (the signatures, not MANIFEST, prove the record).
	t.Run("forged with a new MANIFEST", func(t *testing.T) {
		c := filepath.Join(t.TempDir(), "b")
		copyDir(t, bundle, c)
		p := filepath.Join(c, evidence.EventsFile)
		b, _ := os.ReadFile(p)
		b = []byte(strings.Replace(string(b), `"uid":`, `"uid":1000`, 1))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := run(c, "", "sh", "-c", "sha256sum $(grep -v '  MANIFEST$' MANIFEST | cut -c67-) > MANIFEST.new && mv MANIFEST.new MANIFEST"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		_, _, err := evidence.VerifyBundle(c, allowedFrom(t, line))
		if !errors.Is(err, evidence.ErrSignatures) || !strings.Contains(err.Error(), "rewritten") {
			t.Fatalf("forged bundle: %v", err)
		}
	})
	// An extra file is refused.
	t.Run("extra file", func(t *testing.T) {
		c := filepath.Join(t.TempDir(), "b")
		copyDir(t, bundle, c)
		if err := os.WriteFile(filepath.Join(c, "signatures", "extra.sig"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := evidence.VerifyBundle(c, nil); err == nil || !strings.Contains(err.Error(), "extra.sig") {
			t.Fatalf("extra file: %v", err)
		}
	})
}
