package token

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	pt, _, err := New(time.Unix(0, 0), time.Hour, bytes.Repeat([]byte{0xab}, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pt)
	f.Add("drbkjoin1...")
	f.Add("drbkjoin1.0123456789abcdef.AAAA." + strings.Repeat("0", 64))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v is not ErrMalformed", err)
			}
			return
		}
		if len(p.ID) != 2*IDSize || len(p.Secret) != SecretSize || len(p.CAFingerprint) != FingerprintSize {
			t.Fatalf("accepted token with bad field sizes: %q", s)
		}
		// Every accepted token has exactly one text form.
		if got := p.Plaintext(); got != strings.TrimSpace(s) {
			t.Fatalf("Plaintext = %q, input %q", got, s)
		}
		p2, err := Parse(p.Plaintext())
		if err != nil || p2.ID != p.ID || !bytes.Equal(p2.Secret, p.Secret) || !bytes.Equal(p2.CAFingerprint, p.CAFingerprint) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

func FuzzParseAPIKey(f *testing.F) {
	pt, _, err := NewAPIKey(time.Unix(0, 0), "seed")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pt)
	f.Add("drbkapi1..")
	f.Add("drbkapi1.0123456789abcdef." + strings.Repeat("A", 43))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := ParseAPIKey(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || id != "" || secret != nil {
				t.Fatalf("ParseAPIKey = %q, %x, %v", id, secret, err)
			}
			return
		}
		if len(id) != 2*IDSize || len(secret) != SecretSize {
			t.Fatalf("accepted key with bad field sizes: %q", s)
		}
		rec := APIKeyRecord{ID: id, Hash: hashSecret(APIKeyPrefix, id, secret)}
		if !rec.Verify(secret) {
			t.Fatal("Verify rejects its own secret")
		}
		again := APIKeyPrefix + "." + id + "." + b64.EncodeToString(secret)
		if again != strings.TrimSpace(s) {
			t.Fatalf("non-canonical key accepted: %q (canonical %q)", s, again)
		}
	})
}
