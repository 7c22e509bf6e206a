package runbooks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/hostile"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
)

// aliasBomb returns YAML lines nesting aliases depth deep, each list
// holding fan aliases of the one before ("billion laughs"), indented by
// indent spaces, under keys a0..aN.
func aliasBomb(indent string, depth, fan int) string {
	var b strings.Builder
	lols := strings.TrimSuffix(strings.Repeat("lol, ", fan), ", ")
	fmt.Fprintf(&b, "%sa0: &a0 [%s]\n", indent, lols)
	for i := 1; i <= depth; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), fan), ", ")
		fmt.Fprintf(&b, "%sa%d: &a%d [%s]\n", indent, i, i, refs)
	}
	return b.String()
}

const bombHead = "apiVersion: drbook/v1\nkind: Runbook\nname: bomb\nsteps:\n  - id: a\n    run: shell\n    on: node1\n    with:\n      command: \"true\"\n      env:\n"

// resolveRunbook has the secret input the "resolve" cases answer.
const resolveRunbook = "apiVersion: drbook/v1\nkind: Runbook\nname: r\ninputs:\n  key: {type: secret, prompt: Key}\nsteps:\n  - id: a\n    run: shell\n    on: node1\n    with: {command: \"true\"}\n"

// hostileCase is one hostile document and the refusal it must get.
type hostileCase struct {
	name string
	kind string // runbook, answers, inventory, or resolve (answers resolved against a runbook)
	// file returns the path to read (written into dir, or a device).
	file func(t *testing.T, dir string) string
	// want matches the whole error, file:line:col included.
	want string
}

func writeFile(name, content string) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func hostileCases() []hostileCase {
	var manyKeys, manyDocs strings.Builder
	for i := 0; i < 16000; i++ {
		fmt.Fprintf(&manyKeys, "k%d: 1\n", i)
	}
	for i := 0; i < 8000; i++ {
		manyDocs.WriteString("--- a\n")
	}
	deepAnchor := "x: &deep " + strings.Repeat("[", 60) + strings.Repeat("]", 60) + "\ny: " + strings.Repeat("[", 10) + "*deep" + strings.Repeat("]", 10) + "\n"
	return []hostileCase{
		{"alias bomb in a runbook", "runbook", writeFile("bomb.yaml", bombHead+aliasBomb("        ", 8, 9)),
			`^bomb\.yaml:16:\d+: alias \*a4 expands to \d+ nodes, taking the document past 100000 nodes`},
		{"alias bomb in an answers file", "answers", writeFile("answers.yaml", "inputs:\n"+aliasBomb("  ", 8, 9)),
			`^answers\.yaml:7:\d+: alias \*a4 expands to \d+ nodes`},
		{"alias bomb in an inventory", "inventory", writeFile("inv.yaml", "apiVersion: drbook/v1\nkind: Inventory\nname: x\nnodes:\n  - name: a\n    host: 127.0.0.1\n    vars:\n"+aliasBomb("      ", 8, 9)),
			`^inv\.yaml:13:\d+: alias \*a4 expands`},
		{"alias nesting too deep", "runbook", writeFile("deepalias.yaml", deepAnchor),
			`^deepalias\.yaml:2:\d+: alias \*deep nests deeper than 64 levels`},
		{"100 KB of [", "runbook", writeFile("brackets.yaml", strings.Repeat("[", 100_000)),
			`^brackets\.yaml:1:32769: more than 32768 lines and YAML indicators`},
		{"30 KB of [", "runbook", writeFile("brackets30.yaml", strings.Repeat("[", 30_000)),
			`^brackets30\.yaml:1:65: nesting deeper than 64 levels$`},
		{"nested flow mappings", "runbook", writeFile("braces.yaml", strings.Repeat("{a: ", 8000)+"x\n"),
			`^braces\.yaml:1:\d+: nesting deeper than 64 levels$`},
		{"block sequences on one line", "answers", writeFile("dashes.yaml", strings.Repeat("- ", 15000)+"x\n"),
			`^dashes\.yaml:1:129: nesting deeper than 64 levels$`},
		{"chained tags", "runbook", writeFile("tags.yaml", "a: "+strings.Repeat("!t ", 10000)+"x\n"),
			`^tags\.yaml:1:\d+: nesting deeper than 64 levels$`},
		{"16000 keys in one mapping", "inventory", writeFile("keys.yaml", manyKeys.String()),
			`^keys\.yaml:2001:1: more than 2000 keys in one mapping$`},
		{"8000 documents", "runbook", writeFile("docs.yaml", manyDocs.String()),
			`^docs\.yaml:2:1: only one YAML document per file is allowed$`},
		{"unmatched closers", "runbook", writeFile("closers.yaml", strings.Repeat("]", 32000)),
			`^closers\.yaml:1:1: YAML syntax: `},
		{"4 MiB + 1 byte", "runbook", writeFile("big.yaml", "a: "+strings.Repeat("x", 4<<20-3)+"\n"),
			`^[^:]*big\.yaml: larger than 4 MiB, the limit for a runbook, inventory or answers file`},
		{"4 MiB block scalar (accepted)", "answers", writeFile("block.yaml", "inputs:\n  a: |\n"+strings.Repeat("    "+strings.Repeat("x", 195)+"\n", (4<<20-100)/200)),
			`^<nil>$`},
		{"answer {file: /dev/zero}", "resolve", writeFile("secret.yaml", "inputs:\n  key: {file: /dev/zero}\n"),
			`^secret\.yaml:2:9: input "key": read answer file: /dev/zero: larger than 1 MiB`},
		{"/dev/zero", "runbook", func(*testing.T, string) string { return "/dev/zero" },
			`^/dev/zero: larger than 4 MiB`},
		{"a FIFO written forever", "runbook", fifoForever,
			`^[^:]*fifo\.yaml: larger than 4 MiB`},
	}
}

