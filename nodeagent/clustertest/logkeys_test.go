package clustertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// checkLogKeys parses every line of an agent's log that starts with '{'
// (the JSON handler's lines; a Go panic or race report is plain text) and
// fails on a line that is not JSON or that repeats a key in any object.
// It returns the number of JSON lines checked.
func checkLogKeys(log []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	n := 0
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		n++
		if err := uniqueKeys(line); err != nil {
			return n, fmt.Errorf("line %d: %w: %s", lineNo, err, line)
		}
	}
	return n, sc.Err()
}

// errDuplicateKey reports a JSON object with a key twice.
var errDuplicateKey = errors.New("duplicate key")

// uniqueKeys walks one JSON value token by token and fails on an object
// that holds a key twice, at any depth.
func uniqueKeys(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := walkValue(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the JSON value: %v", err)
	}
	return nil
}

func walkValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			if seen[key] {
				return fmt.Errorf("%w %q", errDuplicateKey, key)
			}
			seen[key] = true
			if err := walkValue(dec); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := walkValue(dec); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// TestCheckLogKeys: the log check finds a repeated key at the top level
// and nested, accepts clean lines, skips plain-text lines and rejects a
// broken JSON line.
func TestCheckLogKeys(t *testing.T) {
	tests := []struct {
		name  string
		log   string
		lines int
		err   string
	}{
		{"clean", `{"time":"t","level":"INFO","msg":"m","node":"node1","member":"node2"}` + "\n" +
			`{"a":{"b":1,"c":[{"b":2},{"b":3}]},"b":4}` + "\n", 2, ""},
		{"repeated top-level key", `{"msg":"added non-voter","node":"node1","node":"node2"}`, 1, `duplicate key "node"`},
		{"repeated nested key", `{"msg":"m","err":{"x":1,"x":2}}`, 1, `duplicate key "x"`},
		{"repeated key in an array element", `{"msg":"m","l":[{"k":1},{"k":1,"k":2}]}`, 1, `duplicate key "k"`},
		{"plain text skipped", "panic: boom\n\ngoroutine 1 [running]:\n" + `{"msg":"ok"}`, 1, ""},
		{"broken JSON", `{"msg":"m",`, 1, "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := checkLogKeys([]byte(tc.log))
			if n != tc.lines {
				t.Errorf("checked %d lines, want %d", n, tc.lines)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one naming %q", err, tc.err)
			}
		})
	}
}
