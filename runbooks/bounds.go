package runbooks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"unicode/utf8"

	"github.com/goccy/go-yaml/token"

	"github.com/drbook/drbook/internal/capread"
)

// Bounds on every YAML document drbook parses (runbooks, inventories,
// answers). They are checked in order, each before the work it protects:
//
//  1. size: the read stops at maxYAMLBytes+1 bytes (ReadFile);
//  2. bytes: a leading BOM is dropped, invalid UTF-8 and control characters
//     are refused at their position, and a file with more than maxYAMLItems
//     lines and YAML indicator characters is refused — before the YAML
//     library sees it, since the library's memory grows with its tokens and
//     some of its steps take time quadratic in them;
//  3. tokens: nesting (flow brackets, block collections, node properties)
//     deeper than maxYAMLDepth and a second document are refused before the
//     tokens are parsed;
//  4. nodes: aliases are resolved by reference, and a document whose nodes,
//     counted with every alias expanded, exceed maxYAMLNodes is refused at
//     the alias that crosses the budget — decoding, validation and toAny all
//     walk the expanded tree, so this bounds all of them.
const (
	// maxYAMLBytes bounds the size of a document drbook will read.
	maxYAMLBytes = 4 << 20
	// maxYAMLDepth bounds nesting so hostile input cannot exhaust the stack
	// or the parser.
	maxYAMLDepth = 64
	// maxYAMLItems bounds lines plus YAML indicator characters, an upper
	// bound (to a small factor) on the tokens the YAML library makes. The
	// largest shipped runbook has under 500.
	maxYAMLItems = 32 << 10
	// maxYAMLKeys bounds the keys of one block mapping (the YAML library
	// takes time quadratic in them).
	maxYAMLKeys = 2000
	// maxYAMLNodes bounds the nodes of a document with aliases expanded.
	maxYAMLNodes = 100_000
	// maxSecretFileBytes bounds an answers file's {file: PATH} secret.
	maxSecretFileBytes = 1 << 20
)

// MaxFileBytes is the largest runbook, inventory or answers file drbook
// reads (4 MiB).
const MaxFileBytes = maxYAMLBytes

// ReadFile reads a runbook, inventory or answers file. At most 4 MiB + 1
// byte is read whatever the path is (regular file, device, FIFO, pipe): a
// larger input is refused as Diagnostics naming the file.
func ReadFile(path string) ([]byte, error) {
	return ReadFileContext(context.Background(), path)
}

