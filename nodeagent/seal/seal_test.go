package seal

import (
	"bytes"
	"errors"
	"testing"
)

func mustKey(t testing.TB) []byte {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewKey(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	if len(a) != KeySize || len(b) != KeySize {
		t.Fatalf("key sizes %d, %d; want %d", len(a), len(b), KeySize)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two fresh keys are equal")
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	key := mustKey(t)
	for _, tc := range []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty", []byte{}, nil},
		{"nil aad", []byte("cluster master key"), nil},
		{"with aad", []byte("cluster master key"), []byte("node-1/cmk")},
		{"large", bytes.Repeat([]byte{0xa5}, 1<<16), []byte("x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := Seal(key, tc.plaintext, tc.aad)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != len(tc.plaintext)+Overhead {
				t.Fatalf("sealed length %d, want %d", len(sealed), len(tc.plaintext)+Overhead)
			}
			if sealed[0] != Version {
				t.Fatalf("version byte %d, want %d", sealed[0], Version)
			}
			if len(tc.plaintext) >= 8 && bytes.Contains(sealed, tc.plaintext) {
				t.Fatal("plaintext appears in the sealed value")
			}
			got, err := Open(key, sealed, tc.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("Open = %q, want %q", got, tc.plaintext)
			}
		})
	}
}

func TestSealNonceIsRandom(t *testing.T) {
	key := mustKey(t)
	a, _ := Seal(key, []byte("same"), nil)
	b, _ := Seal(key, []byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("sealing twice gave identical output: nonce not random")
	}
}

func TestOpenErrors(t *testing.T) {
	key := mustKey(t)
	other := mustKey(t)
	sealed, err := Seal(key, []byte("secret value"), []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(sealed))
	}
	for _, tc := range []struct {
		name   string
		key    []byte
		sealed []byte
		aad    []byte
		want   error
	}{
		{"wrong key", other, sealed, []byte("ctx"), ErrSealBroken},
		{"wrong aad", key, sealed, []byte("other"), ErrSealBroken},
		{"missing aad", key, sealed, nil, ErrSealBroken},
		{"empty", key, nil, []byte("ctx"), ErrSealBroken},
		{"only version", key, sealed[:1], []byte("ctx"), ErrSealBroken},
		{"shorter than overhead", key, sealed[:Overhead-1], []byte("ctx"), ErrSealBroken},
		{"truncated tag", key, sealed[:len(sealed)-1], []byte("ctx"), ErrSealBroken},
		{"extra byte", key, append(bytes.Clone(sealed), 0), []byte("ctx"), ErrSealBroken},
		{"version 0", key, mutate(func(b []byte) []byte { b[0] = 0; return b }), []byte("ctx"), ErrSealBroken},
		{"version 2", key, mutate(func(b []byte) []byte { b[0] = 2; return b }), []byte("ctx"), ErrSealBroken},
		{"short key", key[:16], sealed, []byte("ctx"), ErrKeySize},
		{"nil key", nil, sealed, []byte("ctx"), ErrKeySize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Open(tc.key, tc.sealed, tc.aad)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open error = %v, want %v", err, tc.want)
			}
			if !errors.Is(err, ErrSealBroken) {
				t.Fatalf("Open error %v is not ErrSealBroken", err)
			}
			if got != nil {
				t.Fatalf("Open returned data %q with an error", got)
			}
		})
	}
}

func TestOpenEveryBitFlipFails(t *testing.T) {
	key := mustKey(t)
	sealed, err := Seal(key, []byte("0123456789abcdef"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		for bit := range 8 {
			b := bytes.Clone(sealed)
			b[i] ^= 1 << bit
			if _, err := Open(key, b, []byte("aad")); !errors.Is(err, ErrSealBroken) {
				t.Fatalf("flip byte %d bit %d: err = %v, want ErrSealBroken", i, bit, err)
			}
		}
	}
}

func TestSealKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := Seal(make([]byte, n), []byte("x"), nil); !errors.Is(err, ErrKeySize) {
			t.Errorf("Seal with %d-byte key: err = %v, want ErrKeySize", n, err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{7}, KeySize)
	good, err := Seal(key, []byte("seed"), []byte("aad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte("aad"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{1}, []byte("aad"))
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		pt, err := Open(key, sealed, aad)
		if err != nil {
			if !errors.Is(err, ErrSealBroken) || pt != nil {
				t.Fatalf("Open = %q, %v", pt, err)
			}
			return
		}
		// Anything that opens must round-trip through Seal and Open again.
		again, err := Seal(key, pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		pt2, err := Open(key, again, aad)
		if err != nil || !bytes.Equal(pt, pt2) {
			t.Fatalf("reseal round trip: %q %v", pt2, err)
		}
	})
}
