package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/rehearsal"
	"github.com/drbook/drbook/steps/transport"
)

// Errors of drill commands.
var (
	// errDrillCommand reports a drill command that exited non-zero.
	errDrillCommand = errors.New("drill command failed")
	// errDrillCount reports a count command whose output has no
	// count=N digest=X line.
	errDrillCount = errors.New("count command printed no `count=N digest=X` line")
	// errNoFreePorts reports a port range without enough free ports.
	errNoFreePorts = errors.New("not enough free ports in the range")
	// errLeftRunning reports processes of the drill still running after
	// its cleanup.
	errLeftRunning = errors.New("drill processes left running after the cleanup")
	// errDrillInterrupted reports a drill stopped by a signal (exit 130);
	// its cleanup ran.
	errDrillInterrupted = errors.New("drill interrupted (its cleanup ran)")
)

// defaultDrillTimeout is a drill command's time limit when it sets none.
const defaultDrillTimeout = 2 * time.Minute

// cleanupTimeout bounds the whole cleanup of a drill.
const cleanupTimeout = 5 * time.Minute

// drillCount is what a count command printed.
type drillCount struct {
	N      int
	Digest string
}

var countLine = regexp.MustCompile(`(?m)^\s*count=([0-9]{1,18})\s+digest=(\S+)\s*$`)

// parseCount reads the count=N digest=X line of a count command's output.
func parseCount(out string) (drillCount, error) {
	m := countLine.FindStringSubmatch(out)
	if m == nil {
		return drillCount{}, errDrillCount
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return drillCount{}, fmt.Errorf("%w: %w", errDrillCount, err)
	}
	return drillCount{N: n, Digest: m[2]}, nil
}

// allocPorts picks n free loopback ports from lo..hi: each is checked by
// binding it on 127.0.0.1, and all are released before returning, for the
// drill's system to take. The scan starts at a random place so concurrent
// drills rarely collide.
func allocPorts(lo, hi, n int) ([]int, error) {
	size := hi - lo + 1
	start := int(time.Now().UnixNano() % int64(size))
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for i := 0; i < size && len(ports) < n; i++ {
		p := lo + (start+i)%size
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("%w: %d wanted, %d free in %d-%d", errNoFreePorts, n, len(ports), lo, hi)
	}
	return ports, nil
}

// drillEnv is the scope drill commands see: DRILL_DIR, the ports, DRBOOK and,
// once measured, the counts.
type drillEnv map[string]string

func (r *rehearser) newEnv(ports []int) drillEnv {
	env := drillEnv{"DRILL_NAME": r.dr.Name, "DRILL_DIR": r.dir}
	var all []string
	for i, p := range ports {
		env["DRILL_PORT_"+strconv.Itoa(i)] = strconv.Itoa(p)
		all = append(all, strconv.Itoa(p))
	}
	env["DRILL_PORTS"] = strings.Join(all, " ")
	if exe, err := os.Executable(); err == nil {
		env["DRBOOK"] = exe
	}
	return env
}

// cmdRunner runs a drill's commands on inventory nodes (one connection per
// node, reused) or locally.
type cmdRunner struct {
	r     *rehearser
	inv   *runbooks.Inventory
	env   drillEnv
	conns map[string]transport.Transport
}

func (c *cmdRunner) close() {
	for _, t := range c.conns {
		_ = t.Close()
	}
}

// targets expands a command's on: (nodes and groups) to node names; none
// means local.
func (c *cmdRunner) targets(cmd *runbooks.DrillCommand) ([]string, error) {
	if len(cmd.On) == 0 {
		return []string{""}, nil
	}
	if c.inv == nil {
		return nil, fmt.Errorf("%s:%d:%d: on: %s needs an inventory (-i or inventory:)", c.r.dr.File, cmd.At("on").Line, cmd.At("on").Col, strings.Join(cmd.On, ", "))
	}
	var out []string
	for _, name := range cmd.On {
		switch {
		case c.inv.Node(name) != nil:
			out = append(out, name)
		case c.inv.Group(name) != nil:
			out = append(out, c.inv.Group(name).Nodes...)
		default:
			return nil, fmt.Errorf("%s:%d:%d: on: no node or group %q in the inventory %s", c.r.dr.File, cmd.At("on").Line, cmd.At("on").Col, name, c.inv.File)
		}
	}
	return out, nil
}

