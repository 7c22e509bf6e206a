package engine

import (
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Mask is what a secret looks like wherever drbook shows or records it.
const Mask = "••••••"

// masker replaces known secret values in text. Values shorter than
// minSecretLen are not masked (they would blank out ordinary words) and are
// refused where a secret is defined.
type masker struct {
	mu      sync.RWMutex
	secrets []string
	rep     *strings.Replacer
}

const minSecretLen = 4

func (m *masker) add(values ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, v := range values {
		if len(v) < minSecretLen {
			continue
		}
		dup := false
		for _, s := range m.secrets {
			if s == v {
				dup = true
				break
			}
		}
		if !dup {
			m.secrets = append(m.secrets, v)
			changed = true
		}
	}
	if !changed {
		return
	}
	// Longest first so a secret containing another is masked whole.
	sort.Slice(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	pairs := make([]string, 0, 2*len(m.secrets))
	for _, s := range m.secrets {
		pairs = append(pairs, s, Mask)
	}
	m.rep = strings.NewReplacer(pairs...)
}

func (m *masker) mask(s string) string {
	m.mu.RLock()
	rep := m.rep
	m.mu.RUnlock()
	if rep == nil {
		return s
	}
	return rep.Replace(s)
}

// secretLineMasker hides the value of declared secret outputs as the command
// prints them (name=value or "name": "value"), before the value is known.
func secretLineMasker(names []string) func(string) string {
	if len(names) == 0 {
		return func(s string) string { return s }
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	alt := strings.Join(quoted, "|")
	kv := regexp.MustCompile(`^(\s*(?:` + alt + `)\s*=).*$`)
	js := regexp.MustCompile(`("(?:` + alt + `)"\s*:\s*)"(?:[^"\\]|\\.)*"`)
	return func(s string) string {
		s = kv.ReplaceAllString(s, "${1}"+Mask)
		return js.ReplaceAllString(s, `${1}"`+Mask+`"`)
	}
}

// maskTail masks s and also a secret's beginning (at least minSecretLen
// bytes) at the very end of s: for a line cut short, whose secret may have
// been cut in the middle.
func (m *masker) maskTail(s string) string {
	s = m.mask(s)
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, sec := range m.secrets {
		for k := len(sec) - 1; k >= minSecretLen; k-- {
			if strings.HasSuffix(s, sec[:k]) {
				return s[:len(s)-k] + Mask
			}
		}
	}
	return s
}
