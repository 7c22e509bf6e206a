package runbooks_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
)

// TestSecretRef: the string form of a reference parses; anything else is
// refused without being echoed; Read reads the variable or the file.
func TestSecretRef(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s")
	if err := os.WriteFile(file, []byte("from-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPCONFIG_TEST_SECRET", "from-env-secret")
	cases := []struct {
		in, want, read string
		bad            bool
	}{
		{in: "{env:OPCONFIG_TEST_SECRET}", want: "{env:OPCONFIG_TEST_SECRET}", read: "from-env-secret"},
		{in: " { env : OPCONFIG_TEST_SECRET } ", want: "{env:OPCONFIG_TEST_SECRET}", read: "from-env-secret"},
		{in: "{file:" + file + "}", want: "{file:" + file + "}", read: "from-file-secret"},
		{in: "hunter2-inline", bad: true},
		{in: "{vault:x}", bad: true},
		{in: "{env:}", bad: true},
	}
	for _, c := range cases {
		ref, err := runbooks.ParseSecretRef(c.in)
		if c.bad {
			if !errors.Is(err, runbooks.ErrSecretRef) || strings.Contains(err.Error(), c.in) {
				t.Errorf("%q: err %v, want ErrSecretRef without the value", c.in, err)
			}
			continue
		}
		if err != nil || ref.String() != c.want {
			t.Errorf("%q: %v %q", c.in, err, ref)
			continue
		}
		if got, err := ref.Read(); err != nil || got != c.read {
			t.Errorf("%q read: %q %v", c.in, got, err)
		}
	}
	if _, err := (runbooks.SecretRef{Env: "OPCONFIG_TEST_UNSET"}).Read(); !errors.Is(err, runbooks.ErrSecretRef) {
		t.Errorf("unset variable: %v", err)
	}
}

// TestParseOperatorConfig: a valid config decodes; each mistake is reported
// at its line and column.
func TestParseOperatorConfig(t *testing.T) {
	good := "apiVersion: drbook/v1\nkind: Config\ninventory: inv.yaml\nnotify:\n  - name: ops\n    url: https://hooks.example.com/x\n    secret: {env: HOOK}\n    events: [run.started, approval.waiting]\n    retry_for: 30s\n"
	c, err := runbooks.ParseOperatorConfig("c.yaml", []byte(good))
	if err != nil || len(c.Notify) != 1 || c.Notify[0].Secret.Env != "HOOK" || c.Notify[0].RetryFor.D().Seconds() != 30 {
		t.Fatalf("%v %+v", err, c)
	}
	bad := []struct{ src, want string }{
		{"notify:\n  - name: a\n    url: https://h/x\n  - name: a\n    url: https://h/y\n", "c.yaml:4:11: notify[1]: endpoint name \"a\" is used twice"},
		{"notify:\n  - name: a\n    url: https://user:pw@h/x\n", "c.yaml:3:10: notify[0]: url: a URL with a user or password"},
		{"notify:\n  - name: a\n    url: https://h/x\n    secret: {env: A, file: B}\n", "c.yaml:4:14: notify[0]: secret: give either env: or file:"},
		{"notify:\n  - name: a\n    url: https://h/x\n    events: [run.start]\n", "c.yaml:4:13: notify[0]: events[0]: \"run.start\" is not a notification kind"},
		{"notify:\n  - url: https://h/x\n", "missing required field \"name\""},
		{"output: xml\n", "c.yaml:1:9: config.output: \"xml\" is not one of text, json"},
	}
	for _, b := range bad {
		_, err := runbooks.ParseOperatorConfig("c.yaml", []byte(b.src))
		if err == nil || !strings.Contains(err.Error(), b.want) || !errors.Is(err, runbooks.ErrInvalid) {
			t.Errorf("%q: %v, want %q", b.src, err, b.want)
		}
	}
	for _, src := range []string{"", "# nothing yet\n\n  # really\n"} {
		if c, err := runbooks.ParseOperatorConfig("empty.yaml", []byte(src)); err != nil || c == nil {
			t.Errorf("an empty config %q: %v", src, err)
		}
	}
}

// FuzzParseOperatorConfig: any input gives a config or file:line:col
// diagnostics, never a panic; an accepted config's endpoints are named,
// have an http(s) URL and a well-formed secret reference.
func FuzzParseOperatorConfig(f *testing.F) {
	f.Add([]byte("inventory: inv.yaml\nnotify:\n  - name: ops\n    url: https://h/x\n    secret: {file: /s}\n"))
	attackSeeds(f, "kind: Config\nnotify:\n  - name: a\n    url: http://h/\n")
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := runbooks.ParseOperatorConfig("config.yaml", src)
		checkDiagnostics(t, "config.yaml", err)
		if err != nil {
			return
		}
		for _, e := range c.Notify {
			if e.Name == "" || runbooks.CheckNotifyURL(e.URL) != nil {
				t.Fatalf("endpoint accepted: %+v", e)
			}
			if e.Secret != nil && (e.Secret.Env == "") == (e.Secret.File == "") {
				t.Fatalf("secret reference accepted: %+v", *e.Secret)
			}
		}
	})
}

// TestRunbookRTO: rto: is a duration; 0 is refused at its position.
func TestRunbookRTO(t *testing.T) {
	base := "apiVersion: drbook/v1\nkind: Runbook\nname: r\n%ssteps:\n  - id: a\n    run: shell\n    on: n1\n    with: {command: 'true'}\n"
	for _, c := range []struct{ rto, want string }{
		{"rto: 30m\n", ""},
		{"rto: 0s\n", "rb.yaml:4:6: rto: must be more than 0"},
		{"rto: soon\n", "rb.yaml:4:6"},
	} {
		rb, err := runbooks.LoadRunbook("rb.yaml", []byte(strings.Replace(base, "%s", c.rto, 1)), steps.NewRegistry(), nil)
		switch {
		case c.want == "" && (err != nil || rb.RTO.D().Minutes() != 30):
			t.Errorf("%q: %v", c.rto, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want %q", c.rto, err, c.want)
		}
	}
}