func (c *cmdRunner) transport(ctx context.Context, node string) (transport.Transport, map[string]string, error) {
	env := map[string]string{}
	if node == "" {
		return &transport.Local{BaseEnv: os.Environ()}, env, nil
	}
	n := c.inv.Node(node)
	for k, v := range n.Env {
		env[k] = v
	}
	if t, ok := c.conns[node]; ok {
		return t, env, nil
	}
	t, err := dialer(c.inv)(ctx, n)
	if err != nil {
		return nil, nil, fmt.Errorf("node %s: %w", node, err)
	}
	c.conns[node] = t
	return t, env, nil
}

// run runs one drill command on each of its targets in turn and returns the
// output of the last one. Each execution is timed into the report when
// timeline is set (its Start holds the wall clock in Unix nanoseconds; the
// timeline makes it relative to the disaster).
func (c *cmdRunner) run(ctx context.Context, phase string, cmd *runbooks.DrillCommand, timeline func(rehearsal.StepTiming)) (string, error) {
	targets, err := c.targets(cmd)
	if err != nil {
		return "", err
	}
	label := cmd.Name
	if label == "" {
		label = strings.Join(strings.Fields(firstLine(cmd.Run)), " ")
		if len(label) > 40 {
			label = label[:40] + "…"
		}
	}
	timeout := cmd.Timeout.D()
	if timeout <= 0 {
		timeout = defaultDrillTimeout
	}
	var out string
	for _, node := range targets {
		where := node
		if where == "" {
			where = "local"
		}
		c.r.say("%s: %s (%s)", phase, label, where)
		t, env, err := c.transport(ctx, node)
		if err != nil {
			return "", err
		}
		for k, v := range c.env {
			env[k] = v
		}
		env["DRILL_NODE"] = node
		var stdout, stderr bytes.Buffer
		cctx, cancel := context.WithTimeout(ctx, timeout)
		t0 := time.Now()
		code, err := t.Run(cctx, transport.Command{Line: cmd.Run, Env: env, Stdout: &stdout, Stderr: &stderr})
		cancel()
		if timeline != nil {
			status := "succeeded"
			if err != nil || code != 0 {
				status = "failed"
			}
			timeline(rehearsal.StepTiming{Step: phase + ": " + label, Target: node, Attempt: 1, Status: status,
				Start: rehearsal.Duration(t0.UnixNano()), Length: rehearsal.Duration(time.Since(t0))})
		}
		if err != nil {
			return "", fmt.Errorf("%s: %s on %s: %w", phase, label, where, err)
		}
		if code != 0 && !cmd.MayFail {
			return "", fmt.Errorf("%w: %s: %s on %s exited %d%s", errDrillCommand, phase, label, where, code, tail(stderr.String(), stdout.String()))
		}
		if code != 0 {
			c.r.say("%s: %s on %s exited %d (may_fail)", phase, label, where, code)
		}
		out = stdout.String()
	}
	return out, nil
}

// runAll runs a list of commands in order, stopping at the first failure.
func (c *cmdRunner) runAll(ctx context.Context, phase string, cmds []runbooks.DrillCommand, timeline func(rehearsal.StepTiming)) error {
	for i := range cmds {
		if _, err := c.run(ctx, phase, &cmds[i], timeline); err != nil {
			return err
		}
	}
	return nil
}

