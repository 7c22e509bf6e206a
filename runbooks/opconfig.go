package runbooks

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/drbook/drbook/internal/capread"
)

// OperatorConfig is the operator's config file ($XDG_CONFIG_HOME/drbook/
// config.yaml): what an operator sets once instead of on every command.
// Flags override DRBOOK_* environment variables, which override this file
// (docs/config.md). It never holds a secret: notification secrets are
// {env: NAME} or {file: PATH} references, read when drbook uses them.
type OperatorConfig struct {
	Src            `yaml:"-"`
	APIVersion     string           `yaml:"apiVersion" enum:"drbook/v1" doc:"Schema version of this file; drbook/v1 (optional)."`
	Kind           string           `yaml:"kind" enum:"Config" doc:"Always Config (optional)."`
	Inventory      string           `yaml:"inventory" doc:"Default inventory for run, plan, trust and the TUI when -i is not given (~ and paths relative to this file are resolved)."`
	DB             string           `yaml:"db" doc:"Checkpoint database (default $XDG_DATA_HOME/drbook/drbook.db)."`
	PluginDirs     []string         `yaml:"plugin_dirs" doc:"Directories of step plugins, searched like --plugin-dir."`
	SignKey        string           `yaml:"sign_key" doc:"SSH private key that signs records and reports (used by the signing commands)."`
	AllowedSigners string           `yaml:"allowed_signers" doc:"allowed_signers file (ssh-keygen format) that signatures are verified against."`
	Output         string           `yaml:"output" enum:"text,json" doc:"Default output format of commands that have a JSON form (text or json)."`
	Notify         []NotifyEndpoint `yaml:"notify" doc:"Endpoints that receive a signed JSON event when a run starts, waits for a danger confirmation, fails a step, crosses its RTO budget, is interrupted and finishes (docs/notifications.md)."`

	// File is where the config was read from.
	File string `yaml:"-"`
}

// NotifyEndpoint is one receiver of run notifications.
type NotifyEndpoint struct {
	Src    `yaml:"-"`
	Name   string     `yaml:"name" required:"true" pattern:"^[a-z0-9][a-z0-9._-]{0,62}$" doc:"Short name of the endpoint, shown in the record and in drbook config."`
	URL    string     `yaml:"url" required:"true" doc:"http:// or https:// URL the events are POSTed to."`
	Secret *SecretRef `yaml:"secret" doc:"Shared secret the body is signed with (HMAC-SHA256, header X-Hub-Signature-256): {env: NAME} or {file: PATH}, never the value itself."`
	Format string     `yaml:"format" enum:"json,text" doc:"json: the full event (default); text: only {\"text\": ...}, which chat incoming webhooks accept."`
	Events []string   `yaml:"events" doc:"Send only these kinds (run.started, step.waiting, step.failed, rto.crossed, run.interrupted, run.finished, run.handover, approval.waiting); default all."`
	// Timeout bounds one delivery attempt; RetryFor how long a delivery is
	// retried (with exponential backoff) before it is given up.
	Timeout  Duration `yaml:"timeout" doc:"Time limit of one delivery attempt (default 5s)."`
	RetryFor Duration `yaml:"retry_for" doc:"How long a failed delivery is retried, with exponential backoff, before it is given up (default 2m)."`
}

// SecretRef names where a secret is read from: an environment variable or a
// file. The value itself never appears in a config.
type SecretRef struct {
	Src  `yaml:"-"`
	Env  string `yaml:"env" pattern:"^[A-Za-z_][A-Za-z0-9_]*$" doc:"Environment variable holding the secret."`
	File string `yaml:"file" doc:"File holding the secret (a trailing newline is dropped)."`
}

// NotifyKinds are the notification kinds drbook sends (docs/notifications.md).
var NotifyKinds = []string{"run.started", "step.waiting", "step.failed", "rto.crossed", "run.interrupted", "run.finished", "run.handover", "approval.waiting"}

// ErrConfig marks an operator config that is not valid.
var ErrConfig = errors.New("invalid operator config")

// ErrSecretRef is wrapped when a secret reference is malformed or cannot be read.
var ErrSecretRef = errors.New("bad secret reference")

