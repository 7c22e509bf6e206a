package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/drbook/drbook/steps/transport/sshtest"
)

// hostileCommand prints what an attacker on a node would: window title (OSC
// 0 and 2), a clipboard write (OSC 52), clear screen, cursor up with a
// carriage return over a faked success line, an 8-bit CSI (as UTF-8 and as
// a lone byte), a bidi override, NUL, BEL and backspace, on stdout and
// stderr, and in an output value.
const hostileCommand = `printf '\033]0;owned-title\007\033]2;owned2\033\\\n'; ` +
	`printf '\033]52;c;cm0gLXJmIC8K\007clipboard\n'; ` +
	`printf '\033[2J\033[Hcleared\n'; ` +
	`printf 'real\n\033[1A\r  \342\234\223 hostile succeeded (0s)\n'; ` +
	`printf 'c1 \302\2332J lone \233 bidi \342\200\256evil nul \000 bel \007 bs \010 tab\there\n'; ` +
	`printf '\033]0;stderr-title\007err\n' >&2; ` +
	`printf 'val=\033]0;v\007x\n'`

// termControls returns the control characters in b a terminal could obey:
// every C0 control but newline and tab, DEL, C1 controls (UTF-8 or lone
// bytes), and reports invalid UTF-8.
func termControls(b []byte) []string {
	var bad []string
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			bad = append(bad, fmt.Sprintf("invalid byte %#x at %d", b[i], i))
		case r == '\n' || r == '\t':
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
			bad = append(bad, fmt.Sprintf("%U at %d", r, i))
		}
		i += n
	}
	return bad
}

func assertTerminalSafe(t *testing.T, where string, out string) {
	t.Helper()
	if strings.ContainsRune(out, 0x1b) {
		t.Errorf("%s holds an ESC byte", where)
	}
	if bad := termControls([]byte(out)); len(bad) > 0 {
		t.Errorf("%s holds %d terminal controls, first %v", where, len(bad), bad[:min(5, len(bad))])
	}
}

