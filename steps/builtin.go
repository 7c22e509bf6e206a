package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps/transport"
)

// Shell runs a shell command on each target. Outputs are read from stdout:
// either the whole stdout is one JSON object, or lines of key=value.
type Shell struct{}

var envSchema = map[string]any{
	"type":                 "object",
	"description":          "Environment for the command. Secrets belong here, not in the command line.",
	"additionalProperties": map[string]any{"type": []any{"string", "integer", "boolean"}},
}

// Info implements Kind.
func (Shell) Info() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name:        "shell",
		Description: "Run a shell command on each target node.",
		Params: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"command": map[string]any{"type": "string", "description": "POSIX shell command line."},
				"env":     envSchema,
			},
			"required":             []any{"command"},
			"additionalProperties": false,
		},
		DeclaredOutputs: true,
		Targets:         runbooks.TargetsRequired,
		CommandParams:   []string{"command"},
	}
}

// Summary implements Kind.
func (Shell) Summary(x *Exec) string {
	c, _ := paramString(x.Params, "command")
	return c
}

// Run implements Kind.
func (Shell) Run(ctx context.Context, x *Exec) (Result, error) {
	line, err := paramString(x.Params, "command")
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	env, err := paramEnv(x.Params, "env")
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	return RunCommand(ctx, x, line, env)
}

// RunCommand runs a command line on x's target through its transport with
// the node's environment plus env, streaming output to x's streams, and reads
// the step's declared outputs from stdout. Shell steps, check: commands and
// wait polls all go through it.
func RunCommand(ctx context.Context, x *Exec, line string, env map[string]string) (Result, error) {
	if x.Transport == nil || x.Target == nil {
		return Result{ExitCode: -1}, fmt.Errorf("%w: this step needs a target node", ErrBadParams)
	}
	full := map[string]string{}
	maps.Copy(full, x.Target.Env)
	maps.Copy(full, env)
	capture := &capBuffer{max: 1 << 20}
	stdout := teeWriter(x.Stdout, capture)
	code, err := x.Transport.Run(ctx, transport.Command{Line: line, Env: full, Stdout: stdout, Stderr: x.Stderr})
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	res := Result{ExitCode: code}
	res.Outputs, res.SecretOutputs = ParseOutputs(capture.Bytes(), x.Step.Outputs)
	if code != 0 {
		return res, &ExitError{Code: code}
	}
	for _, o := range x.Step.Outputs {
		if _, ok := res.Outputs[o.Name]; !ok {
			return res, fmt.Errorf("%w: %q (print %s=VALUE on stdout)", ErrMissingOutput, o.Name, o.Name)
		}
	}
	return res, nil
}

// ParseOutputs reads declared outputs from a command's stdout: a JSON object
// (its top-level fields), else key=value lines (the last one wins).
func ParseOutputs(stdout []byte, decl []runbooks.Output) (map[string]string, []string) {
	if len(decl) == 0 {
		return nil, nil
	}
	want := map[string]bool{}
	var secret []string
	for _, o := range decl {
		want[o.Name] = true
		if o.Secret {
			secret = append(secret, o.Name)
		}
	}
	out := map[string]string{}
	trimmed := bytes.TrimSpace(stdout)
	var obj map[string]any
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &obj) == nil {
		for k, v := range obj {
			if want[k] {
				out[k] = jsonText(v)
			}
		}
		return out, secret
	}
	for _, line := range strings.Split(string(stdout), "\n") {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), "=")
		if ok && want[strings.TrimSpace(k)] {
			out[strings.TrimSpace(k)] = v
		}
	}
	return out, secret
}

func jsonText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Confirm stops until the operator acknowledges a manual action.
type Confirm struct{}

// Info implements Kind.
func (Confirm) Info() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name:        "confirm",
		Description: "Wait for the operator to confirm a manual action was done.",
		Params: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"message": map[string]any{"type": "string", "description": "What the operator must do or check before confirming."},
			},
			"required":             []any{"message"},
			"additionalProperties": false,
		},
		Outputs:     []runbooks.OutputInfo{{Name: "by"}, {Name: "at"}},
		Targets:     runbooks.TargetsNone,
		ShownParams: []string{"message"},
	}
}

