// Package token creates and checks cluster join tokens and key-API keys.
//
// A join token lets a new node join the cluster once. Its plaintext is shown to
// the operator once and has four dot-separated fields:
//
//	drbkjoin1.<id>.<secret>.<ca fingerprint>
//
//	id              16 lowercase hex characters (8 random bytes), public
//	secret          32 random bytes, base64url without padding (43 characters)
//	ca fingerprint  SHA-256 of the cluster CA certificate (DER), 64 lowercase hex
//
// The fingerprint lets the joiner authenticate the peer before it sends anything
// (like kubeadm's discovery hash). The cluster stores only a Record: the id, a
// SHA-256 hash of the secret bound to the id and a domain string, the expiry and
// the use. Tokens expire (DefaultTTL) and are single use; Record.Check compares
// hashes in constant time.
//
// An API key for the key API has the plaintext
//
//	drbkapi1.<id>.<secret>
//
// with the same id and secret encodings. It is shown once and stored as an
// APIKeyRecord holding only its hash.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultTTL is the lifetime of a join token when New is given a zero ttl.
const DefaultTTL = 24 * time.Hour

// MaxTTL is the longest lifetime New accepts for a join token.
const MaxTTL = 7 * 24 * time.Hour

// SecretSize is the size in bytes of a token or API key secret.
const SecretSize = 32

// IDSize is the size in bytes of a token or API key id (hex-encoded in text).
const IDSize = 8

// FingerprintSize is the size of a CA fingerprint (SHA-256).
const FingerprintSize = sha256.Size

// JoinPrefix is the first field of a join token.
const JoinPrefix = "drbkjoin1"

// APIKeyPrefix is the first field of an API key.
const APIKeyPrefix = "drbkapi1"

// maxTextLen bounds the input parsers look at; real tokens are far shorter.
const maxTextLen = 256

var (
	// ErrMalformed is returned for text that is not a well-formed token or API
	// key. The rule: "drbkjoin1.<16 hex id>.<43-char base64url secret>.<64 hex
	// fingerprint>" or "drbkapi1.<16 hex id>.<43-char base64url secret>".
	ErrMalformed = errors.New("token: malformed (want drbkjoin1.<id>.<secret>.<ca fingerprint> or drbkapi1.<id>.<secret>)")
	// ErrExpired is returned for a join token used at or after its expiry time.
	// The rule: join tokens expire (default 24h).
	ErrExpired = errors.New("token: join token expired (tokens are valid for a limited time, default 24h)")
	// ErrUsed is returned for a join token that was already used. The rule: join
	// tokens are single use.
	ErrUsed = errors.New("token: join token already used (tokens are single use)")
	// ErrInvalid is returned when the secret does not match the stored hash. The
	// rule: only the holder of the token's secret may join.
	ErrInvalid = errors.New("token: invalid join token secret")
	// ErrTTL is returned by New for a negative ttl or one longer than MaxTTL.
	ErrTTL = errors.New("token: ttl must be between 0 (default 24h) and 7 days")
	// ErrFingerprint is returned by New for a CA fingerprint that is not 32 bytes.
	ErrFingerprint = errors.New("token: CA fingerprint must be a 32-byte SHA-256")
)

var b64 = base64.RawURLEncoding.Strict()

// Parsed is a join token as read from its plaintext.
type Parsed struct {
	// ID identifies the token's Record in the cluster.
	ID string
	// Secret is the 32-byte secret checked against the Record's hash.
	Secret []byte
	// CAFingerprint is the SHA-256 of the cluster CA certificate (DER).
	CAFingerprint []byte
}

// Plaintext returns the token text, the inverse of Parse. It contains the
// secret: never log it.
func (p Parsed) Plaintext() string {
	return JoinPrefix + "." + p.ID + "." + b64.EncodeToString(p.Secret) + "." + hex.EncodeToString(p.CAFingerprint)
}

// String returns the token with its secret redacted, so that a Parsed value
// printed by mistake does not leak the secret.
func (p Parsed) String() string {
	return JoinPrefix + "." + p.ID + ".REDACTED." + hex.EncodeToString(p.CAFingerprint)
}

// GoString is like String (for %#v).
func (p Parsed) GoString() string { return "token.Parsed{" + p.String() + "}" }

// Record is what the cluster stores for a join token: the hash of its secret,
// never the secret. It is JSON-serialisable.
type Record struct {
	// ID is the token's public id.
	ID string `json:"id"`
	// Hash is SHA-256 over a domain string, the id and the secret.
	Hash []byte `json:"hash"`
	// Created is when the token was issued.
	Created time.Time `json:"created"`
	// Expires is the first instant at which the token is no longer valid.
	Expires time.Time `json:"expires"`
	// UsedAt is when the token was used; zero if unused.
	UsedAt time.Time `json:"used_at,omitzero"`
	// UsedBy names the node that used the token; empty if unused.
	UsedBy string `json:"used_by,omitempty"`
}

// New issues a join token valid from now for ttl (DefaultTTL if ttl is zero)
// that pins the CA with the given fingerprint. It returns the plaintext, to be
// shown once, and the Record to store.
func New(now time.Time, ttl time.Duration, caFingerprint []byte) (plaintext string, rec Record, err error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < 0 || ttl > MaxTTL {
		return "", Record{}, fmt.Errorf("%w: got %s", ErrTTL, ttl)
	}
	if len(caFingerprint) != FingerprintSize {
		return "", Record{}, fmt.Errorf("%w: got %d bytes", ErrFingerprint, len(caFingerprint))
	}
	id, secret, err := newIDSecret()
	if err != nil {
		return "", Record{}, err
	}
	p := Parsed{ID: id, Secret: secret, CAFingerprint: append([]byte(nil), caFingerprint...)}
	rec = Record{
		ID:      id,
		Hash:    hashSecret(JoinPrefix, id, secret),
		Created: now,
		Expires: now.Add(ttl),
	}
	return p.Plaintext(), rec, nil
}

