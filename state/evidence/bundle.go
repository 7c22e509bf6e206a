package evidence

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/state"
)

// Names in a bundle.
const (
	// EventsFile holds the events, one per line, each exactly the
	// canonical JSON its chain hash covers (see state.CanonicalJSON).
	EventsFile = "events.jsonl"
	// ManifestFile lists the SHA-256 of every other file, in the format
	// of sha256sum (check with sha256sum -c MANIFEST).
	ManifestFile = "MANIFEST"
	// VerifyFile tells an auditor how to check the bundle by hand.
	VerifyFile = "VERIFY.md"
	// SignaturesDir holds NAME.sig (armored SSHSIG) and NAME.msg (the
	// signed message) for each signature.
	SignaturesDir = "signatures"
	// FilesDir holds the runbook and inventory as they ran.
	FilesDir = "files"
)

// ErrBundle is wrapped when a bundle cannot be written or does not verify;
// the message names the file.
var ErrBundle = errors.New("evidence bundle does not verify")

// maxBundleFile bounds every file a bundle verification reads.
const maxBundleFile = 1 << 30

// SignatureName is the base name (without .sig / .msg) of the files of a
// signature of event seq for reason.
func SignatureName(seq int64, reason string) string {
	return fmt.Sprintf("%06d-%s", seq, safeName(reason))
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(s, "-")
	s = strings.Trim(s, ".-")
	if s == "" {
		return "x"
	}
	return s
}

// recordedFiles lists the runbook and inventory files the events hold,
// with their bundle names: as the run started (run.created) and as each
// resume that changed them (--accept-changed).
func recordedFiles(events []state.Event) map[string]*state.RecordedFile {
	out := map[string]*state.RecordedFile{}
	add := func(seq int64, what string, f *state.RecordedFile) {
		if f == nil {
			return
		}
		out[path.Join(FilesDir, fmt.Sprintf("%06d-%s-%s", seq, what, safeName(path.Base(strings.ReplaceAll(f.Path, ":", "-")))))] = f
	}
	for _, ev := range events {
		switch ev.Type {
		case state.EvRunCreated:
			var p state.RunCreated
			if ev.Decode(&p) == nil {
				add(ev.Seq, "runbook", p.Runbook)
				add(ev.Seq, "inventory", p.Inventory)
			}
		case state.EvRunResumed:
			var p state.RunResumed
			if ev.Decode(&p) == nil {
				add(ev.Seq, "runbook", p.Runbook)
				add(ev.Seq, "inventory", p.Inventory)
			}
		}
	}
	return out
}

// signatureFiles lists NAME.sig and NAME.msg of every record.signed event.
func signatureFiles(runID string, events []state.Event) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, ev := range events {
		if ev.Type != state.EvRecordSigned {
			continue
		}
		var p state.RecordSigned
		if err := ev.Decode(&p); err != nil {
			return nil, fmt.Errorf("%s: event %d: record.signed payload: %w", EventsFile, ev.Seq, err)
		}
		name := path.Join(SignaturesDir, SignatureName(p.Seq, p.Reason))
		out[name+".sig"] = []byte(p.Signature)
		out[name+".msg"] = state.SignedMessage(runID, p.Seq, p.Hash)
	}
	return out, nil
}

// WriteBundle writes the evidence bundle of a run's events into dir, which
// must not exist or be empty. It returns the files written (MANIFEST
// last).
func WriteBundle(dir, runID string, events []state.Event) ([]string, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: run %s has no events", ErrBundle, runID)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%w: %s is not empty", ErrBundle, dir)
	}
	var ev bytes.Buffer
	for _, e := range events {
		line := state.CanonicalJSON(e)
		if bytes.ContainsAny(line, "\r\n") {
			return nil, fmt.Errorf("%w: event %d: its payload spans lines; it cannot be one line of %s", ErrBundle, e.Seq, EventsFile)
		}
		ev.Write(line)
		ev.WriteByte('\n')
	}
	files := map[string][]byte{EventsFile: ev.Bytes()}
	sigs, err := signatureFiles(runID, events)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	for k, v := range sigs {
		files[k] = v
	}
	for k, f := range recordedFiles(events) {
		files[k] = f.Bytes()
	}
	vm, err := verifyText(runID, events, sigs, recordedFiles(events))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	files[VerifyFile] = vm
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	var manifest bytes.Buffer
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		fmt.Fprintf(&manifest, "%s  %s\n", hex.EncodeToString(sum[:]), n)
	}
	files[ManifestFile] = manifest.Bytes()
	names = append(names, ManifestFile)
	for _, n := range names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBundle, err)
		}
		if err := os.WriteFile(p, files[n], 0o600); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBundle, err)
		}
	}
	return names, nil
}

var manifestLine = regexp.MustCompile(`^([0-9a-f]{64}) [ *](.+)$`)

// readLimited reads a bundle file, refusing one larger than the bound.
func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p) // #nosec G304 -- a file of the bundle the auditor names
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBundleFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBundleFile {
		return nil, fmt.Errorf("larger than %d bytes", maxBundleFile)
	}
	return b, nil
}

