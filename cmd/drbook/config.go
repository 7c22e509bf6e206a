package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drbook/drbook/internal/jsonapi"
	"github.com/drbook/drbook/internal/notify"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/state"
)

// Where a setting's value came from, in the order they win.
const (
	srcFlag    = "flag"
	srcEnv     = "env"
	srcFile    = "file"
	srcDefault = "default"
)

// Environment variables of the operator config (docs/config.md).
const (
	envConfig         = "DRBOOK_CONFIG"
	envInventory      = "DRBOOK_INVENTORY"
	envDB             = "DRBOOK_DB"
	envPluginDirs     = "DRBOOK_PLUGIN_DIRS"
	envSignKey        = "DRBOOK_SIGN_KEY"
	envAllowedSigners = "DRBOOK_ALLOWED_SIGNERS"
	envOutput         = "DRBOOK_OUTPUT"
	envNotifyURL      = "DRBOOK_NOTIFY_URL"
	envNotifySecret   = "DRBOOK_NOTIFY_SECRET" // #nosec G101 -- the variable's name; it holds a {env:}/{file:} reference, never a secret
	envNotifyFormat   = "DRBOOK_NOTIFY_FORMAT"
)

// annDefaultInventory marks a command whose -i takes the configured default
// inventory when not given (run, plan, trust, the TUI). resume and
// rehearse do not: their inventory comes from the record or the drill; nor
// does lint, whose -i checks node names and would then check every shipped
// runbook against the operator's inventory.
const annDefaultInventory = "drbook/default-inventory"

// setting is one effective value and where it came from.
type setting struct {
	Name   string
	Value  string
	Source string
	// Origin details the source: the flag, the variable, file:line:col.
	Origin string
}

// settings are the effective operator settings of one command.
type settings struct {
	ConfigPath   string
	ConfigSource string // flag, env or default
	ConfigFound  bool
	File         *runbooks.OperatorConfig

	Inventory, DB, Output, SignKey, AllowedSigners setting
	PluginDirs                                     []string
	PluginDirsFrom                                 setting
	Notify                                         []runbooks.NotifyEndpoint
	NotifyFrom                                     setting
}

// defaultConfigPath is $XDG_CONFIG_HOME/drbook/config.yaml, or
// ~/.config/drbook/config.yaml.
func defaultConfigPath(getenv func(string) (string, bool)) string {
	if d, ok := getenv("XDG_CONFIG_HOME"); ok && filepath.IsAbs(d) {
		return filepath.Join(d, "drbook", "config.yaml")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "drbook", "config.yaml")
}

// ErrConfigMissing is wrapped when --config or DRBOOK_CONFIG names a file
// that does not exist (the default location may be absent).
var ErrConfigMissing = errors.New("config file not found")

