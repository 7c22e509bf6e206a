package jsonapi

// Config is `drbook config -o json`: the effective operator settings and
// where each came from (docs/config.md). It never holds a secret: endpoint
// secrets are shown as their reference, and URLs with their path masked.
type Config struct {
	Header
	ConfigFile ConfigFile       `json:"config_file"`
	Settings   []ConfigSetting  `json:"settings"`
	Notify     []ConfigEndpoint `json:"notify"`
}

// ConfigFile is the config file drbook read (or looked for).
type ConfigFile struct {
	// Path of the file; Source how it was chosen: flag (--config), env
	// (DRBOOK_CONFIG) or default; Found false when it does not exist.
	Path   string `json:"path"`
	Source string `json:"source"`
	Found  bool   `json:"found"`
}

// ConfigSetting is one effective setting.
type ConfigSetting struct {
	// Name is the config file's field (inventory, db, plugin_dirs,
	// sign_key, allowed_signers, output, notify).
	Name string `json:"name"`
	// Value as drbook uses it (paths resolved; plugin_dirs joined by the
	// OS list separator; notify: the number of endpoints).
	Value string `json:"value"`
	// Source is flag, env, file or default; Origin names it: the flag, the
	// variable, or file:line:col of the field.
	Source string `json:"source"`
	Origin string `json:"origin,omitempty"`
}

// ConfigEndpoint is one notification endpoint.
type ConfigEndpoint struct {
	Name string `json:"name"`
	// URL with everything after the host masked (it often holds a token).
	URL    string   `json:"url"`
	Format string   `json:"format"`
	Events []string `json:"events"`
	// Secret is the reference ({env:NAME} or {file:PATH}), never the value;
	// SecretReadable whether it can be read now.
	Secret         string `json:"secret,omitempty"`
	SecretReadable bool   `json:"secret_readable"`
	// TimeoutMS and RetryForMS are the configured limits (0: the defaults).
	TimeoutMS  int64 `json:"timeout_ms"`
	RetryForMS int64 `json:"retry_for_ms"`
}
