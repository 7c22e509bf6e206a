package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	fp = func() []byte { s := sha256.Sum256([]byte("ca cert der")); return s[:] }()
)

func mustNew(t testing.TB, ttl time.Duration) (string, Record) {
	t.Helper()
	pt, rec, err := New(t0, ttl, fp)
	if err != nil {
		t.Fatal(err)
	}
	return pt, rec
}

func TestNewParseCheck(t *testing.T) {
	pt, rec := mustNew(t, 0)
	if !strings.HasPrefix(pt, "drbkjoin1.") {
		t.Fatalf("plaintext %q lacks prefix", pt)
	}
	if got := rec.Expires.Sub(rec.Created); got != DefaultTTL {
		t.Fatalf("default ttl %s, want %s", got, DefaultTTL)
	}
	p, err := Parse(pt)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != rec.ID || !bytes.Equal(p.CAFingerprint, fp) || len(p.Secret) != SecretSize {
		t.Fatalf("parsed %v does not match record %s", p, rec.ID)
	}
	if p.Plaintext() != pt {
		t.Fatal("Plaintext does not round-trip")
	}
	if bytes.Contains(rec.Hash, p.Secret) {
		t.Fatal("record stores the secret")
	}
	js, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), strings.Split(pt, ".")[2]) {
		t.Fatal("serialised record contains the secret")
	}
	var back Record
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Check(p.Secret, t0.Add(time.Hour)); err != nil {
		t.Fatalf("Check after JSON round trip: %v", err)
	}
	// Parse tolerates surrounding white space (a pasted line).
	if _, err := Parse(" " + pt + "\n"); err != nil {
		t.Fatalf("Parse with white space: %v", err)
	}
}

func TestParsedStringRedactsSecret(t *testing.T) {
	pt, _ := mustNew(t, 0)
	p, err := Parse(pt)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.Split(pt, ".")[2]
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%v", p), fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", p), p.String()} {
		if strings.Contains(s, secret) {
			t.Fatalf("formatted token leaks its secret: %s", s)
		}
	}
}