// count runs the count command and sets DRILL_COUNT_<as> and
// DRILL_DIGEST_<as> for the commands after it.
func (c *cmdRunner) count(ctx context.Context, as string, timeline func(rehearsal.StepTiming)) (drillCount, error) {
	cmd := *c.r.dr.Count
	if cmd.Name == "" {
		cmd.Name = "data"
	}
	out, err := c.run(ctx, "count", &cmd, timeline)
	if err != nil {
		return drillCount{}, err
	}
	n, err := parseCount(out)
	if err != nil {
		return n, fmt.Errorf("%s:%d:%d: %w; it printed:%s", c.r.dr.File, c.r.dr.Count.Pos.Line, c.r.dr.Count.Pos.Col, err, tail(out))
	}
	if as != "" {
		c.env["DRILL_COUNT_"+as] = strconv.Itoa(n.N)
		c.env["DRILL_DIGEST_"+as] = n.Digest
	}
	c.r.say("count: %d, digest %s", n.N, n.Digest)
	return n, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// tail returns the last lines of the first non-empty output, for an error.
func tail(outs ...string) string {
	for _, o := range outs {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		lines := strings.Split(o, "\n")
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		return "\n  " + strings.Join(lines, "\n  ")
	}
	return ""
}

// loadDrillInventory reads the inventory (-i, else the drill's), with
// ${DRILL_...} expanded in its text.
func (r *rehearser) loadDrillInventory(ctx context.Context, env drillEnv) (*runbooks.Inventory, error) {
	path := r.opts.inventory
	if path == "" && r.dr.Inventory != "" {
		path = drillPath(r.dr, runbooks.ExpandDrillVars(r.dr.Inventory, env))
	}
	if path == "" {
		return nil, nil
	}
	src, err := runbooks.ReadFileContext(ctx, path)
	if err != nil {
		return nil, err
	}
	return runbooks.ParseInventory(path, []byte(runbooks.ExpandDrillVars(string(src), env)))
}

// answers reads the runbook's answers: --answers, else the drill's file or
// inline values, with ${DRILL_...} expanded.
func (r *rehearser) answers(env drillEnv) (*runbooks.Answers, error) {
	a := r.dr.Answers
	path := r.opts.answers
	if path == "" && a != nil && a.File != "" {
		path = drillPath(r.dr, a.File)
	}
	if path != "" {
		src, err := runbooks.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return runbooks.ParseAnswers(path, []byte(runbooks.ExpandDrillVars(string(src), env)))
	}
	out := &runbooks.Answers{File: r.dr.File, Inputs: map[string]runbooks.Answer{}, Steps: map[string]runbooks.Answer{}}
	if a == nil {
		return out, nil
	}
	for k, v := range a.Inputs.Values {
		out.Inputs[k] = runbooks.Answer{Value: expandAny(v, env), Pos: a.Inputs.At(k)}
	}
	for k, v := range a.Steps.Values {
		out.Steps[k] = runbooks.Answer{Value: expandAny(v, env), Pos: a.Steps.At(k)}
	}
	return out, nil
}

// expandAny expands ${DRILL_...} in the strings of an answer value.
func expandAny(v any, env drillEnv) any {
	switch x := v.(type) {
	case string:
		return runbooks.ExpandDrillVars(x, env)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = expandAny(e, env)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = expandAny(e, env)
		}
		return out
	}
	return v
}