// loadSettings resolves every operator setting for cmd: flag over
// environment over the config file over the default.
func loadSettings(cmd *cobra.Command, configFlag string, getenv func(string) (string, bool)) (*settings, error) {
	s := &settings{}
	switch {
	case flagChanged(cmd, "config"):
		s.ConfigPath, s.ConfigSource = configFlag, srcFlag
	case envSet(getenv, envConfig):
		s.ConfigPath, s.ConfigSource = mustEnv(getenv, envConfig), srcEnv
	default:
		s.ConfigPath, s.ConfigSource = defaultConfigPath(getenv), srcDefault
	}
	if s.ConfigPath != "" {
		src, err := runbooks.ReadFile(s.ConfigPath)
		switch {
		case err == nil:
			s.ConfigFound = true
			if s.File, err = runbooks.ParseOperatorConfig(s.ConfigPath, src); err != nil {
				return nil, err
			}
		case errors.Is(err, os.ErrNotExist) && s.ConfigSource == srcDefault:
		case errors.Is(err, os.ErrNotExist):
			return nil, usageError{fmt.Errorf("%w: %s (given by %s)", ErrConfigMissing, s.ConfigPath, originOf(s.ConfigSource))}
		default:
			return nil, fmt.Errorf("read config: %w", err)
		}
	}
	f := s.File
	if f == nil {
		f = &runbooks.OperatorConfig{}
	}
	filePath := func(field, v string) string { return expandPath(v, s.ConfigPath) }
	s.Inventory = pick(cmd, getenv, "inventory", "inventory", envInventory, f, f.Inventory, "", filePath)
	s.DB = pick(cmd, getenv, "db", "db", envDB, f, f.DB, "", filePath)
	if s.DB.Source == srcDefault {
		s.DB.Value, _ = state.DefaultPath()
	}
	s.Output = pick(cmd, getenv, "output", "output", envOutput, f, f.Output, "text", nil)
	if s.Output.Value != "text" && s.Output.Value != "json" {
		return nil, usageError{fmt.Errorf("%s must be text or json, not %q", originOf(s.Output.Source, s.Output.Origin), s.Output.Value)}
	}
	s.SignKey = pick(cmd, getenv, "sign-key", "sign_key", envSignKey, f, f.SignKey, "", filePath)
	s.AllowedSigners = pick(cmd, getenv, "allowed-signers", "allowed_signers", envAllowedSigners, f, f.AllowedSigners, "", filePath)

	// Plugin directories: a list, taken whole from one source.
	s.PluginDirsFrom = setting{Name: "plugin_dirs", Source: srcDefault}
	switch {
	case flagChanged(cmd, "plugin-dir"):
		s.PluginDirs, _ = cmd.Flags().GetStringArray("plugin-dir")
		s.PluginDirsFrom.Source, s.PluginDirsFrom.Origin = srcFlag, "--plugin-dir"
	case envSet(getenv, envPluginDirs):
		s.PluginDirs = filepath.SplitList(mustEnv(getenv, envPluginDirs))
		s.PluginDirsFrom.Source, s.PluginDirsFrom.Origin = srcEnv, envPluginDirs
	case len(f.PluginDirs) > 0:
		for _, d := range f.PluginDirs {
			s.PluginDirs = append(s.PluginDirs, expandPath(d, s.ConfigPath))
		}
		s.PluginDirsFrom.Source, s.PluginDirsFrom.Origin = srcFile, at(f, "plugin_dirs")
	}
	s.PluginDirsFrom.Value = strings.Join(s.PluginDirs, string(os.PathListSeparator))

	// Notification endpoints: --no-notify, or one endpoint from the
	// environment, or the file's list.
	s.NotifyFrom = setting{Name: "notify", Source: srcDefault}
	switch {
	case flagChanged(cmd, "no-notify"):
		s.NotifyFrom.Source, s.NotifyFrom.Origin = srcFlag, "--no-notify"
	case envSet(getenv, envNotifyURL):
		e, err := envEndpoint(getenv)
		if err != nil {
			return nil, usageError{err}
		}
		s.Notify = []runbooks.NotifyEndpoint{e}
		s.NotifyFrom.Source, s.NotifyFrom.Origin = srcEnv, envNotifyURL
	case len(f.Notify) > 0:
		s.Notify = f.Notify
		s.NotifyFrom.Source, s.NotifyFrom.Origin = srcFile, at(f, "notify")
	}
	s.NotifyFrom.Value = fmt.Sprintf("%d endpoint(s)", len(s.Notify))
	return s, nil
}

