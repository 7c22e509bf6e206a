package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/drbook/drbook/steps/plugin/internal/wire"
)

// Request is one execution of a step.
type Request struct {
	RunID, StepID string
	Attempt       int
	// Params are the step's `with:` parameters, templates rendered
	// (numbers arrive as float64; use the typed getters).
	Params map[string]any
	// Target is the node the step runs on; nil for a step without one.
	Target *Target
	// Stdout and Stderr stream step output to drbook, which masks secrets
	// and records it.
	Stdout, Stderr io.Writer
	// Logger writes plugin logs (stderr, collected by drbook's debug log).
	Logger hclog.Logger

	server  *server
	hostID  uint32
	session string
}

// Node returns a handle on another inventory node, reached through the
// runner's own transport (the same verified SSH connections it uses).
func (r *Request) Node(name string) *Target {
	return &Target{Name: name, node: name, req: r}
}

// Target is a node a plugin may run commands on through drbook.
type Target struct {
	Name   string
	Host   string
	Labels map[string]string

	node string // "" for the step's own target
	req  *Request
}

// Run runs a POSIX shell command line on the node through drbook's
// transport, with extra environment (which may hold secrets: it never
// appears on a command line), streaming its output to stdout and stderr
// (either may be nil). A non-zero exit is a result, not an error; err
// reports transport failures (ErrTransport, ErrNotStarted).
func (t *Target) Run(ctx context.Context, line string, env map[string]string, stdout, stderr io.Writer) (int, error) {
	conn, err := t.req.server.host(t.req.hostID)
	if err != nil {
		return -1, fmt.Errorf("%w: %w", ErrNotStarted, err)
	}
	var werr error
	last, err := wire.Exec(ctx, conn, &wire.ExecRequest{Session: t.req.session, Node: t.node, Line: line, Env: env}, func(ev wire.ExecEvent) {
		if werr != nil {
			return
		}
		if len(ev.Stdout) > 0 && stdout != nil {
			_, werr = stdout.Write(ev.Stdout)
		}
		if len(ev.Stderr) > 0 && stderr != nil {
			_, werr = stderr.Write(ev.Stderr)
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return -1, fmt.Errorf("%w: %w", ErrTransport, ctx.Err())
		}
		return -1, fmt.Errorf("%w: %w", ErrTransport, err)
	}
	if last.Error != "" {
		if last.NotStarted {
			return -1, fmt.Errorf("%w: %s", ErrNotStarted, last.Error)
		}
		return -1, fmt.Errorf("%w: %s", ErrTransport, last.Error)
	}
	if werr != nil {
		return *last.Exit, fmt.Errorf("write command output: %w", werr)
	}
	return *last.Exit, nil
}

// String returns a string parameter ("" when absent).
func (r *Request) String(name string) (string, error) {
	v, ok := r.Params[name]
	if !ok || v == nil {
		return "", nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("%w: %s must be a string, got %T", ErrBadParams, name, v)
}

// Int returns an integer parameter, or def when absent. Strings holding an
// integer are accepted (templates render to strings).
func (r *Request) Int(name string, def int) (int, error) {
	v, ok := r.Params[name]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case float64:
		if x == float64(int(x)) {
			return int(x), nil
		}
	case string:
		if n, err := strconv.Atoi(x); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: %s must be an integer, got %v", ErrBadParams, name, v)
}

// Bool returns a boolean parameter, or def when absent.
func (r *Request) Bool(name string, def bool) (bool, error) {
	v, ok := r.Params[name]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(x); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("%w: %s must be a boolean, got %v", ErrBadParams, name, v)
}

// Duration returns a duration parameter ("30s"), or def when absent.
func (r *Request) Duration(name string, def time.Duration) (time.Duration, error) {
	s, err := r.String(name)
	if err != nil || s == "" {
		return def, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %q is not a duration", ErrBadParams, name, s)
	}
	return d, nil
}

// Require returns an error naming the first absent or empty parameter.
func (r *Request) Require(names ...string) error {
	for _, n := range names {
		if v, ok := r.Params[n]; !ok || v == nil || v == "" {
			return fmt.Errorf("%w: %s is required", ErrBadParams, n)
		}
	}
	return nil
}

// Props are the properties of an object schema.
type Props map[string]any

// Object returns an object schema with the given properties, no others,
// and the required ones.
func Object(props Props, required ...string) map[string]any {
	s := map[string]any{"type": "object", "properties": map[string]any(props), "additionalProperties": false}
	if props == nil {
		s["properties"] = map[string]any{}
	}
	if len(required) > 0 {
		req := make([]any, len(required))
		for i, r := range required {
			req[i] = r
		}
		s["required"] = req
	}
	return s
}

// String is a string property schema.
func String(desc string) map[string]any {
	return map[string]any{"type": "string", "description": desc}
}

// Integer is an integer property schema (a template string is accepted too).
func Integer(desc string) map[string]any {
	return map[string]any{"type": []any{"integer", "string"}, "description": desc}
}

// Boolean is a boolean property schema.
func Boolean(desc string) map[string]any {
	return map[string]any{"type": "boolean", "description": desc}
}

// IsTransport reports whether err is a transport failure (as opposed to a
// command's own non-zero exit).
func IsTransport(err error) bool {
	return errors.Is(err, ErrTransport) || errors.Is(err, ErrNotStarted)
}