// VerifyBundle checks the bundle in dir: every file against MANIFEST (and
// no file unlisted), the chain re-derived from events.jsonl, each
// signature file against its record.signed event and message, the
// recorded runbook and inventory against the events, and then Check
// (allowed may be nil, as for Check). The error wraps ErrBundle or
// ErrSignatures and names the file at fault.
func VerifyBundle(dir string, allowed *opsig.AllowedSigners) (Report, []state.Event, error) {
	bad := func(file string, format string, args ...any) (Report, []state.Event, error) {
		return Report{Status: StatusFailed, Reason: file + ": " + fmt.Sprintf(format, args...), Signatures: []Signature{}}, nil,
			fmt.Errorf("%w: %s: %s", ErrBundle, file, fmt.Sprintf(format, args...))
	}
	man, err := readLimited(filepath.Join(dir, ManifestFile))
	if err != nil {
		return bad(ManifestFile, "%v", err)
	}
	listed := map[string][]byte{}
	for i, line := range strings.Split(strings.TrimSuffix(string(man), "\n"), "\n") {
		m := manifestLine.FindStringSubmatch(line)
		if m == nil {
			return bad(ManifestFile, "line %d is not \"SHA256  NAME\"", i+1)
		}
		name := m[2]
		if !filepath.IsLocal(name) || path.Clean(name) != name || name == ManifestFile {
			return bad(ManifestFile, "line %d: %q is not a file of the bundle", i+1, name)
		}
		if _, dup := listed[name]; dup {
			return bad(ManifestFile, "line %d: %s listed twice", i+1, name)
		}
		b, err := readLimited(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return bad(name, "%v", err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != m[1] {
			return bad(name, "SHA-256 does not match MANIFEST (file altered)")
		}
		listed[name] = b
	}
	var walkErr error
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			walkErr = err
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() || rel == ManifestFile {
			return nil
		}
		if _, ok := listed[rel]; !ok {
			walkErr = fmt.Errorf("%w: %s: not listed in MANIFEST", ErrBundle, rel)
			return walkErr
		}
		return nil
	})
	if walkErr != nil {
		return Report{Status: StatusFailed, Reason: walkErr.Error(), Signatures: []Signature{}}, nil, walkErr
	}
	data, ok := listed[EventsFile]
	if !ok {
		return bad(EventsFile, "missing (not in MANIFEST)")
	}
	events, runID, err := parseEvents(data)
	if err != nil {
		return bad(EventsFile, "%v", err)
	}
	if vr := state.VerifyEvents(runID, events); !vr.OK {
		return bad(EventsFile, "%s", vr.Reason)
	}
	sigs, err := signatureFiles(runID, events)
	if err != nil {
		return bad(EventsFile, "%v", err)
	}
	for name, want := range sigs {
		got, ok := listed[name]
		if !ok {
			return bad(name, "missing: the events hold this signature")
		}
		if !bytes.Equal(got, want) {
			return bad(name, "differs from the signature or message the events hold")
		}
	}
	for name, f := range recordedFiles(events) {
		got, ok := listed[name]
		if !ok {
			return bad(name, "missing: the events hold this file")
		}
		if !bytes.Equal(got, f.Bytes()) {
			return bad(name, "differs from the file the events hold")
		}
	}
	for name := range listed {
		if strings.HasPrefix(name, SignaturesDir+"/") {
			if _, ok := sigs[name]; !ok {
				return bad(name, "no record.signed event holds this signature")
			}
		}
	}
	rep, err := Check(runID, events, allowed)
	if err != nil {
		return rep, events, fmt.Errorf("%s: %w", EventsFile, err)
	}
	return rep, events, nil
}

// bundleEvent is one line of events.jsonl: the canonical form's members.
type bundleEvent struct {
	Attempt int             `json:"attempt"`
	Data    json.RawMessage `json:"data"`
	RunID   string          `json:"run_id"`
	Seq     int64           `json:"seq"`
	StepID  string          `json:"step_id"`
	Target  string          `json:"target"`
	Time    string          `json:"time"`
	Type    string          `json:"type"`
}

// parseEvents reads events.jsonl and re-derives each event's chain hash
// from the line itself (which must be the event's canonical form).
func parseEvents(data []byte) ([]state.Event, string, error) {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, "", fmt.Errorf("empty, or the last line has no newline")
	}
	var events []state.Event
	runID, prev := "", ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxBundleFile)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		var be bundleEvent
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&be); err != nil {
			return nil, "", fmt.Errorf("line %d: %w", n, err)
		}
		t, err := time.Parse(time.RFC3339Nano, be.Time)
		if err != nil {
			return nil, "", fmt.Errorf("line %d: time: %w", n, err)
		}
		if n == 1 {
			runID, prev = be.RunID, state.GenesisHash(be.RunID)
		}
		ev := state.Event{RunID: be.RunID, Seq: be.Seq, Time: t, Type: state.EventType(be.Type), StepID: be.StepID,
			Target: be.Target, Attempt: be.Attempt, Data: append(json.RawMessage(nil), be.Data...), PrevHash: prev}
		if !bytes.Equal(state.CanonicalJSON(ev), line) {
			return nil, "", fmt.Errorf("line %d: not the canonical form of its event", n)
		}
		ev.Hash = state.EventHash(ev)
		prev = ev.Hash
		events = append(events, ev)
	}
	if err := sc.Err(); err != nil {
		return nil, "", err
	}
	return events, runID, nil
}