// envEndpoint is the endpoint DRBOOK_NOTIFY_URL, DRBOOK_NOTIFY_SECRET (a
// reference: {env:NAME} or {file:PATH}) and DRBOOK_NOTIFY_FORMAT describe.
func envEndpoint(getenv func(string) (string, bool)) (runbooks.NotifyEndpoint, error) {
	e := runbooks.NotifyEndpoint{Name: "env", URL: mustEnv(getenv, envNotifyURL), Format: "json"}
	if err := runbooks.CheckNotifyURL(e.URL); err != nil {
		return e, fmt.Errorf("%s: %w", envNotifyURL, err)
	}
	if v, ok := getenv(envNotifySecret); ok && v != "" {
		ref, err := runbooks.ParseSecretRef(v)
		if err != nil {
			return e, fmt.Errorf("%s: %w", envNotifySecret, err)
		}
		e.Secret = &ref
	}
	if v, ok := getenv(envNotifyFormat); ok && v != "" {
		if v != "json" && v != "text" {
			return e, fmt.Errorf("%s must be json or text, not %q", envNotifyFormat, v)
		}
		e.Format = v
	}
	return e, nil
}

// pick resolves one scalar setting: the command's flag (when it has one and
// it was given), the variable, the file's field, the default.
func pick(cmd *cobra.Command, getenv func(string) (string, bool), flag, field, env string,
	f *runbooks.OperatorConfig, fileVal, def string, resolve func(field, v string) string) setting {
	s := setting{Name: field}
	switch {
	case flagChanged(cmd, flag):
		s.Value, s.Source, s.Origin = cmd.Flags().Lookup(flag).Value.String(), srcFlag, "--"+flag
	case envSet(getenv, env):
		s.Value, s.Source, s.Origin = mustEnv(getenv, env), srcEnv, env
	case fileVal != "":
		s.Value, s.Source, s.Origin = fileVal, srcFile, at(f, field)
		if resolve != nil {
			s.Value = resolve(field, fileVal)
		}
	default:
		s.Value, s.Source = def, srcDefault
	}
	return s
}

func flagChanged(cmd *cobra.Command, name string) bool {
	fl := cmd.Flags().Lookup(name)
	return fl != nil && fl.Changed
}

func envSet(getenv func(string) (string, bool), name string) bool {
	v, ok := getenv(name)
	return ok && v != ""
}

func mustEnv(getenv func(string) (string, bool), name string) string {
	v, _ := getenv(name)
	return v
}

// at is file:line:col of a field of the config file.
func at(f *runbooks.OperatorConfig, field string) string {
	p := f.At(field)
	if p.IsZero() {
		return f.File
	}
	return fmt.Sprintf("%s:%d:%d", f.File, p.Line, p.Col)
}

func originOf(source string, origin ...string) string {
	if len(origin) > 0 && origin[0] != "" {
		return origin[0]
	}
	switch source {
	case srcFlag:
		return "--config"
	case srcEnv:
		return envConfig
	}
	return source
}

// applySettings makes the effective settings the command's: the shared
// fields of app, and the default inventory of the commands that take one.
func (a *app) applySettings(cmd *cobra.Command, s *settings) error {
	a.settings = s
	a.dbPath = s.DB.Value
	if s.DB.Source == srcDefault {
		a.dbPath = ""
	}
	a.output = s.Output.Value
	if s.Output.Source != srcFlag && a.output == "json" && checkJSONOutput(cmd) != nil {
		// A configured default applies where it can: a command without a
		// JSON form keeps text rather than refuse.
		a.output = "text"
	}
	a.pluginDir = s.PluginDirs
	if s.Inventory.Source == srcEnv || s.Inventory.Source == srcFile {
		if fl := cmd.Flags().Lookup("inventory"); fl != nil && !fl.Changed && cmd.Annotations[annDefaultInventory] != "" {
			if err := cmd.Flags().Set("inventory", s.Inventory.Value); err != nil {
				return usageError{fmt.Errorf("default inventory: %w", err)}
			}
		}
	}
	return nil
}

// markDefaultInventory marks the commands whose -i defaults to the
// configured inventory.
func markDefaultInventory(root *cobra.Command) {
	for _, c := range append([]*cobra.Command{root}, root.Commands()...) {
		switch c.Name() {
		case "drbook", "run", "plan", "trust":
			if c.Annotations == nil {
				c.Annotations = map[string]string{}
			}
			c.Annotations[annDefaultInventory] = "yes"
		}
	}
}

func newConfigCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Show the effective operator settings and where each came from",
		Long: `Show the settings drbook uses — default inventory, database, plugin
directories, signing key, allowed signers, output format and notification
endpoints — and where each came from: a flag, a DRBOOK_* environment
variable, the config file (file:line:col), or the default.

Flags override environment variables, which override the config file
($XDG_CONFIG_HOME/drbook/config.yaml, or ~/.config/drbook/config.yaml;
--config or DRBOOK_CONFIG name another). Secrets are never shown: an
endpoint's secret is shown as its reference ({env:NAME} or {file:PATH}) and
whether it can be read, and a webhook URL's path (which often carries a
token) is masked. See docs/config.md.`,
		Example: `  drbook config
  DRBOOK_DB=/srv/dr/drbook.db drbook config -o json
  drbook --config ./ci-config.yaml config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc := configDoc(a.settings)
			if a.output == "json" {
				return writeJSON(cmd.OutOrStdout(), doc)
			}
			return printConfig(cmd.OutOrStdout(), doc)
		},
	}
}

func configDoc(s *settings) jsonapi.Config {
	doc := jsonapi.Config{Header: jsonapi.NewHeader(), Settings: []jsonapi.ConfigSetting{}, Notify: []jsonapi.ConfigEndpoint{}}
	if s == nil {
		return doc
	}
	doc.ConfigFile = jsonapi.ConfigFile{Path: s.ConfigPath, Source: s.ConfigSource, Found: s.ConfigFound}
	for _, st := range []setting{s.Inventory, s.DB, s.PluginDirsFrom, s.SignKey, s.AllowedSigners, s.Output, s.NotifyFrom} {
		doc.Settings = append(doc.Settings, jsonapi.ConfigSetting{Name: st.Name, Value: st.Value, Source: st.Source, Origin: st.Origin})
	}
	for _, e := range s.Notify {
		ce := jsonapi.ConfigEndpoint{Name: e.Name, URL: notify.MaskURL(e.URL), Format: e.Format, Events: e.Events,
			TimeoutMS: jsonapi.MS(e.Timeout.D()), RetryForMS: jsonapi.MS(e.RetryFor.D())}
		if ce.Format == "" {
			ce.Format = "json"
		}
		if ce.Events == nil {
			ce.Events = []string{}
		}
		if e.Secret != nil {
			ce.Secret = e.Secret.String()
			_, err := e.Secret.Read()
			ce.SecretReadable = err == nil
		}
		doc.Notify = append(doc.Notify, ce)
	}
	return doc
}

func printConfig(w io.Writer, doc jsonapi.Config) error {
	found := "found"
	if !doc.ConfigFile.Found {
		found = "not found"
	}
	fmt.Fprintf(w, "config file: %s (%s, %s)\n\n", ts(doc.ConfigFile.Path), doc.ConfigFile.Source, found)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	for _, s := range doc.Settings {
		from := s.Source
		if s.Origin != "" {
			from += " (" + ts(s.Origin) + ")"
		}
		v := s.Value
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, ts(v), from)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(doc.Notify) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tURL\tFORMAT\tSECRET")
		for _, e := range doc.Notify {
			sec := "none (unsigned)"
			if e.Secret != "" {
				sec = e.Secret + " (readable)"
				if !e.SecretReadable {
					sec = e.Secret + " (NOT readable)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ts(e.Name), ts(e.URL), e.Format, ts(sec))
		}
		return tw.Flush()
	}
	return nil
}

// configFlags adds the flags of the operator config to root.
func configFlags(fs *pflag.FlagSet, configPath *string) {
	fs.StringVar(configPath, "config", "", "operator config file (default $XDG_CONFIG_HOME/drbook/config.yaml; env DRBOOK_CONFIG)")
	fs.Bool("no-notify", false, "send no notifications for this command, whatever the config says")
}
