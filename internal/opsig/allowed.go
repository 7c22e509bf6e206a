package opsig

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// maxAllowedSigners bounds an allowed-signers file (it is read whole).
const maxAllowedSigners = 4 << 20

// AllowedSigners is a parsed allowed-signers file: which principals may sign
// with which keys, in which namespaces, when.
type AllowedSigners struct {
	entries []allowedEntry
}

type allowedEntry struct {
	line       int
	principals []string // patterns; "!" negates
	namespaces []string // patterns; nil: every namespace
	after      time.Time
	before     time.Time
	key        ssh.PublicKey
}

// ParseAllowedSigners reads the allowed-signers format of ssh-keygen(1):
//
//	principals [options] keytype base64-key [comment]
//
// principals is a comma-separated list of patterns (* and ?, ! negates);
// options are namespaces="a,b", valid-after=, valid-before= (YYYYMMDD or
// YYYYMMDDHHMM[SS], UTC with a Z suffix). cert-authority lines are refused:
// drbook verifies plain keys. name is used in errors (file:line).
func ParseAllowedSigners(r io.Reader, name string) (*AllowedSigners, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxAllowedSigners+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrAllowedSigners, name, err)
	}
	if len(data) > maxAllowedSigners {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrAllowedSigners, name, maxAllowedSigners)
	}
	a := &AllowedSigners{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxAllowedSigners)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseAllowedLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %w", ErrAllowedSigners, name, n, err)
		}
		e.line = n
		a.entries = append(a.entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrAllowedSigners, name, err)
	}
	return a, nil
}

// nextField splits off the first whitespace-separated field of s, keeping
// double-quoted runs together.
func nextField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " \t")
	inQuote := false
	for i, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
		case (c == ' ' || c == '\t') && !inQuote:
			return s[:i], strings.TrimLeft(s[i:], " \t")
		}
	}
	return s, ""
}

func parseAllowedLine(line string) (allowedEntry, error) {
	var e allowedEntry
	principals, rest := nextField(line)
	if rest == "" {
		return e, fmt.Errorf("want: principals [options] keytype key")
	}
	for _, p := range strings.Split(principals, ",") {
		if p = strings.Trim(p, `"`); p != "" {
			e.principals = append(e.principals, p)
		}
	}
	if len(e.principals) == 0 {
		return e, fmt.Errorf("no principal")
	}
	// The rest is authorized_keys syntax: options, then the key.
	pub, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return e, fmt.Errorf("no valid public key")
	}
	e.key = pub
	for _, o := range opts {
		if err := e.applyOptions(o); err != nil {
			return e, err
		}
	}
	return e, nil
}

// applyOptions reads a comma-separated option list (commas inside quotes
// belong to the value).
func (e *allowedEntry) applyOptions(opts string) error {
	var parts []string
	start, inQuote := 0, false
	for i, c := range opts {
		switch {
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			parts = append(parts, opts[start:i])
			start = i + 1
		}
	}
	parts = append(parts, opts[start:])
	for _, o := range parts {
		k, v, _ := strings.Cut(o, "=")
		v = strings.Trim(v, `"`)
		switch strings.ToLower(k) {
		case "namespaces":
			for _, ns := range strings.Split(v, ",") {
				if ns = strings.TrimSpace(ns); ns != "" {
					e.namespaces = append(e.namespaces, ns)
				}
			}
		case "valid-after":
			t, err := parseSSHTime(v)
			if err != nil {
				return fmt.Errorf("valid-after: %w", err)
			}
			e.after = t
		case "valid-before":
			t, err := parseSSHTime(v)
			if err != nil {
				return fmt.Errorf("valid-before: %w", err)
			}
			e.before = t
		case "cert-authority":
			return fmt.Errorf("cert-authority entries are not supported: list the signers' keys")
		default:
			return fmt.Errorf("unknown option %q", k)
		}
	}
	return nil
}

// parseSSHTime reads ssh-keygen's YYYYMMDD[HHMM[SS]][Z] (local time without Z;
// drbook reads it as UTC either way, so a file means the same everywhere).
func parseSSHTime(v string) (time.Time, error) {
	v = strings.TrimSuffix(v, "Z")
	for _, layout := range []string{"20060102150405", "200601021504", "20060102"} {
		if len(v) == len(layout) {
			return time.Parse(layout, v)
		}
	}
	return time.Time{}, fmt.Errorf("%q is not YYYYMMDD[HHMM[SS]]", v)
}

// matchList is OpenSSH's match_pattern_list: the name matches when a
// positive pattern matches and no negated one does.
func matchList(name string, patterns []string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		ok, err := path.Match(p, name)
		if err != nil || !ok {
			continue
		}
		if neg {
			return false
		}
		matched = true
	}
	return matched
}

// Principals lists the principals an entry allows for key in namespace at
// time at (literal principals only: a pattern names no one).
func (a *AllowedSigners) Principals(key ssh.PublicKey, namespace string, at time.Time) []string {
	var out []string
	for _, e := range a.entries {
		if !e.allows(key, namespace, at) {
			continue
		}
		for _, p := range e.principals {
			if !strings.ContainsAny(p, "*?!") && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func (e allowedEntry) allows(key ssh.PublicKey, namespace string, at time.Time) bool {
	if !bytes.Equal(e.key.Marshal(), key.Marshal()) {
		return false
	}
	if e.namespaces != nil && !matchList(namespace, e.namespaces) {
		return false
	}
	if !e.after.IsZero() && at.Before(e.after) {
		return false
	}
	if !e.before.IsZero() && !at.Before(e.before) {
		return false
	}
	return true
}

// Verify checks armored as a signature of message in namespace by a key the
// file allows: for principal when principal is not empty (as
// `ssh-keygen -Y verify -I principal`), for anyone otherwise. at is the time
// the signature claims (valid-after/valid-before); zero means now. It
// returns the signer's principals (those the file names for that key) and
// key. The error wraps ErrBadSignature or ErrNotAllowed.
func (a *AllowedSigners) Verify(armored []byte, namespace string, message []byte, principal string, at time.Time) ([]string, ssh.PublicKey, error) {
	pub, err := VerifyKey(armored, namespace, message)
	if err != nil {
		return nil, nil, err
	}
	if at.IsZero() {
		at = time.Now()
	}
	for _, e := range a.entries {
		if !e.allows(pub, namespace, at) {
			continue
		}
		if principal == "" || matchList(principal, e.principals) {
			names := a.Principals(pub, namespace, at)
			if principal != "" && !slices.Contains(names, principal) {
				names = append([]string{principal}, names...)
			}
			return names, pub, nil
		}
	}
	who := "anyone"
	if principal != "" {
		who = fmt.Sprintf("%q", principal)
	}
	return nil, pub, fmt.Errorf("%w: key %s is not allowed for %s in namespace %q", ErrNotAllowed, Fingerprint(pub), who, namespace)
}
