package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drbook/drbook/internal/jsonapi"
)

// configEnv is an environment with no operator settings but those given:
// XDG_CONFIG_HOME points at dir, and every DRBOOK_* variable of the
// environment running the test is blanked (an empty value is unset for
// drbook).
func configEnv(dir string, extra ...string) []string {
	env := []string{"XDG_CONFIG_HOME=" + dir}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "DRBOOK_") && !strings.HasPrefix(k, "DRBOOK_TEST_") {
			env = append(env, k+"=")
		}
	}
	return append(env, extra...)
}

// configJSON runs drbook config -o json (without -o when args hold
// "--no-o": the output setting is under test) and decodes it.
func configJSON(t *testing.T, env []string, args ...string) jsonapi.Config {
	t.Helper()
	args = append(args, "config")
	if !slices.Contains(args, "-o") && !slices.Contains(args, "--no-o") {
		args = append(args, "-o", "json")
	}
	args = slices.DeleteFunc(args, func(a string) bool { return a == "--no-o" })
	r := drbook(t, env, args...)
	if r.code != 0 {
		t.Fatalf("drbook config: exit %d: %s", r.code, r.stderr)
	}
	var doc jsonapi.Config
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Schema != jsonapi.Schema {
		t.Fatalf("config -o json: %v\n%s", err, r.stdout)
	}
	return doc
}

func settingOf(t *testing.T, doc jsonapi.Config, name string) jsonapi.ConfigSetting {
	t.Helper()
	for _, s := range doc.Settings {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no setting %q in %+v", name, doc.Settings)
	return jsonapi.ConfigSetting{}
}

// TestConfigPrecedence: for every setting, a flag wins over its DRBOOK_*
// variable, which wins over the config file, which wins over the default;
// drbook config names the source (file:line:col for the file).
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "drbook")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(cfgDir, "config.yaml")
	writeFile(t, file, `apiVersion: drbook/v1
kind: Config
inventory: /file/inv.yaml
db: /file/drbook.db
plugin_dirs: [/file/plugins]
sign_key: /file/id_ed25519
allowed_signers: /file/allowed_signers
output: json
notify:
  - name: from-file
    url: http://127.0.0.1:9/hook
    secret: {env: CONFIG_TEST_HOOK_SECRET}
`)
	type tc struct {
		name    string
		setting string
		env     []string
		flags   []string
		value   string
		source  string
		origin  string
	}
	cases := []tc{
		{"inventory from file", "inventory", nil, nil, "/file/inv.yaml", "file", file + ":3:12"},
		{"inventory env over file", "inventory", []string{"DRBOOK_INVENTORY=/env/inv.yaml"}, nil, "/env/inv.yaml", "env", "DRBOOK_INVENTORY"},
		{"db from file", "db", nil, nil, "/file/drbook.db", "file", file + ":4:5"},
		{"db env over file", "db", []string{"DRBOOK_DB=/env/drbook.db"}, nil, "/env/drbook.db", "env", "DRBOOK_DB"},
		{"db flag over env", "db", []string{"DRBOOK_DB=/env/drbook.db"}, []string{"--db", "/flag/drbook.db"}, "/flag/drbook.db", "flag", "--db"},
		{"plugin dirs from file", "plugin_dirs", nil, nil, "/file/plugins", "file", file + ":5:14"},
		{"plugin dirs env over file", "plugin_dirs", []string{"DRBOOK_PLUGIN_DIRS=/env/a" + string(os.PathListSeparator) + "/env/b"}, nil, "/env/a" + string(os.PathListSeparator) + "/env/b", "env", "DRBOOK_PLUGIN_DIRS"},
		{"plugin dirs flag over env", "plugin_dirs", []string{"DRBOOK_PLUGIN_DIRS=/env/a"}, []string{"--plugin-dir", "/flag/p"}, "/flag/p", "flag", "--plugin-dir"},
		{"sign key from file", "sign_key", nil, nil, "/file/id_ed25519", "file", file + ":6:11"},
		{"sign key env over file", "sign_key", []string{"DRBOOK_SIGN_KEY=/env/key"}, nil, "/env/key", "env", "DRBOOK_SIGN_KEY"},
		{"allowed signers env over file", "allowed_signers", []string{"DRBOOK_ALLOWED_SIGNERS=/env/as"}, nil, "/env/as", "env", "DRBOOK_ALLOWED_SIGNERS"},
		{"output from file", "output", nil, []string{"--no-o"}, "json", "file", file + ":8:9"},
		{"output env", "output", []string{"DRBOOK_OUTPUT=json"}, []string{"--no-o"}, "json", "env", "DRBOOK_OUTPUT"},
		{"output env over file", "output", []string{"DRBOOK_OUTPUT=text"}, []string{"-o", "json"}, "json", "flag", "--output"},
		{"notify from file", "notify", nil, nil, "1 endpoint(s)", "file", file + ":10:3"},
		{"notify env over file", "notify", []string{"DRBOOK_NOTIFY_URL=http://127.0.0.1:9/env"}, nil, "1 endpoint(s)", "env", "DRBOOK_NOTIFY_URL"},
		{"notify flag over env", "notify", []string{"DRBOOK_NOTIFY_URL=http://127.0.0.1:9/env"}, []string{"--no-notify"}, "0 endpoint(s)", "flag", "--no-notify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := configJSON(t, configEnv(dir, c.env...), c.flags...)
			got := settingOf(t, doc, c.setting)
			if got.Value != c.value || got.Source != c.source || got.Origin != c.origin {
				t.Errorf("%s = %q from %s (%s), want %q from %s (%s)", c.setting, got.Value, got.Source, got.Origin, c.value, c.source, c.origin)
			}
		})
	}
	// Nothing configured: defaults.
	empty := t.TempDir()
	doc := configJSON(t, configEnv(empty, "XDG_DATA_HOME="+filepath.Join(empty, "data")))
	if doc.ConfigFile.Found || doc.ConfigFile.Source != "default" {
		t.Errorf("config file = %+v, want the default location, not found", doc.ConfigFile)
	}
	for _, s := range doc.Settings {
		if s.Source != "default" && s.Name != "output" { // -o json is a flag here
			t.Errorf("%s from %s with nothing configured", s.Name, s.Source)
		}
	}
	if db := settingOf(t, doc, "db"); db.Value != filepath.Join(empty, "data", "drbook", "drbook.db") {
		t.Errorf("default db = %q", db.Value)
	}
	// --config and DRBOOK_CONFIG choose the file; a named file that does
	// not exist is a usage error.
	doc = configJSON(t, configEnv(empty, "DRBOOK_CONFIG="+file))
	if doc.ConfigFile.Source != "env" || !doc.ConfigFile.Found || settingOf(t, doc, "db").Value != "/file/drbook.db" {
		t.Errorf("DRBOOK_CONFIG: %+v", doc.ConfigFile)
	}
	if r := drbook(t, configEnv(empty), "--config", filepath.Join(empty, "nope.yaml"), "config"); r.code != 2 || !strings.Contains(r.stderr, "config file not found") {
		t.Errorf("--config of a missing file: exit %d %q", r.code, r.stderr)
	}
}