// Summary implements Kind.
func (Confirm) Summary(x *Exec) string {
	m, _ := paramString(x.Params, "message")
	return m
}

// Run implements Kind.
func (Confirm) Run(ctx context.Context, x *Exec) (Result, error) {
	msg, err := paramString(x.Params, "message")
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	resp, err := x.Operator.Confirm(ctx, ConfirmRequest{StepID: x.Step.ID, Title: x.Step.Title, Message: msg})
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	if !resp.OK {
		return Result{ExitCode: 1}, fmt.Errorf("%w: %s", ErrDeclined, x.Step.ID)
	}
	fmt.Fprintf(x.Stdout, "confirmed by %s\n", resp.By)
	return Result{Outputs: map[string]string{"by": resp.By, "at": time.Now().UTC().Format(time.RFC3339)}, Message: "confirmed by " + resp.By}, nil
}

// Input asks the operator for a value in the middle of a run.
type Input struct{}

// Info implements Kind.
func (Input) Info() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name:        "input",
		Description: "Ask the operator for a value mid-run; output `value`.",
		Params: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"type":        map[string]any{"type": "string", "enum": []any{"string", "secret", "bool", "int", "enum", "duration"}},
				"prompt":      map[string]any{"type": "string"},
				"description": map[string]any{"type": "string"},
				"options":     map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				"pattern":     map[string]any{"type": "string"},
				"optional":    map[string]any{"type": "boolean"},
			},
			"required":             []any{"prompt"},
			"additionalProperties": false,
		},
		Outputs: []runbooks.OutputInfo{{Name: "value"}},
		Targets: runbooks.TargetsNone,
	}
}

// Summary implements Kind.
func (Input) Summary(x *Exec) string {
	p, _ := paramString(x.Params, "prompt")
	return p
}

// InputSpec builds the input definition an input step asks for.
func InputSpec(x *Exec) (runbooks.Input, error) {
	in := runbooks.Input{Name: x.Step.ID, Type: runbooks.InputString}
	var err error
	if t, _ := paramString(x.Params, "type"); t != "" {
		in.Type = t
	}
	if in.Prompt, err = paramString(x.Params, "prompt"); err != nil {
		return in, err
	}
	in.Description, _ = paramString(x.Params, "description")
	in.Pattern, _ = paramString(x.Params, "pattern")
	if o, ok := x.Params["optional"].(bool); ok {
		in.Optional = o
	}
	if opts, ok := x.Params["options"].([]any); ok {
		for _, o := range opts {
			in.Options = append(in.Options, fmt.Sprint(o))
		}
	}
	return in, nil
}

// Run implements Kind.
func (Input) Run(ctx context.Context, x *Exec) (Result, error) {
	in, err := InputSpec(x)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	raw, err := x.Operator.Ask(ctx, AskRequest{StepID: x.Step.ID, Input: in})
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	v, err := runbooks.CoerceInput(&in, raw, nil)
	if err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("%w: %v", ErrBadParams, err)
	}
	res := Result{Outputs: map[string]string{"value": fmt.Sprint(v)}}
	if in.Type == runbooks.InputSecret {
		res.SecretOutputs = []string{"value"}
		fmt.Fprintln(x.Stdout, "value received (secret)")
	} else {
		fmt.Fprintf(x.Stdout, "value: %v\n", v)
	}
	return res, nil
}

// Wait polls a command (or another kind) until an expectation holds.
type Wait struct{}

// Info implements Kind.
func (Wait) Info() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name:        "wait",
		Description: "Poll a command, or another step kind such as agent.status, until its exit status or outputs meet `expect`.",
		Params: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"command":  map[string]any{"type": "string", "description": "Shell command polled until it exits 0 (and meets expect)."},
				"kind":     map[string]any{"type": "string", "description": "A step kind polled instead of a command (e.g. agent.status)."},
				"with":     map[string]any{"type": "object", "description": "Parameters for kind."},
				"env":      envSchema,
				"expect":   map[string]any{"type": "object", "description": "Output name to expected value; a value may start with >=, <=, >, <, != to compare numbers."},
				"interval": map[string]any{"type": "string", "description": "Time between polls (default 1s)."},
			},
			"additionalProperties": false,
		},
		Outputs:         []runbooks.OutputInfo{{Name: "polls"}},
		DeclaredOutputs: true,
		Targets:         runbooks.TargetsRequired,
		Idempotent:      true,
		CommandParams:   []string{"command"},
		PollsKind:       true,
	}
}

