package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// Info implements Kind. The engine asks for it several times per step:
// it is built once (callers must not modify its maps and slices).
func (Shell) Info() runbooks.KindInfo { return shellInfo() }

var shellInfo = sync.OnceValue(func() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name: "shell",
		Description: "Run a shell command on each target node. Default timeout 10m (timeout: none to opt out). " +
			"With detach:, start a long-running process (a daemon) in its own session, output to a log file, and return once it is started and ready.",
		Params: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"command": map[string]any{"type": "string", "description": "POSIX shell command line."},
				"env":     envSchema,
				"detach": map[string]any{
					"type": "object",
					"description": "Start command as a background service that outlives the step: in a new session (setsid), stdin from /dev/null, " +
						"stdout and stderr appended to log. The step prints pid=<process group id> (declare outputs: [pid] to use it; kill -TERM -PID stops it and its children) " +
						"and, with ready, polls that command until it exits 0; it fails if the process exits first (showing the log's last lines) or if the timeout runs out (the process is then stopped).",
					"properties": map[string]any{
						"log":      map[string]any{"type": "string", "description": "File on the node the process's output is appended to."},
						"ready":    map[string]any{"type": "string", "description": "Readiness command polled until it exits 0 (e.g. curl -fsS http://127.0.0.1:2379/health)."},
						"interval": map[string]any{"type": "string", "description": "Time between readiness polls (default 500ms)."},
					},
					"required":             []any{"log"},
					"additionalProperties": false,
				},
			},
			"required":             []any{"command"},
			"additionalProperties": false,
		},
		DeclaredOutputs: true,
		Targets:         runbooks.TargetsRequired,
		CommandParams:   []string{"command", "detach.log", "detach.ready"},
		DefaultTimeout:  runbooks.Duration(ShellDefaultTimeout),
	}
})

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
	if d, ok := x.Params["detach"]; ok && d != nil {
		dm, ok := d.(map[string]any)
		if !ok {
			return Result{ExitCode: -1}, fmt.Errorf("%w: detach must be a mapping", ErrBadParams)
		}
		return runDetached(ctx, x, line, env, dm)
	}
	return RunCommand(ctx, x, line, env)
}

// detachTail is how many lines of a detached process's log a failure shows.
const detachTail = 20

