package deploy_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGoInstallAtVersion checks that `go install MODULE/cmd/drbook-agent@VERSION`
// works, as it would from the public module proxy: the committed tree
// (git archive HEAD) is served as a version from a file proxy,
// the dependencies come from the local module download cache (no network),
// and the installed binary reports the module version. The same module with
// a replace directive in go.mod is refused by go install, which is why
// go.mod must have none.
func TestGoInstallAtVersion(t *testing.T) {
	const module = "github.com/drbook/drbook"
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	archive, err := exec.Command("git", "-C", repo, "archive", "--format=tar", "HEAD").Output()
	if err != nil {
		t.Fatalf("git archive HEAD: %v", err)
	}
	realCache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	modcache := filepath.Join(tmp, "modcache")
	t.Cleanup(func() {
		// The module cache is read-only: let go remove it.
		c := exec.Command("go", "clean", "-modcache")
		c.Env = append(os.Environ(), "GOMODCACHE="+modcache)
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("go clean -modcache: %v\n%s", err, out)
		}
	})

	install := func(t *testing.T, proxy, version string, editGoMod func([]byte) []byte) ([]byte, error) {
		t.Helper()
		dir := filepath.Join(proxy, module, "@v")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		goMod := writeModuleZip(t, filepath.Join(dir, version+".zip"), module+"@"+version+"/", archive, editGoMod)
		info := fmt.Sprintf(`{"Version":%q,"Time":%q}`, version, time.Now().UTC().Format(time.RFC3339))
		for name, data := range map[string][]byte{version + ".mod": goMod, version + ".info": []byte(info), "list": []byte(version + "\n")} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		gobin := filepath.Join(proxy, "bin")
		cmd := exec.Command("go", "install", module+"/cmd/drbook-agent@"+version)
		cmd.Dir = tmp // outside any module
		cmd.Env = append(os.Environ(), "GOMODCACHE="+modcache, "GOBIN="+gobin, "GOFLAGS=-mod=mod", "GOSUMDB=off",
			"GOPROXY=file://"+proxy+",file://"+filepath.Join(strings.TrimSpace(string(realCache)), "cache", "download"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return out, err
		}
		return exec.Command(filepath.Join(gobin, "drbook-agent"), "version", "-o", "json").Output()
	}

	t.Run("replace refused", func(t *testing.T) {
		out, err := install(t, filepath.Join(tmp, "proxy-replace"), "v0.0.1-replace", func(b []byte) []byte {
			return append(b, []byte("\nreplace github.com/hashicorp/go-metrics => github.com/hashicorp/go-metrics v0.6.1\n")...)
		})
		if err == nil || !strings.Contains(string(out), "replace") {
			t.Fatalf("go install of a module with a replace directive: err %v\n%s", err, out)
		}
	})
	t.Run("installs", func(t *testing.T) {
		const version = "v0.0.1-gotest"
		out, err := install(t, filepath.Join(tmp, "proxy"), version, nil)
		if err != nil {
			t.Fatalf("go install %s/cmd/drbook-agent@%s: %v\n%s", module, version, err, out)
		}
		var in struct{ Version, Source string }
		if err := json.Unmarshal(out, &in); err != nil {
			t.Fatalf("version -o json: %v\n%s", err, out)
		}
		if in.Version != version || in.Source != "buildinfo" {
			t.Fatalf("installed binary reports %+v, want version %s from the toolchain's build info", in, version)
		}
	})
}

// writeModuleZip writes a module zip (every file under prefix) from a tar
// archive of the tree and returns its go.mod (after editGoMod).
func writeModuleZip(t *testing.T, path, prefix string, archive []byte, editGoMod func([]byte) []byte) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	var goMod []byte
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "go.mod" {
			if editGoMod != nil {
				data = editGoMod(data)
			}
			goMod = data
		}
		w, err := zw.Create(prefix + h.Name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if goMod == nil {
		t.Fatal("the archive has no go.mod")
	}
	return goMod
}
