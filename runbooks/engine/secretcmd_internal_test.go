package engine

import (
	"testing"

	"github.com/drbook/drbook/runbooks"
)

// TestSecretInCommandCheck: a command parameter whose template derives from
// a secret (nested ones too) is refused; a literal that happens to equal a
// secret, a secret used only in env, and plain parameters are not.
func TestSecretInCommandCheck(t *testing.T) {
	sc := &runbooks.RunScope{Inputs: map[string]runbooks.Value{
		"tok":  {V: "s3cr3t-token", Secret: true},
		"host": {V: "db1"},
	}, Steps: map[string]*runbooks.StepValues{}}
	values := map[string]any{
		"command":  "curl -H 'token: {{ inputs.tok }}' https://{{ inputs.host }}",
		"literal":  "test \"$T\" = s3cr3t-token",
		"plain":    "ping {{ inputs.host }}",
		"env":      map[string]any{"TOKEN": "{{ inputs.tok }}"},
		"detach":   map[string]any{"log": "/var/log/{{ inputs.tok | upper }}.log", "ready": "true"},
		"notatext": 3,
	}
	tests := []struct {
		path string
		want bool
	}{
		{"command", true},
		{"detach.log", true},
		{"literal", false},
		{"plain", false},
		{"detach.ready", false},
		{"detach.missing", false},
		{"notatext", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := secretParam(values, tt.path, sc); got != tt.want {
				t.Fatalf("secret in %s: %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}