// runDetached starts line as a service: setsid puts it in a session of its
// own (so neither the SSH session's end nor a cancelled step signals it),
// stdin is /dev/null and its output goes to the log file, so nothing holds
// the session open and the launch returns at once. It then polls the ready
// command until it exits 0, while checking that the process still lives.
func runDetached(ctx context.Context, x *Exec, line string, env map[string]string, d map[string]any) (Result, error) {
	logPath, err := paramString(d, "log")
	if err != nil || logPath == "" {
		return Result{ExitCode: -1}, fmt.Errorf("%w: detach needs log: a file for the process's output", ErrBadParams)
	}
	ready, err := paramString(d, "ready")
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	interval, err := paramDuration(d, "interval", 500*time.Millisecond)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	q := runbooks.ShellQuote(logPath)
	launch := fmt.Sprintf(": >>%s || exit 1\nsetsid sh -c %s >>%s 2>&1 </dev/null &\necho pid=$!", q, runbooks.ShellQuote(line), q)
	step := *x.Step
	if !slices.ContainsFunc(step.Outputs, func(o runbooks.Output) bool { return o.Name == "pid" }) {
		step.Outputs = append(slices.Clone(step.Outputs), runbooks.Output{Name: "pid"})
	}
	started := *x
	started.Step = &step
	res, err := RunCommand(ctx, &started, launch, env)
	if err != nil {
		return res, err
	}
	pid := strings.TrimSpace(res.Outputs["pid"])
	if _, perr := strconv.Atoi(pid); perr != nil {
		return Result{ExitCode: -1}, fmt.Errorf("detach: the launch printed no process id (%q)", pid)
	}
	if !slices.ContainsFunc(x.Step.Outputs, func(o runbooks.Output) bool { return o.Name == "pid" }) {
		delete(res.Outputs, "pid")
	}
	if ready == "" {
		res.Message = "started pid " + pid
		return res, nil
	}
	full := map[string]string{}
	maps.Copy(full, x.Target.Env)
	maps.Copy(full, env)
	probe := fmt.Sprintf("kill -0 %s 2>/dev/null || exit 99\n%s", pid, ready)
	notReady := func(n int, last string) (Result, error) {
		// A process that never became ready is stopped (TERM to its
		// process group), so a retry or a redo does not start a second one.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = x.Transport.Run(stopCtx, transport.Command{Line: "kill -TERM -" + pid + " 2>/dev/null", Env: full})
		return Result{ExitCode: -1, Outputs: res.Outputs}, &PollTimeoutError{
			Detail: fmt.Sprintf("pid %s started but was not ready after %d readiness check(s), so it was stopped (last: %s)", pid, n, tailText(last, 5, 2048)), Cause: ctx.Err()}
	}
	for n := 1; ; n++ {
		var out bytes.Buffer
		code, err := x.Transport.Run(ctx, transport.Command{Line: probe, Env: full, Stdout: &out, Stderr: &out})
		switch {
		case err != nil && ctx.Err() != nil:
			return notReady(n, out.String())
		case err != nil:
			return Result{ExitCode: -1, Outputs: res.Outputs}, err
		case code == 0:
			fmt.Fprintf(x.Stdout, "started pid %s; ready after %d check(s)\n", pid, n)
			res.Message = "started pid " + pid + ", ready"
			return res, nil
		case code == 99:
			var tail bytes.Buffer
			_, _ = x.Transport.Run(ctx, transport.Command{Line: fmt.Sprintf("tail -n %d %s", detachTail, runbooks.ShellQuote(logPath)), Env: full, Stdout: &tail, Stderr: &tail})
			fmt.Fprint(x.Stdout, tail.String())
			return Result{ExitCode: 1, Outputs: res.Outputs}, fmt.Errorf("%w: detach: process %s exited before it was ready (last lines of %s above)", ErrExitStatus, pid, logPath)
		}
		select {
		case <-ctx.Done():
			return notReady(n, out.String())
		case <-time.After(interval):
		}
	}
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
	if obj, ok := jsonObject(trimmed); ok {
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

// jsonObject decodes stdout that is exactly one JSON object. Numbers keep
// their literal text (json.Number): an etcd member id such as
// 10564617825209086826 does not fit a float64 and must reach the next step
// digit for digit.
func jsonObject(b []byte) (map[string]any, bool) {
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // more than one value
	}
	return obj, true
}

func jsonText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
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
		Description: "Wait for the operator to confirm a manual action was done. No timeout by default: it waits for a person.",
		Params: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"message": map[string]any{"type": "string", "description": "What the operator must do or check before confirming."},
			},
			"required":             []any{"message"},
			"additionalProperties": false,
		},
		Outputs:        []runbooks.OutputInfo{{Name: "by"}, {Name: "at"}},
		Targets:        runbooks.TargetsNone,
		ShownParams:    []string{"message"},
		DefaultTimeout: runbooks.NoLimit,
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
		Description: "Ask the operator for a value mid-run; output `value`. No timeout by default: it waits for a person.",
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
		Outputs:        []runbooks.OutputInfo{{Name: "value"}},
		Targets:        runbooks.TargetsNone,
		DefaultTimeout: runbooks.NoLimit,
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
//
// Every poll's output goes to the step's output (so the live view shows the
// latest poll and the record keeps it), bounded: a poll is written in full
// (its state and up to pollMaxLines lines of output) only when it differs
// from the last poll written, and at most pollMaxShown polls are (the final
// one always is). The others are counted — "polls 2-37 (to 36s): same as
// poll 1" — at the next poll written, at the end, and at least every
// waitHeartbeat so a long wait shows it is alive. A 10-minute wait on an
// unchanging status writes about 60 lines, not 600 polls.
type Wait struct{}

// Wait defaults.
const (
	// WaitDefaultTimeout bounds a wait step that sets no timeout:, so a typo
	// in expect: cannot poll forever.
	WaitDefaultTimeout = 5 * time.Minute
	// ShellDefaultTimeout bounds a shell step that sets no timeout:.
	ShellDefaultTimeout = 10 * time.Minute
	pollMaxLines        = 20
	pollMaxBytes        = 16 << 10
	pollMaxShown        = 100
	waitHeartbeat       = 10 * time.Second
)

// Info implements Kind. The engine asks for it several times per step:
// it is built once (callers must not modify its maps and slices).
func (Wait) Info() runbooks.KindInfo { return waitInfo() }

var waitInfo = sync.OnceValue(func() runbooks.KindInfo {
	return runbooks.KindInfo{
		Name: "wait",
		Description: "Poll a command, or another step kind such as agent.status, until its exit status or outputs meet `expect`. " +
			"Default timeout 5m (timeout: none to wait forever); the timeout error gives the last values of the expected outputs and the last poll's output.",
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
		DefaultTimeout:  runbooks.Duration(WaitDefaultTimeout),
	}
})