func TestTokensAreUnique(t *testing.T) {
	a, ra := mustNew(t, 0)
	b, rb := mustNew(t, 0)
	if a == b || ra.ID == rb.ID || bytes.Equal(ra.Hash, rb.Hash) {
		t.Fatal("two tokens collide")
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		fp   []byte
		want error
	}{
		{"negative ttl", -time.Second, fp, ErrTTL},
		{"ttl too long", MaxTTL + time.Second, fp, ErrTTL},
		{"nil fingerprint", time.Hour, nil, ErrFingerprint},
		{"short fingerprint", time.Hour, fp[:31], ErrFingerprint},
		{"long fingerprint", time.Hour, append(bytes.Clone(fp), 0), ErrFingerprint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, _, err := New(t0, tc.ttl, tc.fp)
			if !errors.Is(err, tc.want) || pt != "" {
				t.Fatalf("New = %q, %v; want %v", pt, err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	pt, rec := mustNew(t, time.Hour)
	p, err := Parse(pt)
	if err != nil {
		t.Fatal(err)
	}
	wrong := bytes.Clone(p.Secret)
	wrong[0] ^= 1
	used := rec.MarkUsed(t0.Add(time.Minute), "node-2")
	noHash := rec
	noHash.Hash = nil
	noExpiry := rec
	noExpiry.Expires = time.Time{}
	otherID := rec
	otherID.ID = "0000000000000000"
	for _, tc := range []struct {
		name   string
		rec    Record
		secret []byte
		now    time.Time
		want   error
	}{
		{"valid", rec, p.Secret, t0.Add(59 * time.Minute), nil},
		{"valid at creation", rec, p.Secret, t0, nil},
		{"expired at expiry", rec, p.Secret, t0.Add(time.Hour), ErrExpired},
		{"expired later", rec, p.Secret, t0.Add(48 * time.Hour), ErrExpired},
		{"used", used, p.Secret, t0.Add(2 * time.Minute), ErrUsed},
		{"used and expired", used, p.Secret, t0.Add(2 * time.Hour), ErrUsed},
		{"wrong secret", rec, wrong, t0, ErrInvalid},
		{"wrong secret on used token", used, wrong, t0, ErrInvalid},
		{"wrong secret on expired token", rec, wrong, t0.Add(2 * time.Hour), ErrInvalid},
		{"empty secret", rec, nil, t0, ErrInvalid},
		{"record without hash", noHash, p.Secret, t0, ErrInvalid},
		{"hash moved to another id", otherID, p.Secret, t0, ErrInvalid},
		{"record without expiry", noExpiry, p.Secret, t0, ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rec.Check(tc.secret, tc.now)
			if tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}
	if !rec.UsedAt.IsZero() {
		t.Fatal("MarkUsed modified the original record")
	}
}

func TestAPIKeyHashNotUsableAsJoinToken(t *testing.T) {
	// An API key's record must not verify as a join token with the same
	// id and secret (domain separation).
	apt, arec, err := NewAPIKey(t0, "ops")
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := ParseAPIKey(apt)
	if err != nil {
		t.Fatal(err)
	}
	jr := Record{ID: arec.ID, Hash: arec.Hash, Created: t0, Expires: t0.Add(time.Hour)}
	if err := jr.Check(secret, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("API key hash accepted as join token: %v", err)
	}
}

func validParts(t testing.TB) (id, secret, fingerprint string) {
	pt, _ := mustNew(t, 0)
	f := strings.Split(pt, ".")
	return f[1], f[2], f[3]
}

func TestParseMalformed(t *testing.T) {
	id, sec, f := validParts(t)
	join := func(parts ...string) string { return strings.Join(parts, ".") }
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"prefix only", "drbkjoin1"},
		{"wrong prefix", join("drbkjoin2", id, sec, f)},
		{"api prefix", join("drbkapi1", id, sec, f)},
		{"upper prefix", join("DRBKJOIN1", id, sec, f)},
		{"three fields", join("drbkjoin1", id, sec)},
		{"five fields", join("drbkjoin1", id, sec, f, "x")},
		{"trailing dot", join("drbkjoin1", id, sec, f) + "."},
		{"empty id", join("drbkjoin1", "", sec, f)},
		{"short id", join("drbkjoin1", id[:15], sec, f)},
		{"upper-case id", join("drbkjoin1", strings.ToUpper("abcdef0123456789"), sec, f)},
		{"non-hex id", join("drbkjoin1", "zzzzzzzzzzzzzzzz", sec, f)},
		{"short secret", join("drbkjoin1", id, sec[:42], f)},
		{"long secret", join("drbkjoin1", id, sec+"A", f)},
		{"padded secret", join("drbkjoin1", id, sec+"=", f)},
		{"std base64 secret", join("drbkjoin1", id, "+"+sec[1:], f)},
		{"non-canonical secret", join("drbkjoin1", id, sec[:42]+"B", f)},
		{"secret with newline", join("drbkjoin1", id, sec[:21]+"\n"+sec[22:], f)},
		{"short fingerprint", join("drbkjoin1", id, sec, f[:62])},
		{"upper fingerprint", join("drbkjoin1", id, sec, strings.Repeat("AB", 32))},
		{"odd fingerprint", join("drbkjoin1", id, sec, f+"0")},
		{"space inside", join("drbkjoin1", id, sec, " "+f[1:])},
		{"very long", strings.Repeat("a", 10000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) = %v, %v; want ErrMalformed", tc.in, p, err)
			}
		})
	}
}

func TestAPIKey(t *testing.T) {
	pt, rec, err := NewAPIKey(t0, "deploy bot")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pt, "drbkapi1.") || rec.Name != "deploy bot" || !rec.Created.Equal(t0) {
		t.Fatalf("unexpected key %q / %+v", pt, rec)
	}
	id, secret, err := ParseAPIKey(pt)
	if err != nil {
		t.Fatal(err)
	}
	if id != rec.ID {
		t.Fatalf("id %q, want %q", id, rec.ID)
	}
	if !rec.Verify(secret) {
		t.Fatal("Verify rejected the right secret")
	}
	js, _ := json.Marshal(rec)
	if strings.Contains(string(js), strings.Split(pt, ".")[2]) {
		t.Fatal("serialised API key record contains the secret")
	}
	wrong := bytes.Clone(secret)
	wrong[31] ^= 0x80
	other := rec
	other.ID = "ffffffffffffffff"
	broken := rec
	broken.Hash = rec.Hash[:16]
	for _, tc := range []struct {
		name   string
		rec    APIKeyRecord
		secret []byte
	}{
		{"wrong secret", rec, wrong},
		{"empty secret", rec, nil},
		{"other id", other, secret},
		{"truncated hash", broken, secret},
	} {
		if tc.rec.Verify(tc.secret) {
			t.Errorf("%s: Verify accepted", tc.name)
		}
	}
}

func TestParseAPIKeyMalformed(t *testing.T) {
	id, sec, _ := validParts(t)
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"join token", "drbkjoin1." + id + "." + sec},
		{"two fields", "drbkapi1." + id},
		{"four fields", "drbkapi1." + id + "." + sec + ".x"},
		{"bad id", "drbkapi1.ID." + sec},
		{"bad secret", "drbkapi1." + id + ".!!!"},
		{"very long", "drbkapi1." + strings.Repeat("a", 1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := ParseAPIKey(tc.in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseAPIKey(%q) err = %v, want ErrMalformed", tc.in, err)
			}
		})
	}
}