// TestHostileOutputShownHarmless runs a node over real OpenSSH that prints
// terminal attacks, binary output and a 5 MiB line: headless output and
// every replay format hold no control a terminal could obey, while the
// record keeps the raw bytes (its log matches its SHA-256, binary included)
// and the long line keeps its first bytes and says how many were cut.
func TestHostileOutputShownHarmless(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 1)
	rnd := rand.New(rand.NewPCG(7, 11))
	bin := make([]byte, 128<<10)
	for i := range bin {
		bin[i] = byte(rnd.Uint32())
	}
	bin = append(bin, "\x00\r\x1b[2J\xff\n"...)
	binFile := filepath.Join(l.srv.Dir, "node1", "bin.dat")
	if err := os.WriteFile(binFile, bin, 0o644); err != nil { // #nosec G306 -- read by the sshd test user
		t.Fatal(err)
	}
	const bigLine = 5 << 20
	rb := l.write(t, "hostile.yaml", fmt.Sprintf(`apiVersion: drbook/v1
kind: Runbook
name: hostile
title: A node that attacks the operator's terminal
steps:
  - id: hostile
    run: shell
    on: node1
    with: {command: %q}
    outputs: [val]
  - id: binary
    run: shell
    on: node1
    with: {command: 'cat "$NODE_DIR/bin.dat"'}
  - id: big
    run: shell
    on: node1
    with: {command: 'head -c %d /dev/zero | tr "\0" x; echo; echo after'}
`, hostileCommand, bigLine))

	r := drbook(t, nil, "run", rb, "-i", l.inv, "--headless", "--yes", "--db", l.db)
	if r.code != 0 {
		t.Fatalf("run exit %d\nstdout:\n%.3000s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	id := runID(t, r.stdout)
	assertTerminalSafe(t, "headless output", r.stdout+r.stderr)
	for _, want := range []string{"␛]0;owned-title␇", "␛]52;c;cm0gLXJmIC8K␇clipboard", "␛[2J␛[Hcleared", "␛[1A␍  ✓ hostile succeeded", `c1 \u009B2J lone \x9B bidi \u202Eevil nul ␀ bel ␇ bs ␈`, "val=␛]0;v␇x"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("headless output does not show %q visibly:\n%.2000s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("[line cut: %d bytes not shown]", bigLine-(4<<20))) {
		t.Error("headless output does not say the long line was cut")
	}
	jr := drbook(t, nil, "run", rb, "-i", l.inv, "--headless", "--yes", "--db", l.db, "--output", "json")
	if jr.code != 0 {
		t.Fatalf("run --output json exit %d\n%s", jr.code, jr.stderr)
	}
	assertTerminalSafe(t, "headless JSON", jr.stdout)
	if !strings.Contains(jr.stdout, `\u001b]52;c;cm0gLXJmIC8K\u0007clipboard`) {
		t.Error("headless JSON lost the escaped data")
	}

	for _, format := range []string{"text", "markdown"} {
		rep := drbook(t, nil, "replay", id, "--verify", "--format", format, "--db", l.db)
		if rep.code != 0 {
			t.Fatalf("replay %s exit %d\n%s", format, rep.code, rep.stderr)
		}
		assertTerminalSafe(t, "replay "+format, rep.stdout+rep.stderr)
		if format == "text" && !strings.Contains(rep.stdout, "val = ␛]0;v␇x") {
			t.Errorf("replay %s does not show the hostile output value visibly:\n%s", format, rep.stdout)
		}
	}

	// The JSON export: safe to print, and its logs are the raw bytes that
	// were hashed.
	rep := drbook(t, nil, "replay", id, "--format", "json", "--db", l.db)
	if rep.code != 0 {
		t.Fatalf("replay json exit %d\n%s", rep.code, rep.stderr)
	}
	assertTerminalSafe(t, "replay json", rep.stdout)
	var doc struct {
		Events []struct {
			Type   string `json:"type"`
			StepID string `json:"step_id"`
			Data   struct {
				Log         string `json:"log"`
				LogRaw      string `json:"log_raw"`
				LogSHA256   string `json:"log_sha256"`
				LogCutBytes int64  `json:"log_cut_bytes"`
			} `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(rep.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	logs := map[string][]byte{}
	for _, ev := range doc.Events {
		if ev.Type != "step.finished" {
			continue
		}
		log := []byte(ev.Data.Log)
		if ev.Data.LogRaw != "" {
			var err error
			if log, err = base64.StdEncoding.DecodeString(ev.Data.LogRaw); err != nil {
				t.Fatal(err)
			}
		}
		sum := sha256.Sum256(log)
		if hex.EncodeToString(sum[:]) != ev.Data.LogSHA256 {
			t.Errorf("exported log of %s does not match its log_sha256", ev.StepID)
		}
		logs[ev.StepID] = log
		if ev.StepID == "big" {
			if want := int64(bigLine + len("\nafter\n") - 4<<20); ev.Data.LogCutBytes != want {
				t.Errorf("big: %d bytes cut, want %d", ev.Data.LogCutBytes, want)
			}
		}
	}
	if string(logs["binary"]) != string(bin) {
		t.Errorf("the exported log of binary output is not the node's bytes (%d bytes, want %d)", len(logs["binary"]), len(bin))
	}
	if !strings.Contains(string(logs["hostile"]), "\x1b]52;c;cm0gLXJmIC8K\x07clipboard\n") || !strings.Contains(string(logs["hostile"]), "! \x1b]0;stderr-title\x07err\n") {
		t.Errorf("the record does not keep the raw escape sequences:\n%q", logs["hostile"])
	}
	big := string(logs["big"])
	if !strings.HasPrefix(big, strings.Repeat("x", 4<<20)) || !strings.HasSuffix(big, fmt.Sprintf("\n[output truncated: %d bytes not recorded]\n", bigLine+len("\nafter\n")-4<<20)) {
		t.Errorf("big: the log does not keep the line's first 4 MiB and say what was cut (%d bytes, ends %q)", len(big), big[max(0, len(big)-80):])
	}

	// runs and plan print what runbooks and the record hold, harmless too.
	for _, args := range [][]string{{"runs", "--db", l.db}, {"plan", rb, "-i", l.inv}} {
		out := drbook(t, nil, args...)
		assertTerminalSafe(t, args[0], out.stdout+out.stderr)
	}
}

// TestLintAndPlanShowHarmless: a runbook's own text (a file name, a title)
// reaches lint and plan output with its controls shown visibly.
func TestLintAndPlanShowHarmless(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.yaml")
	if err := os.WriteFile(inv, []byte("apiVersion: drbook/v1\nkind: Inventory\nnodes:\n  - name: node1\n    transport: local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := "apiVersion: drbook/v1\nkind: Runbook\nname: t\ntitle: \"evil \\e]0;pwned\\a \\e[2J\"\nsteps:\n  - id: a\n    title: \"step \\e[1A\\r fake\"\n    run: shell\n    on: node1\n    with: {command: \"echo {{ nope }}\"}\n"
	bad := filepath.Join(dir, "ev\x1b]0;x\x07il.yaml")
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	lint := drbook(t, nil, "lint", bad, "-i", inv)
	if lint.code == 0 {
		t.Fatalf("lint accepted an unknown reference:\n%s", lint.stdout)
	}
	assertTerminalSafe(t, "lint", lint.stdout+lint.stderr)
	if !strings.Contains(lint.stdout, "ev␛]0;x␇il.yaml:") {
		t.Errorf("lint does not show the file name visibly:\n%s", lint.stdout)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(strings.Replace(body, "{{ nope }}", "hi", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"plan", good, "-i", inv}, {"plan", good, "-i", inv, "--output", "json"}} {
		out := drbook(t, nil, args...)
		if out.code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, out.code, out.stderr)
		}
		assertTerminalSafe(t, strings.Join(args[2:], " "), out.stdout+out.stderr)
	}
	if out := drbook(t, nil, "plan", good, "-i", inv); !strings.Contains(out.stdout, "evil ␛]0;pwned␇ ␛[2J") || !strings.Contains(out.stdout, "step ␛[1A␍ fake") {
		t.Errorf("plan does not show the title visibly:\n%s", out.stdout)
	}
}
