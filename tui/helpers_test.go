package tui

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// updating reports whether -update was given. The flag itself is registered
// by charmbracelet/x/exp/golden (imported through teatest), which every
// golden test here shares.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// t0 is the fixed start of every test run; now is 83 s later.
var t0 = time.Date(2026, 11, 21, 3, 4, 5, 0, time.UTC)

func fixedNow() time.Time { return t0.Add(83 * time.Second) }

var sizes = []struct{ w, h int }{{80, 24}, {120, 40}}

// frame renders the model's frame as plain text, trailing blanks trimmed.
func frame(m *Model) string {
	s := ansi.Strip(m.View().Content)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n") + "\n"
}

// golden compares got with testdata/golden/name.golden (-update rewrites).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".golden")
	if updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// checkFrame asserts that a frame fits the terminal.
func checkFrame(t *testing.T, name, s string, w, h int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) > h {
		t.Errorf("%s: %d lines on a %d-line terminal", name, len(lines), h)
	}
	for i, l := range lines {
		if ansi.StringWidth(l) > w {
			t.Errorf("%s: line %d is %d cells wide on a %d-cell terminal: %q", name, i+1, ansi.StringWidth(l), w, l)
		}
	}
}

// driver delivers messages to a model and runs the commands it returns
// synchronously (huh moves between fields through commands). Commands that
// do not return promptly (cursor blinks, ticks, the bridge's wait) are left
// running; whatever they return later is kept in late, so the bridge's
// messages are never lost.
type driver struct {
	m    *Model
	late chan tea.Msg
}

func drive(m *Model) *driver { return &driver{m: m, late: make(chan tea.Msg, 64)} }

func (d *driver) send(msg tea.Msg) {
	_, cmd := d.m.Update(msg)
	d.run(cmd)
}

func (d *driver) run(cmd tea.Cmd) { d.runDepth(cmd, 0) }

func (d *driver) runDepth(cmd tea.Cmd, depth int) {
	if cmd == nil || depth > 20 {
		return
	}
	ch := make(chan tea.Msg, 1)
	go func() { ch <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-ch:
	case <-time.After(50 * time.Millisecond):
		go func() {
			if msg := <-ch; msg != nil {
				if _, ok := msg.(batchMsg); ok {
					d.late <- msg
				}
			}
		}()
		return
	}
	if msg == nil {
		return
	}
	if b, ok := msg.(tea.BatchMsg); ok {
		for _, c := range b {
			d.runDepth(c, depth+1)
		}
		return
	}
	if v := reflect.ValueOf(msg); v.Kind() == reflect.Slice && v.Type().Elem() == reflect.TypeOf(tea.Cmd(nil)) {
		for i := 0; i < v.Len(); i++ {
			d.runDepth(v.Index(i).Interface().(tea.Cmd), depth+1)
		}
		return
	}
	if _, ok := msg.(tea.QuitMsg); ok {
		return
	}
	_, next := d.m.Update(msg)
	d.runDepth(next, depth+1)
}

// bridged waits (bounded) for the next batch from the engine side and
// delivers it.
func (d *driver) bridged(t testing.TB) {
	t.Helper()
	d.run(d.m.bridge.Wait())
	select {
	case msg := <-d.late:
		d.send(msg)
	case <-time.After(10 * time.Second):
		t.Fatal("no message from the engine side within 10s")
	}
}

// typeText sends each character of s as a key press.
func (d *driver) typeText(s string) {
	for _, r := range s {
		d.send(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

func press(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "left":
		return tea.KeyPressMsg{Code: tea.KeyLeft}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}