// ReadFileContext is ReadFile that gives up when ctx is done (a FIFO or pipe
// whose writer never finishes).
func ReadFileContext(ctx context.Context, path string) ([]byte, error) {
	b, err := capread.ReadFileContext(ctx, path, maxYAMLBytes)
	if errors.Is(err, capread.ErrTooLarge) {
		return nil, Diagnostics{{File: path, Message: fmt.Sprintf("larger than %s, the limit for a runbook, inventory or answers file (read stopped there)", capread.Size(maxYAMLBytes))}}
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // "read x.yaml: no such file or directory", not the path twice
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// utf8BOM is the byte order mark some editors write at the start of a file.
const utf8BOM = "\xef\xbb\xbf"

// isIndicator reports the bytes that can start or end a YAML token other
// than a scalar; with line breaks they bound the number of tokens.
func isIndicator(c byte) bool {
	switch c {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return true
	}
	return false
}

// prescan checks the raw bytes of a document before any YAML parsing and
// returns the bytes to parse (without a leading BOM). Positions count
// characters (runes) from 1, as the YAML library's do; a BOM is not counted,
// as editors do not show it.
func prescan(d *diags, src []byte) ([]byte, bool) {
	if len(src) > maxYAMLBytes {
		d.add(Pos{}, "larger than %s, the limit for a runbook, inventory or answers file", capread.Size(maxYAMLBytes))
		return nil, false
	}
	if len(src) >= len(utf8BOM) && string(src[:len(utf8BOM)]) == utf8BOM {
		src = src[len(utf8BOM):]
	}
	line, col, items := 1, 1, 0
	for i := 0; i < len(src); {
		c := src[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\n':
				items++
				line, col = line+1, 1
				i++
				if items > maxYAMLItems {
					d.add(Pos{Line: line - 1, Col: 1}, "more than %d lines and YAML indicators (- : , [ ] { } # & * ! | > and quotes); a document this large is refused before parsing", maxYAMLItems)
					return nil, false
				}
				continue
			case c < 0x20 && c != '\t' && c != '\r', c == 0x7f:
				d.add(Pos{Line: line, Col: col}, "control character %U is not allowed in YAML (write it as an escape in a double-quoted string)", rune(c))
				return nil, false
			case isIndicator(c):
				items++
				if items > maxYAMLItems {
					d.add(Pos{Line: line, Col: col}, "more than %d lines and YAML indicators (- : , [ ] { } # & * ! | > and quotes); a document this large is refused before parsing", maxYAMLItems)
					return nil, false
				}
			}
			i++
			col++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			d.add(Pos{Line: line, Col: col}, "invalid UTF-8 (byte 0x%02x); save the file as UTF-8", c)
			return nil, false
		case r >= 0x80 && r <= 0x9f && r != 0x85:
			d.add(Pos{Line: line, Col: col}, "control character %U is not allowed in YAML", r)
			return nil, false
		case r == 0xfeff:
			d.add(Pos{Line: line, Col: col}, "byte order mark (U+FEFF) inside the document; only the very start of a file may have one")
			return nil, false
		}
		i += size
		col++
	}
	return src, true
}

// checkTokens refuses, before parsing, token streams whose nesting is deeper
// than maxYAMLDepth, block mappings with more than maxYAMLKeys keys, and
// streams that hold more than one document. Nesting counts open
// flow collections ([ and {), open block collections (tracked by the columns
// of their entries, keys and `-`), and node properties (anchors and tags) in
// a row. It over-counts rather than under-counts: it only needs to bound the
// parser's work, and the decoder checks the exact depth afterwards.
func checkTokens(d *diags, toks token.Tokens) bool {
	flow := 0
	// Open block collections by the column of their entries (increasing),
	// with the keys seen so far when it is a mapping.
	type open struct{ col, keys int }
	var block []open
	props := 0
	content, ended := false, false
	var prev *token.Token
	deeper := func(tk *token.Token) bool {
		if len(block)+flow+props > maxYAMLDepth {
			d.add(Pos{Line: tk.Position.Line, Col: tk.Position.Column}, "nesting deeper than %d levels", maxYAMLDepth)
			return true
		}
		return false
	}
	openBlock := func(col int) {
		for len(block) > 0 && block[len(block)-1].col > col {
			block = block[:len(block)-1]
		}
		if len(block) == 0 || block[len(block)-1].col < col {
			block = append(block, open{col: col})
		}
	}
	for _, tk := range toks {
		if tk.Type == token.CommentType {
			continue
		}
		if tk.Type != token.AnchorType && tk.Type != token.TagType {
			props = 0
		}
		if ended && tk.Type != token.DocumentEndType {
			d.add(Pos{Line: tk.Position.Line, Col: tk.Position.Column}, "only one YAML document per file is allowed")
			return false
		}
		switch tk.Type {
		case token.DocumentHeaderType:
			if content {
				d.add(Pos{Line: tk.Position.Line, Col: tk.Position.Column}, "only one YAML document per file is allowed")
				return false
			}
			content = true
			prev = tk
			continue
		case token.DocumentEndType:
			ended = content
			prev = tk
			continue
		case token.DirectiveType:
			prev = tk
			continue
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			if flow > 0 {
				flow--
			}
		case token.SequenceEntryType, token.MappingKeyType:
			if flow == 0 {
				openBlock(tk.Position.Column)
			}
		case token.MappingValueType:
			if flow == 0 {
				col := tk.Position.Column
				if prev != nil && prev.Position.Line == tk.Position.Line {
					col = prev.Position.Column
				}
				openBlock(col)
				top := &block[len(block)-1]
				if top.keys++; top.keys > maxYAMLKeys {
					d.add(Pos{Line: tk.Position.Line, Col: col}, "more than %d keys in one mapping", maxYAMLKeys)
					return false
				}
			}
		case token.AnchorType, token.TagType:
			props++
		}
		content = true
		if deeper(tk) {
			return false
		}
		prev = tk
	}
	return true
}