// Summary implements Kind.
func (Wait) Summary(x *Exec) string {
	if k, _ := paramString(x.Params, "kind"); k != "" {
		return "poll " + k
	}
	c, _ := paramString(x.Params, "command")
	return "poll: " + c
}

// PollTimeoutError is returned by a polling kind whose expectation did not
// hold before the step's time limit; Detail says what it last saw (the
// engine prefixes "timed out after D: ").
type PollTimeoutError struct {
	Detail string
	// Cause is the context error that ended the wait.
	Cause error
}

func (e *PollTimeoutError) Error() string { return "timed out: " + e.Detail }

// Unwrap makes errors.Is match ErrTimeout and the context's error.
func (e *PollTimeoutError) Unwrap() []error { return []error{ErrTimeout, e.Cause} }

// pollResult is what one poll saw.
type pollResult struct {
	n      int
	at     time.Duration
	out    string // captured output, bounded
	outs   map[string]string
	state  string // "waiting: ..." or the error
	failed bool
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
	showOutput := true
	for _, o := range x.Step.Outputs {
		if o.Secret {
			showOutput = false
		}
	}
	if kindName != "" {
		var ok bool
		if inner, ok = x.Registry.Get(kindName); !ok {
			return Result{ExitCode: -1}, fmt.Errorf("%w: unknown kind %q", ErrBadParams, kindName)
		}
		if w, ok := x.Params["with"].(map[string]any); ok {
			innerParams = w
		}
		info := inner.Info()
		if err := checkExpectKeys(kindName, info, expect); err != nil {
			return Result{ExitCode: -1}, err
		}
		for _, o := range info.Outputs {
			if o.Secret {
				showOutput = false
			}
		}
	}
	log := &pollLog{w: x.Stdout, show: showOutput, lastHeartbeat: time.Now()}
	start := time.Now()
	var last *pollResult
	seen := map[string]bool{}
	for n := 1; ; n++ {
		buf := &capBuffer{max: pollMaxBytes}
		quiet := *x
		quiet.Stdout, quiet.Stderr = buf, buf
		var res Result
		var err error
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
			// A poll cut short by the limit says nothing: report the last
			// complete one.
			log.end()
			return Result{ExitCode: -1}, waitEnded(ctx, last, expect, seen)
		}
		p := &pollResult{n: n, at: time.Since(start), out: string(buf.Bytes()), outs: res.Outputs}
		for k := range res.Outputs {
			seen[k] = true
		}
		if err == nil {
			ok, status := meets(res.Outputs, expect)
			if ok {
				p.state = "ok: " + status
				log.poll(p, true)
				log.end()
				if res.Outputs == nil {
					res.Outputs = map[string]string{}
				}
				res.Outputs["polls"] = strconv.Itoa(n)
				return res, nil
			}
			p.state = "waiting: " + status
		} else {
			p.state, p.failed = "waiting: "+err.Error(), true
		}
		log.poll(p, false)
		last = p
		select {
		case <-ctx.Done():
			log.end()
			return Result{ExitCode: -1}, waitEnded(ctx, last, expect, seen)
		case <-time.After(interval):
		}
	}
}

// checkExpectKeys refuses expect: keys the polled kind never produces (a
// typo would otherwise poll until the timeout).
func checkExpectKeys(kindName string, info runbooks.KindInfo, expect map[string]any) error {
	if info.DeclaredOutputs || len(info.Outputs) == 0 {
		return nil
	}
	have := map[string]bool{}
	var names []string
	for _, o := range info.Outputs {
		have[o.Name] = true
		names = append(names, o.Name)
	}
	for _, k := range sortedKeys(expect) {
		if !have[k] {
			return fmt.Errorf("%w: expect: %s has no output %q (it has %s)", ErrBadParams, kindName, k, strings.Join(names, ", "))
		}
	}
	return nil
}