// fifoForever makes a FIFO and a writer that fills it until the reader
// closes it (or the test ends).
func fifoForever(t *testing.T, dir string) string {
	p := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		// Unblock an open that is still waiting for a reader.
		if f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-done
	})
	go func() {
		defer close(done)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		chunk := []byte(strings.Repeat("key: value\n", 1000))
		for ctx.Err() == nil {
			if _, err := f.Write(chunk); err != nil {
				return // the reader closed: EPIPE
			}
		}
	}()
	return p
}

// TestHostileInput parses each hostile document in a child process under a
// 2 GiB address-space limit and requires a clear refusal at the right place
// within 1 s of CPU time and 200 MB of peak RSS.
func TestHostileInput(t *testing.T) {
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := c.file(t, dir)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r, err := hostile.Test(ctx, hostile.DefaultLimit, "TestHostileChild", "HOSTILE_KIND="+c.kind, "HOSTILE_FILE="+path, "HOSTILE_DIR="+dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s", c.name, r)
			if r.ExitCode != 0 {
				t.Fatalf("child failed (a bound gave way?): %s\n%s%s", r, tail(r.Stdout), tail(r.Stderr))
			}
			got := between(r.Stdout, "HOSTILE-RESULT<", ">HOSTILE-RESULT")
			if !regexp.MustCompile(c.want).MatchString(got) {
				t.Errorf("error:\n%s\nwant match for %s", got, c.want)
			}
			budget := time.Second
			if strings.HasSuffix(c.name, "(accepted)") {
				budget = 3 * time.Second // the largest legal file: a bound, not an attack
			}
			if r.CPU > budget {
				t.Errorf("took %v of CPU, want under %v", r.CPU, budget)
			}
			// The child's own VmHWM; ru_maxrss (r.PeakRSS) also counts the
			// test process that forked it, so it is only an upper bound.
			var hwm int64
			if _, err := fmt.Sscan(between(r.Stdout, "HOSTILE-HWM<", ">"), &hwm); err != nil {
				t.Fatalf("child reported no VmHWM: %v\n%s", err, tail(r.Stdout))
			}
			t.Logf("%s: child VmHWM %.1f MB", c.name, float64(hwm)/1024)
			if hwm > 200<<10 {
				t.Errorf("peak RSS (VmHWM) %d MB, want under 200 MB", hwm>>10)
			}
		})
	}
}

// TestHostileChild is the child side of TestHostileInput: it does nothing
// unless started by it.
func TestHostileChild(t *testing.T) {
	if !hostile.IsChild() {
		return
	}
	file := os.Getenv("HOSTILE_FILE")
	name := file
	if rel, err := filepath.Rel(os.Getenv("HOSTILE_DIR"), file); err == nil && !strings.HasPrefix(rel, "..") {
		name = rel
	}
	src, err := runbooks.ReadFile(file)
	if err == nil {
		switch os.Getenv("HOSTILE_KIND") {
		case "runbook":
			_, err = runbooks.LoadRunbook(name, src, steps.NewRegistry(), nil)
		case "answers":
			_, err = runbooks.ParseAnswers(name, src)
		case "inventory":
			_, err = runbooks.ParseInventory(name, src)
		case "resolve":
			var a *runbooks.Answers
			if a, err = runbooks.ParseAnswers(name, src); err == nil {
				rb, lerr := runbooks.LoadRunbook("rb.yaml", []byte(resolveRunbook), steps.NewRegistry(), nil)
				if lerr != nil {
					panic(lerr)
				}
				_, _, err = runbooks.ResolveInputs(rb, nil, a, false)
			}
		}
	}
	fmt.Printf("HOSTILE-RESULT<%v>HOSTILE-RESULT\n", err)
	fmt.Printf("HOSTILE-HWM<%d>\n", hostile.SelfHWM()>>10)
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	out, _, _ := strings.Cut(rest, b)
	return out
}
