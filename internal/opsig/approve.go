package opsig

import (
	"slices"
	"time"
)

// ApproveNamespace is the SSHSIG namespace of approvals (the two-person
// rule: drbook approve). It differs from Namespace, so a signature over a
// run record can never count as an approval, nor the reverse.
const ApproveNamespace = "drbook-approve@drbook.dev"

// Names lists the literal principals the file allows, for some key, in
// namespace at time at (zero: now).
func (a *AllowedSigners) Names(namespace string, at time.Time) []string {
	if at.IsZero() {
		at = time.Now()
	}
	var out []string
	for _, e := range a.entries {
		for _, p := range a.Principals(e.key, namespace, at) {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}