// TestConfigShowsNoSecret: drbook config shows a secret as its reference
// and whether it reads, and masks the URL's path, never the values.
func TestConfigShowsNoSecret(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cr3t-hmac-key-value"
	const token = "T0KEN-in-the-path"
	secretFile := filepath.Join(dir, "hook.secret")
	writeFile(t, secretFile, secret+"\n")
	file := filepath.Join(dir, "config.yaml")
	writeFile(t, file, "notify:\n  - name: chat\n    url: https://hooks.example.com/services/"+token+"\n    format: text\n    secret: {file: "+secretFile+"}\n  - name: env\n    url: http://127.0.0.1:9/x\n    secret: {env: CONFIG_TEST_UNSET_SECRET}\n")
	for _, out := range []string{"text", "json"} {
		r := drbook(t, configEnv(dir), "--config", file, "config", "-o", out)
		if r.code != 0 {
			t.Fatalf("config -o %s: %d %s", out, r.code, r.stderr)
		}
		for _, bad := range []string{secret, token} {
			if strings.Contains(r.stdout, bad) {
				t.Errorf("config -o %s shows %q:\n%s", out, bad, r.stdout)
			}
		}
		if !strings.Contains(r.stdout, "{file:"+secretFile+"}") || !strings.Contains(r.stdout, "https://hooks.example.com/••••••") {
			t.Errorf("config -o %s lacks the reference or the masked URL:\n%s", out, r.stdout)
		}
		if out == "text" && (!strings.Contains(r.stdout, "(readable)") || !strings.Contains(r.stdout, "(NOT readable)")) {
			t.Errorf("config does not say which secrets read:\n%s", r.stdout)
		}
	}
}