// Parse reads a join token's plaintext. Surrounding white space is ignored;
// anything else that is not exactly the documented form is ErrMalformed.
func Parse(s string) (Parsed, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxTextLen {
		return Parsed{}, fmt.Errorf("%w: too long", ErrMalformed)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 4 || parts[0] != JoinPrefix {
		return Parsed{}, ErrMalformed
	}
	secret, err := parseIDSecret(parts[1], parts[2])
	if err != nil {
		return Parsed{}, err
	}
	fp, err := parseLowerHex(parts[3], FingerprintSize)
	if err != nil {
		return Parsed{}, fmt.Errorf("%w: CA fingerprint", ErrMalformed)
	}
	return Parsed{ID: parts[1], Secret: secret, CAFingerprint: fp}, nil
}

// Check reports whether secret may use this token at now. The secret is
// compared first, in constant time, so that someone without the secret learns
// nothing about the token's state: ErrInvalid for a wrong secret, then ErrUsed
// if the token was used, then ErrExpired if now is at or after Expires. A
// Record with a malformed hash or no expiry is refused.
func (r Record) Check(secret []byte, now time.Time) error {
	want := hashSecret(JoinPrefix, r.ID, secret)
	if len(r.Hash) != sha256.Size || subtle.ConstantTimeCompare(want, r.Hash) != 1 {
		return ErrInvalid
	}
	if !r.UsedAt.IsZero() || r.UsedBy != "" {
		return fmt.Errorf("%w: by %q at %s", ErrUsed, r.UsedBy, r.UsedAt.UTC().Format(time.RFC3339))
	}
	if r.Expires.IsZero() || !now.Before(r.Expires) {
		return fmt.Errorf("%w: expired at %s", ErrExpired, r.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// MarkUsed returns a copy of r recorded as used at now by node by. Store it
// in the same atomic operation that admits the node, after Check succeeded.
func (r Record) MarkUsed(now time.Time, by string) Record {
	r.UsedAt = now
	r.UsedBy = by
	r.Hash = append([]byte(nil), r.Hash...)
	return r
}

// APIKeyRecord is what the cluster stores for an API key: its hash, never the
// secret. It is JSON-serialisable.
type APIKeyRecord struct {
	// ID is the key's public id.
	ID string `json:"id"`
	// Hash is SHA-256 over a domain string, the id and the secret.
	Hash []byte `json:"hash"`
	// Created is when the key was issued.
	Created time.Time `json:"created"`
	// Name is the operator's label for the key.
	Name string `json:"name"`
}

// NewAPIKey issues an API key labelled name. It returns the plaintext, to be
// shown once, and the record to store.
func NewAPIKey(now time.Time, name string) (plaintext string, rec APIKeyRecord, err error) {
	id, secret, err := newIDSecret()
	if err != nil {
		return "", APIKeyRecord{}, err
	}
	rec = APIKeyRecord{ID: id, Hash: hashSecret(APIKeyPrefix, id, secret), Created: now, Name: name}
	return APIKeyPrefix + "." + id + "." + b64.EncodeToString(secret), rec, nil
}

// ParseAPIKey reads an API key's plaintext and returns its id and secret.
// Surrounding white space is ignored; anything else that is not exactly the
// documented form is ErrMalformed.
func ParseAPIKey(s string) (id string, secret []byte, err error) {
	s = strings.TrimSpace(s)
	if len(s) > maxTextLen {
		return "", nil, fmt.Errorf("%w: too long", ErrMalformed)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != APIKeyPrefix {
		return "", nil, ErrMalformed
	}
	secret, err = parseIDSecret(parts[1], parts[2])
	if err != nil {
		return "", nil, err
	}
	return parts[1], secret, nil
}

// Verify reports whether secret is this key's secret, comparing hashes in
// constant time.
func (r APIKeyRecord) Verify(secret []byte) bool {
	want := hashSecret(APIKeyPrefix, r.ID, secret)
	return len(r.Hash) == sha256.Size && subtle.ConstantTimeCompare(want, r.Hash) == 1
}

// hashSecret binds the secret to its kind and id, so that a hash cannot be
// moved between records or between token kinds.
func hashSecret(domain, id string, secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(secret)
	return h.Sum(nil)
}

func newIDSecret() (string, []byte, error) {
	buf := make([]byte, IDSize+SecretSize)
	if _, err := rand.Read(buf); err != nil {
		return "", nil, fmt.Errorf("token: generate: %w", err)
	}
	return hex.EncodeToString(buf[:IDSize]), buf[IDSize:], nil
}

func parseIDSecret(id, secret string) ([]byte, error) {
	if _, err := parseLowerHex(id, IDSize); err != nil {
		return nil, fmt.Errorf("%w: id", ErrMalformed)
	}
	if len(secret) != b64.EncodedLen(SecretSize) {
		return nil, fmt.Errorf("%w: secret length", ErrMalformed)
	}
	sec, err := b64.DecodeString(secret)
	if err != nil || len(sec) != SecretSize {
		return nil, fmt.Errorf("%w: secret encoding", ErrMalformed)
	}
	return sec, nil
}

// parseLowerHex decodes exactly n bytes of lowercase hex, so that every value
// has one text form.
func parseLowerHex(s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, ErrMalformed
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, ErrMalformed
		}
	}
	return hex.DecodeString(s)
}
