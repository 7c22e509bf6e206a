package engine

import "testing"

// TestSecretInCommandCheck: a secret value found in a command parameter
// (nested ones too) is refused; short values the masker ignores, and values
// only in other parameters, are not.
func TestSecretInCommandCheck(t *testing.T) {
	params := map[string]any{
		"command": "curl -H 'token: s3cr3t-token' https://x",
		"env":     map[string]any{"TOKEN": "other-secret"},
		"detach":  map[string]any{"log": "/var/log/s3cr3t-token.log", "ready": "true"},
	}
	tests := []struct {
		name    string
		path    string
		secrets []string
		want    bool
	}{
		{"in the command", "command", []string{"s3cr3t-token"}, true},
		{"nested parameter", "detach.log", []string{"s3cr3t-token"}, true},
		{"only in env", "command", []string{"other-secret"}, false},
		{"too short to tell", "command", []string{"x"}, false},
		{"missing parameter", "detach.missing", []string{"s3cr3t-token"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, ok := paramAt(params, tt.path)
			if got := ok && containsSecret(line, tt.secrets); got != tt.want {
				t.Fatalf("secret in %s: %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}