// runCommands runs a drill whose system is stood up by its own commands.
func (r *rehearser) runCommands(ctx context.Context) (rep *rehearsal.Report, err error) {
	dr := r.dr
	// The work directory: removed at the end unless it held something
	// before the drill or --keep is given.
	r.dir = r.opts.dir
	removeDir := true
	if r.dir == "" {
		d, err := os.MkdirTemp("", "drbook-drill-")
		if err != nil {
			return nil, err
		}
		r.dir = d
	} else {
		if abs, err := filepath.Abs(r.dir); err == nil {
			r.dir = abs
		}
		if entries, err := os.ReadDir(r.dir); err == nil && len(entries) > 0 {
			removeDir = false
		}
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			return nil, err
		}
	}
	lo, hi := r.portRange()
	var ports []int
	if dr.Ports != nil {
		if ports, err = allocPorts(lo, hi, dr.Ports.Count); err != nil {
			return nil, err
		}
	}
	env := r.newEnv(ports)
	r.say("drill %s in %s, ports %s", dr.Name, r.dir, orNone(env["DRILL_PORTS"]))
	inv, err := r.loadDrillInventory(ctx, env)
	if err != nil {
		return nil, err
	}
	c := &cmdRunner{r: r, inv: inv, env: env, conns: map[string]transport.Transport{}}
	defer func() {
		cerr := r.cleanup(ctx, c, removeDir)
		if cerr != nil {
			if rep != nil && rep.Verdict == "" {
				rep.Verdict = cerr.Error()
			}
			err = errors.Join(err, cerr)
		}
	}()

	// The recovery runbook, checked before anything runs.
	reg := newRegistry()
	rb, err := r.a.loadRunbook(drillPath(dr, dr.Runbook), reg, inv)
	if err != nil {
		return nil, err
	}
	if err := runbooks.CheckDrillNodes(dr, inv); err != nil {
		return nil, err
	}
	if r.opts.answers == "" {
		if err := runbooks.CheckDrillAnswers(dr, rb); err != nil {
			return nil, err
		}
	}
	nodes := 0
	if inv != nil {
		nodes = len(inv.Nodes)
	}
	rep = r.newReport(nodes)
	rep.Runbook = rb.Name
	if rep.Unit == "" {
		rep.Unit = "items"
	}
	if err := c.runAll(ctx, "setup", dr.Setup, nil); err != nil {
		return nil, err
	}
	if err := c.runAll(ctx, "load", dr.Load, nil); err != nil {
		return nil, err
	}
	if err := c.runAll(ctx, "restore point", dr.RestorePoint, nil); err != nil {
		return nil, err
	}
	rep.BackupAt = time.Now().UTC()
	atRP, err := c.count(ctx, "RESTORE_POINT", nil)
	if err != nil {
		return nil, err
	}
	if err := c.runAll(ctx, "after restore point", dr.AfterRestore, nil); err != nil {
		return nil, err
	}
	rep.LastWriteAt = time.Now().UTC()
	before, err := c.count(ctx, "BEFORE", nil)
	if err != nil {
		return nil, err
	}
	rep.KeysAtBackup, rep.KeysBefore, rep.KeysAfterBackup = atRP.N, before.N, before.N-atRP.N
	rep.DigestAtBackup, rep.DigestBefore = atRP.Digest, before.Digest

	// The answers, resolved before anything is destroyed.
	given, err := r.answers(env)
	if err != nil {
		return nil, err
	}
	inputs, missing, err := runbooks.ResolveInputs(rb, inv, given, false)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		var names []string
		for _, in := range missing {
			names = append(names, in.Name)
		}
		return nil, fmt.Errorf("the drill gives no answer to the runbook's input(s) %s (answers: in the drill, or --answers)", strings.Join(names, ", "))
	}

	// The disaster: the RTO clock starts.
	rep.DisasterAt = time.Now().UTC()
	timeline := func(st rehearsal.StepTiming) {
		st.Start = rehearsal.Duration(time.Unix(0, int64(st.Start)).Sub(rep.DisasterAt))
		rep.Steps = append(rep.Steps, st)
		if st.Target != "" && !containsStr(rep.DisasterNodes, st.Target) && strings.HasPrefix(st.Step, "disaster") {
			rep.DisasterNodes = append(rep.DisasterNodes, st.Target)
		}
	}
	if err := c.runAll(ctx, "disaster", dr.Disaster, timeline); err != nil {
		return nil, err
	}

	// The recovery.
	db, err := r.a.openDB(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	defer r.a.flushNotify() // before the database closes
	if runErr := r.recover(ctx, db, rb, inv, reg, inputs, rep); runErr != nil {
		return rep, runErr
	}

	// Verification: the data, then health; the RTO ends when both hold.
	after, cerr := c.count(ctx, "AFTER", timeline)
	if cerr == nil {
		cerr = r.health(ctx, c, timeline)
	}
	rep.RecoveredAt = time.Now().UTC()
	rep.RTO = rehearsal.Duration(rep.RecoveredAt.Sub(rep.DisasterAt))
	rep.Machine = rep.RTO - rep.Human
	rep.SettleRTO()
	rep.SortSteps()
	rep.KeysAfter, rep.DigestAfter = after.N, after.Digest
	if after.N < before.N {
		rep.KeysLost = before.N - after.N
	} else {
		rep.KeysUnexpected = after.N - before.N
	}
	rep.RPOKeys = rep.KeysLost
	if rep.KeysLost > 0 {
		rep.RPOWindow = rehearsal.Duration(rep.LastWriteAt.Sub(rep.BackupAt))
	}
	want := before
	if rep.Expect == runbooks.ExpectRestorePoint {
		want = atRP
	}
	switch {
	case cerr != nil:
		rep.Verdict = "verification: " + cerr.Error()
	case after != want:
		rep.Verdict = fmt.Sprintf("after the recovery: count=%d digest=%s, expected the %s: count=%d digest=%s",
			after.N, after.Digest, strings.ReplaceAll(rep.Expect, "_", " "), want.N, want.Digest)
	default:
		rep.Verdict = overBudget(rep)
	}
	r.record(ctx, db, rep)
	return rep, nil
}