// ParseOperatorConfig decodes and validates an operator config: every
// problem is returned at once as Diagnostics at file:line:col.
func ParseOperatorConfig(file string, src []byte) (*OperatorConfig, error) {
	if onlyComments(src) {
		return &OperatorConfig{File: file}, nil // nothing set (yet)
	}
	root, err := parseYAML(file, src)
	if err != nil {
		return nil, err
	}
	d := &diags{file: file}
	c := &OperatorConfig{File: file}
	if root.kind == kindNull {
		return c, nil
	}
	(&decoder{d: d}).decode(root, reflect.ValueOf(c).Elem(), "config")
	names := map[string]bool{}
	for i := range c.Notify {
		e := &c.Notify[i]
		what := fmt.Sprintf("notify[%d]", i)
		if e.Pos.IsZero() { // an empty list item
			d.add(c.At("notify"), "%s: an endpoint needs name: and url:", what)
			continue
		}
		if e.Name != "" {
			if names[e.Name] {
				d.add(e.At("name"), "%s: endpoint name %q is used twice", what, e.Name)
			}
			names[e.Name] = true
		}
		if e.Has("url") {
			if err := CheckNotifyURL(e.URL); err != nil {
				d.add(e.At("url"), "%s: url: %v", what, err)
			}
		}
		if e.Secret != nil {
			s := e.Secret
			switch {
			case s.Env != "" && s.File != "":
				d.add(s.Pos, "%s: secret: give either env: or file:, not both", what)
			case s.Env == "" && s.File == "":
				d.add(s.Pos, "%s: secret: give {env: NAME} or {file: PATH} (the secret itself is never written in the config)", what)
			}
		}
		for j, k := range e.Events {
			if !contains(NotifyKinds, k) {
				d.add(e.At("events"), "%s: events[%d]: %q is not a notification kind (%s)", what, j, k, strings.Join(NotifyKinds, ", "))
			}
		}
	}
	if err := dedupe(d).err(); err != nil {
		return nil, err
	}
	return c, nil
}

// onlyComments reports whether src holds nothing but blank lines and
// comments.
func onlyComments(src []byte) bool {
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// CheckNotifyURL checks that u is an absolute http or https URL without
// credentials in it (a secret goes in secret:, never in the URL's user part).
func CheckNotifyURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("%q: want an http:// or https:// URL", u)
	}
	if p.Host == "" {
		return fmt.Errorf("%q: no host", u)
	}
	if p.User != nil {
		return errors.New("a URL with a user or password in it: put the secret in secret: {env: NAME}")
	}
	return nil
}

var secretRefRe = regexp.MustCompile(`^\{\s*(env|file)\s*:\s*(.+?)\s*\}$`)

// ParseSecretRef parses the string form of a secret reference, {env:NAME}
// or {file:PATH}, as environment variables give it.
func ParseSecretRef(s string) (SecretRef, error) {
	m := secretRefRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return SecretRef{}, fmt.Errorf("%w: want {env:NAME} or {file:PATH}, never the secret itself", ErrSecretRef)
	}
	if m[1] == "env" {
		return SecretRef{Env: m[2]}, nil
	}
	return SecretRef{File: m[2]}, nil
}

// String is the reference as written in an environment variable; it never
// holds the secret.
func (s SecretRef) String() string {
	if s.Env != "" {
		return "{env:" + s.Env + "}"
	}
	if s.File != "" {
		return "{file:" + s.File + "}"
	}
	return ""
}

// Read returns the secret the reference names, read now; a file is read
// with the same cap as an answers file's secret.
func (s SecretRef) Read() (string, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("%w: environment variable %s is not set", ErrSecretRef, s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := capread.ReadFile(s.File, maxSecretFileBytes)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrSecretRef, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%w: %s is empty", ErrSecretRef, s.File)
		}
		return v, nil
	}
	return "", fmt.Errorf("%w: empty reference", ErrSecretRef)
}

// OperatorConfigSchema returns the JSON Schema (draft-07) of the operator config.
func OperatorConfigSchema() map[string]any {
	defs := map[string]any{}
	root := structSchema(reflect.TypeOf(OperatorConfig{}), defs)
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = SchemaBaseURL + "config.schema.json"
	root["title"] = "drbook operator config"
	root["definitions"] = defs
	return root
}
