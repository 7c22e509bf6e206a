package opsig

import (
	"strings"
	"testing"
	"time"
)

// FuzzAllowedSigners feeds hostile allowed-signers files and signatures:
// parsing and verifying never panic, and nothing verifies without a key the
// file lists.
func FuzzAllowedSigners(f *testing.F) {
	f.Add("alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfz5fWOCH3lx2hXmLBpsvNmnUMXkPeoRh0vl4hAs0z5\n", "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n")
	f.Add(`*,!x namespaces="a,b",valid-after=20260101 ssh-ed25519 AAAA`, "")
	f.Add(strings.Repeat(`"`, 100), strings.Repeat("-", 100))
	f.Fuzz(func(t *testing.T, file, sig string) {
		as, err := ParseAllowedSigners(strings.NewReader(file), "fuzz")
		if err != nil {
			return
		}
		if names, _, err := as.Verify([]byte(sig), Namespace, []byte("m"), "", time.Time{}); err == nil {
			t.Fatalf("a fuzzed signature verified as %v", names)
		}
	})
}