// TestConfigInvalid: a broken config is refused at file:line:col (exit 3)
// by every command, and a secret written inline is refused without being
// echoed.
func TestConfigInvalid(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	writeFile(t, file, "output: yaml\ninventroy: x\nnotify:\n  - name: a\n    url: ftp://host/x\n    secret: inline-hunter2\n")
	r := drbook(t, configEnv(dir), "--config", file, "runs")
	if r.code != 3 {
		t.Fatalf("exit %d, want 3: %s", r.code, r.stderr)
	}
	for _, want := range []string{file + ":1:9", file + ":2:1", `did you mean "inventory"`, file + ":5:10", file + ":6:13"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "inline-hunter2") {
		t.Errorf("the inline secret is echoed:\n%s", r.stderr)
	}
	if r := drbook(t, configEnv(dir, "DRBOOK_OUTPUT=yaml"), "runs"); r.code != 2 || !strings.Contains(r.stderr, "DRBOOK_OUTPUT") {
		t.Errorf("DRBOOK_OUTPUT=yaml: exit %d %q", r.code, r.stderr)
	}
	if r := drbook(t, configEnv(dir, "DRBOOK_NOTIFY_URL=http://127.0.0.1:9/", "DRBOOK_NOTIFY_SECRET=plain-secret"), "runs"); r.code != 2 || strings.Contains(r.stderr, "plain-secret") {
		t.Errorf("DRBOOK_NOTIFY_SECRET inline: exit %d %q", r.code, r.stderr)
	}
}

// TestConfigDefaultsUsed: the configured inventory fills a missing -i and
// the configured database is the one runs are recorded in.
func TestConfigDefaultsUsed(t *testing.T) {
	l := newLocalLab(t)
	rb := l.write(t, "rb.yaml", "apiVersion: drbook/v1\nkind: Runbook\nname: cfg\nsteps:\n  - id: hello\n    run: shell\n    on: node1\n    with: {command: echo hello}\n")
	file := l.write(t, "config.yaml", "inventory: inventory.yaml\ndb: "+l.db+"\n")
	env := configEnv(l.dir)
	if r := drbook(t, env, "--config", file, "run", rb, "--headless"); r.code != 0 {
		t.Fatalf("run without -i: %d %s", r.code, r.stderr)
	}
	if runs := l.runs(t); len(runs) != 1 || runs[0].Status != "succeeded" {
		t.Fatalf("runs in the configured db: %+v", runs)
	}
	// Without the config, -i is still required (usage error).
	if r := drbook(t, env, "run", rb, "--headless"); r.code != 2 {
		t.Errorf("run without -i or config: exit %d, want 2", r.code)
	}
	// A configured output json does not break a command without a JSON form.
	if r := drbook(t, append(env, "DRBOOK_OUTPUT=json"), "schema", "config"); r.code != 0 {
		t.Errorf("schema with DRBOOK_OUTPUT=json: %d %s", r.code, r.stderr)
	}
}

// TestConfigHostile: a config that is huge, binary or nested without end is
// refused by the capped reader and the YAML bounds at file:line:col (exit
// 3), like a runbook; nothing is read past the cap.
func TestConfigHostile(t *testing.T) {
	dir := t.TempDir()
	deep := strings.Repeat("[", 200) + strings.Repeat("]", 200)
	cases := []struct {
		name, path, body, want string
	}{
		{"endless device", "/dev/zero", "", "larger than 4 MiB"},
		{"control byte", "ctl.yaml", "db: \"\x01\"\n", "ctl.yaml:1:6: control character"},
		{"deep nesting", "deep.yaml", "plugin_dirs: " + deep + "\n", "deep.yaml:1:"},
		{"two documents", "two.yaml", "db: a\n---\ndb: b\n", "two.yaml:2:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.path
			if c.body != "" {
				p = filepath.Join(dir, c.path)
				writeFile(t, p, c.body)
			}
			r := drbook(t, configEnv(dir), "--config", p, "config")
			if r.code != 3 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want 3 and %q", r.code, r.stderr, c.want)
			}
		})
	}
}

// TestConfigLint: drbook lint checks a file that says kind: Config as an
// operator config.
func TestConfigLint(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "apiVersion: drbook/v1\nkind: Config\ndb: /srv/dr/drbook.db\n")
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "apiVersion: drbook/v1\nkind: Config\nnotify:\n  - name: x\n    url: gopher://h\n")
	if r := drbook(t, configEnv(dir), "lint", good); r.code != 0 || !strings.Contains(r.stdout, "ok: 1 file(s) valid") {
		t.Errorf("lint good config: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := drbook(t, configEnv(dir), "lint", bad); r.code != 1 || !strings.Contains(r.stdout, bad+":5:10: notify[0]: url:") {
		t.Errorf("lint bad config: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// The operator's own config file is linted as a config without kind:.
	plain := filepath.Join(dir, "xdg", "drbook", "config.yaml")
	if err := os.MkdirAll(filepath.Dir(plain), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, plain, "db: /srv/dr/drbook.db\nnotify:\n  - name: ops\n    url: https://hooks.example.org/x\n")
	env := configEnv(filepath.Join(dir, "xdg"))
	if r := drbook(t, env, "lint", plain); r.code != 0 || !strings.Contains(r.stdout, "ok: 1 file(s) valid") {
		t.Errorf("lint the operator config: %d %s %s", r.code, r.stdout, r.stderr)
	}
}