var verifyTmpl = template.Must(template.New("verify").Parse(`# Verifying drbook run {{.RunID}}

This directory is the evidence of one drbook run: its record (events), the
SSH signatures of that record, and the runbook and inventory as they ran.
Nothing here needs drbook to check. Run every command in this directory.

## 1. The files are intact

    sha256sum -c MANIFEST

MANIFEST is not signed: it catches damage, not forgery. What proves the
record are the signatures (2) over the chain the events re-derive (3).

## 2. Each signature is by an allowed signer

Signatures are SSHSIG (ssh-keygen -Y sign), namespace {{.Namespace}}.
With the allowed-signers file you trust (NOT one from this directory):
{{range .Sigs}}
    # event {{.Seq}} ({{.Reason}}{{if .StepID}} {{.StepID}}{{end}}), signed by {{.Who}} with {{.Key}}
    ssh-keygen -Y find-principals -f allowed_signers -n {{$.Namespace}} -s {{.Name}}.sig
    ssh-keygen -Y verify -f allowed_signers -I PRINCIPAL -n {{$.Namespace}} -s {{.Name}}.sig < {{.Name}}.msg
{{else}}
    (none: this run is unsigned; nothing in it proves who recorded it)
{{end}}
Each NAME.msg is exactly:

    drbook run record
    run: RUN_ID
    seq: N
    hash: HEX

## 3. The events lead to the signed hashes

Each line of events.jsonl is the event exactly as its hash covers it. The
hash of line N is SHA-256 of (hash of line N-1, a newline, line N); before
line 1 comes SHA-256 of "drbook/chain/v1\n" followed by the run id:

    prev=$(printf 'drbook/chain/v1\n%s' '{{.RunID}}' | sha256sum | cut -d' ' -f1); n=0
    while IFS= read -r line; do
      n=$((n+1)); prev=$(printf '%s\n%s' "$prev" "$line" | sha256sum | cut -d' ' -f1); echo "$n $prev"
    done < events.jsonl{{if .Sigs}} | grep -E '^({{.SeqPattern}}) '{{end}}

prints "N HASH" for {{if .Sigs}}each signed event N: each HASH must be the one in
the signature's .msg ({{range $i, $s := .Sigs}}{{if $i}}, {{end}}{{$s.Name}}.msg{{end}}){{else}}every event{{end}}.

The last signature must sign the event right before it, the end of the run
(run.finished) or of a segment (run.handover); its record.signed event must
be the last line of events.jsonl.

## 4. The runbook and inventory are those the record names
{{range .Files}}
    sha256sum {{.Name}}   # must be {{.SHA256}} (in events.jsonl line {{.Seq}})
{{end}}
## All at once, with drbook

    drbook verify . --allowed-signers allowed_signers

What this proves and what it cannot: docs/signing.md of drbook.
`))

type verifySig struct {
	Seq                            int64
	Reason, StepID, Who, Key, Name string
}

type verifyFile struct {
	Name, SHA256, Seq string
}

func verifyText(runID string, events []state.Event, sigs map[string][]byte, files map[string]*state.RecordedFile) ([]byte, error) {
	d := struct {
		RunID, Namespace string
		SeqPattern       string
		Sigs             []verifySig
		Files            []verifyFile
	}{RunID: runID, Namespace: opsig.Namespace}
	for _, ev := range events {
		if ev.Type != state.EvRecordSigned {
			continue
		}
		var p state.RecordSigned
		if ev.Decode(&p) != nil {
			continue
		}
		who := "(unknown)"
		if p.Actor != nil {
			who = p.Actor.String()
		}
		d.Sigs = append(d.Sigs, verifySig{Seq: p.Seq, Reason: p.Reason, StepID: p.StepID, Who: who, Key: p.Key,
			Name: path.Join(SignaturesDir, SignatureName(p.Seq, p.Reason))})
	}
	seqs := make([]string, len(d.Sigs))
	for i, sg := range d.Sigs {
		seqs[i] = strconv.FormatInt(sg.Seq, 10)
	}
	d.SeqPattern = strings.Join(seqs, "|")
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		seq := strings.TrimLeft(strings.SplitN(path.Base(n), "-", 2)[0], "0")
		d.Files = append(d.Files, verifyFile{Name: n, SHA256: files[n].SHA256, Seq: seq})
	}
	var b bytes.Buffer
	if err := verifyTmpl.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