// Summary implements Kind.
func (Wait) Summary(x *Exec) string {
	if k, _ := paramString(x.Params, "kind"); k != "" {
		return "poll " + k
	}
	c, _ := paramString(x.Params, "command")
	return "poll: " + c
}

// Run implements Kind.
func (Wait) Run(ctx context.Context, x *Exec) (Result, error) {
	interval, err := paramDuration(x.Params, "interval", time.Second)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	line, _ := paramString(x.Params, "command")
	kindName, _ := paramString(x.Params, "kind")
	env, err := paramEnv(x.Params, "env")
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	if (line == "") == (kindName == "") {
		return Result{ExitCode: -1}, fmt.Errorf("%w: wait needs exactly one of command or kind", ErrBadParams)
	}
	expect, _ := x.Params["expect"].(map[string]any)
	var inner Kind
	innerParams := map[string]any{}
	if kindName != "" {
		var ok bool
		if inner, ok = x.Registry.Get(kindName); !ok {
			return Result{ExitCode: -1}, fmt.Errorf("%w: unknown kind %q", ErrBadParams, kindName)
		}
		if w, ok := x.Params["with"].(map[string]any); ok {
			innerParams = w
		}
	}
	polls := 0
	var last string
	for {
		polls++
		var res Result
		var err error
		quiet := *x
		quiet.Stdout, quiet.Stderr = discard{}, discard{}
		if inner != nil {
			quiet.Params = innerParams
			res, err = inner.Run(ctx, &quiet)
		} else {
			step := *x.Step
			for name := range expect {
				step.Outputs = append(step.Outputs, runbooks.Output{Name: name})
			}
			quiet.Step = &step
			res, err = RunCommand(ctx, &quiet, line, env)
		}
		if ctx.Err() != nil {
			return Result{ExitCode: -1}, ctx.Err()
		}
		status := ""
		if err == nil {
			var ok bool
			ok, status = meets(res.Outputs, expect)
			if ok {
				fmt.Fprintf(x.Stdout, "poll %d: ok %s\n", polls, status)
				if res.Outputs == nil {
					res.Outputs = map[string]string{}
				}
				res.Outputs["polls"] = strconv.Itoa(polls)
				return res, nil
			}
		} else {
			status = err.Error()
		}
		if status != last {
			fmt.Fprintf(x.Stdout, "poll %d: waiting: %s\n", polls, status)
			last = status
		}
		select {
		case <-ctx.Done():
			return Result{ExitCode: -1}, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// meets checks outputs against expectations and describes the state.
func meets(outs map[string]string, expect map[string]any) (bool, string) {
	ok := true
	var parts []string
	for _, name := range sortedKeys(expect) {
		want := fmt.Sprint(expect[name])
		got, have := outs[name]
		parts = append(parts, fmt.Sprintf("%s=%s (want %s)", name, got, want))
		if !have || !compare(got, want) {
			ok = false
		}
	}
	return ok, strings.Join(parts, ", ")
}

func compare(got, want string) bool {
	for _, op := range []string{">=", "<=", "!=", ">", "<"} {
		if rest, ok := strings.CutPrefix(want, op); ok {
			g, err1 := strconv.ParseFloat(strings.TrimSpace(got), 64)
			w, err2 := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if op == "!=" && (err1 != nil || err2 != nil) {
				return got != strings.TrimSpace(rest)
			}
			if err1 != nil || err2 != nil {
				return false
			}
			switch op {
			case ">=":
				return g >= w
			case "<=":
				return g <= w
			case "!=":
				return g != w
			case ">":
				return g > w
			case "<":
				return g < w
			}
		}
	}
	return got == want
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}