// waitEnded is the error of a wait whose context ended: a PollTimeoutError
// naming what the last poll saw when the step's limit was reached, else the
// context's error (interrupt).
func waitEnded(ctx context.Context, last *pollResult, expect map[string]any, seen map[string]bool) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err()
	}
	if last == nil {
		return &PollTimeoutError{Detail: "the first poll did not finish", Cause: ctx.Err()}
	}
	var want, got []string
	for _, k := range sortedKeys(expect) {
		w := fmt.Sprint(expect[k])
		if strings.ContainsAny(w[:min(len(w), 1)], "<>!") {
			want = append(want, k+w)
		} else {
			want = append(want, k+"="+w)
		}
		switch v, ok := last.outs[k]; {
		case ok:
			got = append(got, k+"="+v)
		case !seen[k]:
			got = append(got, k+" never appeared in any poll's output")
		default:
			got = append(got, k+" absent")
		}
	}
	var b strings.Builder
	if len(want) > 0 {
		fmt.Fprintf(&b, "expected %s, last %s (poll %d)", strings.Join(want, " "), strings.Join(got, ", "), last.n)
	} else {
		fmt.Fprintf(&b, "the command never exited 0 (poll %d)", last.n)
	}
	if last.failed {
		fmt.Fprintf(&b, ", last poll %s", strings.TrimPrefix(last.state, "waiting: "))
	}
	if tail := tailText(last.out, 3, 300); tail != "" {
		fmt.Fprintf(&b, ": %s", tail)
	}
	return &PollTimeoutError{Detail: b.String(), Cause: ctx.Err()}
}

// tailText is the last n non-empty lines of s joined with " | ", cut to max
// bytes from the end.
func tailText(s string, n, max int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t := strings.Join(lines, " | ")
	if len(t) > max {
		t = "…" + strings.ToValidUTF8(t[len(t)-max:], "")
	}
	return t
}

// pollLog writes polls to the step's output, bounded: see Wait.
type pollLog struct {
	w    io.Writer
	show bool
	prev *pollResult // last poll written in full
	// shown counts polls written in full; past pollMaxShown only the final
	// poll is, the others are counted.
	shown int
	// Polls not written since prev: how many, the last one, and whether
	// any differed from prev.
	pending       int
	lastPending   *pollResult
	pendingDiffer bool
	lastHeartbeat time.Time
}

func samePoll(a, b *pollResult) bool { return a.out == b.out && a.state == b.state }

// poll writes p in full when it differs from the last poll written (or is
// the final one), else counts it.
func (l *pollLog) poll(p *pollResult, final bool) {
	if !final && l.prev != nil && (samePoll(p, l.prev) || l.shown >= pollMaxShown) {
		l.pending++
		l.lastPending = p
		if !samePoll(p, l.prev) {
			l.pendingDiffer = true
		}
		if time.Since(l.lastHeartbeat) >= waitHeartbeat {
			l.flush()
		}
		return
	}
	l.flush()
	fmt.Fprintf(l.w, "poll %d (%s): %s\n", p.n, p.at.Round(time.Millisecond), p.state)
	if l.show {
		lines := strings.Split(strings.TrimRight(p.out, "\n"), "\n")
		for i, line := range lines {
			if i == pollMaxLines {
				fmt.Fprintf(l.w, "  … %d more lines\n", len(lines)-pollMaxLines)
				break
			}
			if line != "" {
				fmt.Fprintf(l.w, "  %s\n", line)
			}
		}
		if len(p.out) >= pollMaxBytes {
			fmt.Fprintf(l.w, "  [poll output cut at %d bytes]\n", pollMaxBytes)
		}
	}
	l.prev = p
	l.shown++
	l.lastHeartbeat = time.Now()
}

// flush writes the count of the polls not written since the last one.
func (l *pollLog) flush() {
	if l.pending == 0 || l.prev == nil {
		return
	}
	p := l.lastPending
	first := p.n - l.pending + 1
	span := fmt.Sprintf("poll %d (%s)", first, p.at.Round(time.Millisecond))
	if l.pending > 1 {
		span = fmt.Sprintf("polls %d-%d (to %s)", first, p.n, p.at.Round(time.Millisecond))
	}
	if l.pendingDiffer {
		fmt.Fprintf(l.w, "%s: %d polls not shown (only the first %d that differ are); last: %s\n", span, l.pending, pollMaxShown, p.state)
	} else {
		fmt.Fprintf(l.w, "%s: same as poll %d\n", span, l.prev.n)
	}
	l.pending, l.pendingDiffer = 0, false
	l.lastHeartbeat = time.Now()
}

// end writes what is pending.
func (l *pollLog) end() { l.flush() }

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
			rest = strings.TrimSpace(rest)
			// Exact: integers of any size, never through float64.
			c, numeric := runbooks.CompareNumbers(got, rest)
			if op == "!=" && !numeric {
				return got != rest
			}
			if !numeric {
				return false
			}
			switch op {
			case ">=":
				return c >= 0
			case "<=":
				return c <= 0
			case "!=":
				return c != 0
			case ">":
				return c > 0
			case "<":
				return c < 0
			}
		}
	}
	return got == want
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}
