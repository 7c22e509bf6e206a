package plugin

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/steps/plugin/internal/wire"
)

// TestManifestSchemaBounds: a plugin whose parameter schema nests too deep
// or holds too many values is refused when it loads, naming the kind.
func TestManifestSchemaBounds(t *testing.T) {
	deep := map[string]any{"type": "object"}
	for i := 0; i < 40; i++ {
		deep = map[string]any{"type": "object", "properties": map[string]any{"x": deep}}
	}
	wide := map[string]any{}
	for i := 0; i < 20_000; i++ {
		wide[fmt.Sprintf("p%d", i)] = map[string]any{"type": "string"}
	}
	normal := map[string]any{"type": "object", "properties": map[string]any{"url": map[string]any{"type": "string"}}, "required": []any{"url"}}
	cases := []struct {
		name   string
		params map[string]any
		want   string // "" for accepted
	}{
		{"normal", normal, ""},
		{"none", nil, ""},
		{"80 levels", deep, "kind k: the parameter schema nests 33 levels"},
		{"20000 properties", map[string]any{"type": "object", "properties": wide}, "at most 32 levels and 10000 values"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkManifest(&wire.Manifest{Name: "p", Kinds: []wire.KindInfo{{Name: "k", Params: c.params}}})
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want ErrProtocol containing %q", err, c.want)
			}
		})
	}
}

// TestPinRefusesNonRegularFiles: a plugin path that is a device is refused
// at once, not hashed without end.
func TestPinRefusesNonRegularFiles(t *testing.T) {
	done := make(chan error, 1)
	go func() {
		_, err := FileSHA256("/dev/zero")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err %v, want \"not a regular file\"", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hashing /dev/zero did not stop")
	}
}