// health runs the verify.health commands until all pass or health_timeout
// runs out.
func (r *rehearser) health(ctx context.Context, c *cmdRunner, timeline func(rehearsal.StepTiming)) error {
	v := r.dr.Verify
	if v == nil || len(v.Health) == 0 {
		return nil
	}
	limit := v.HealthTimeout.D()
	if limit <= 0 {
		limit = 30 * time.Second
	}
	t0 := time.Now()
	deadline := t0.Add(limit)
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.runAll(ctx, "health", v.Health, nil)
		if err == nil {
			timeline(rehearsal.StepTiming{Step: "verify: health", Attempt: attempt, Status: "succeeded",
				Start: rehearsal.Duration(t0.UnixNano()), Length: rehearsal.Duration(time.Since(t0))})
			return nil
		}
		if time.Now().Add(delay).After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not healthy after %s: %w", limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// cleanup runs every cleanup command (each even if the one before failed),
// closes the connections, checks that no local process of the drill is
// left, and removes the work directory. It runs whatever happened before,
// on a context that outlives an interrupt.
func (r *rehearser) cleanup(ctx context.Context, c *cmdRunner, removeDir bool) error {
	if r.opts.keep {
		r.say("--keep: no cleanup; the drill's system and %s are left as they are", r.dir)
		c.close()
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var errs []error
	for i := range r.dr.Cleanup {
		cmd := r.dr.Cleanup[i]
		cmd.MayFail = false
		if _, err := c.run(cctx, "cleanup", &cmd, nil); err != nil {
			r.say("%v", err)
			errs = append(errs, err)
		}
	}
	c.close()
	if pids := lingering(r.dir, leftRunningGrace); len(pids) > 0 {
		errs = append(errs, fmt.Errorf("%w: pids %v mention %s", errLeftRunning, pids, r.dir))
	}
	if removeDir {
		if err := os.RemoveAll(r.dir); err != nil {
			errs = append(errs, err)
		}
	}
	r.say("cleanup done")
	// A failing cleanup command is reported, not fatal: the drill's result
	// stands. Processes left running are fatal.
	for _, e := range errs {
		if errors.Is(e, errLeftRunning) {
			return e
		}
	}
	return nil
}

// leftRunningGrace is how long processes stopped by the cleanup get to
// exit before they count as left running (a signal is delivered, and acted
// on, after kill returns).
const leftRunningGrace = 5 * time.Second

// lingering returns the processes mentioning dir that are still alive after
// waiting up to grace for them to exit.
func lingering(dir string, grace time.Duration) []int {
	deadline := time.Now().Add(grace)
	for {
		pids := processesMentioning(dir)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processesMentioning lists live (not zombie) processes whose command line
// mentions dir, other than this one.
func processesMentioning(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")) // #nosec G304 -- /proc/PID/cmdline
		if err != nil || !bytes.Contains(cmd, []byte(dir)) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")) // #nosec G304 -- /proc/PID/stat
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		out = append(out, pid)
	}
	return out
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
