package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"unicode/utf8"
)

// RecordedFile is a file kept whole in the record (a runbook or an
// inventory): the path it was read from, the hex SHA-256 of its bytes and
// the bytes themselves, so that a run can be resumed and replayed without
// the file. It is part of a hash-chained event, so replay --verify covers
// it, and Verify checks that the content matches SHA256.
type RecordedFile struct {
	// Path is the path as given to drbook (possibly relative to WorkDir),
	// or "library:NAME" for a shipped runbook.
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// Text is the content when it is valid UTF-8; Raw holds it otherwise
	// (base64 in JSON), as JSON cannot carry invalid bytes in a string.
	Text string `json:"text,omitempty"`
	Raw  []byte `json:"raw,omitempty"`
}

// NewRecordedFile returns the record of content read from path, or nil when
// content is nil (no such file).
func NewRecordedFile(path string, content []byte) *RecordedFile {
	if content == nil {
		return nil
	}
	sum := sha256.Sum256(content)
	f := &RecordedFile{Path: path, SHA256: hex.EncodeToString(sum[:])}
	if utf8.Valid(content) {
		f.Text = string(content)
	} else {
		f.Raw = bytes.Clone(content)
	}
	return f
}

// Bytes returns the recorded content.
func (f *RecordedFile) Bytes() []byte {
	if f.Raw != nil {
		return f.Raw
	}
	return []byte(f.Text)
}

// check reports a content that does not match its SHA256.
func (f *RecordedFile) check(what string) error {
	if f == nil {
		return nil
	}
	sum := sha256.Sum256(f.Bytes())
	if hex.EncodeToString(sum[:]) != f.SHA256 {
		return fmt.Errorf("recorded %s %s does not match its sha256", what, f.Path)
	}
	return nil
}

// RunFiles is what a run's record says it runs: the runbook and inventory
// (the latest ones, after any accepted change on resume), the directory the
// run started in, and the non-secret answers to input steps given at start.
type RunFiles struct {
	Runbook     *RecordedFile
	Inventory   *RecordedFile
	WorkDir     string
	StepAnswers map[string]string
	// InventorySHA256 is the latest recorded inventory digest, also for
	// records that do not hold the inventory's content.
	RunbookSHA256, InventorySHA256 string
}

// Files reads from a run's events (as returned by Events) the files the run
// was started with, replaced by those a resume went on with after a
// change. Records made before files were kept hold no content: Runbook and
// Inventory are then nil, and only the digests are set.
func Files(events []Event) (RunFiles, error) {
	var f RunFiles
	for _, ev := range events {
		switch ev.Type {
		case EvRunCreated:
			var c RunCreated
			if err := ev.Decode(&c); err != nil {
				return f, fmt.Errorf("event %d: %w", ev.Seq, err)
			}
			f.Runbook, f.Inventory, f.WorkDir, f.StepAnswers = c.Runbook, c.Inventory, c.WorkDir, c.StepAnswers
			f.RunbookSHA256, f.InventorySHA256 = c.RunbookSHA256, c.InventorySHA256
		case EvRunResumed:
			var r RunResumed
			if err := ev.Decode(&r); err != nil {
				return f, fmt.Errorf("event %d: %w", ev.Seq, err)
			}
			if r.Runbook != nil {
				f.Runbook, f.RunbookSHA256 = r.Runbook, r.Runbook.SHA256
			}
			if r.Inventory != nil {
				f.Inventory, f.InventorySHA256 = r.Inventory, r.Inventory.SHA256
			}
			if r.WorkDir != "" && (r.Runbook != nil || r.Inventory != nil) {
				f.WorkDir = r.WorkDir
			}
		}
	}
	return f, nil
}
