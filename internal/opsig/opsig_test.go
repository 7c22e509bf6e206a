package opsig

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool fails in CI (which installs openssh-client) and skips elsewhere.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func keygen(t *testing.T, dir, name, typ string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	out, err := exec.Command(needTool(t, "ssh-keygen"), "-q", "-t", typ, "-N", "", "-C", name, "-f", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return p
}

func pubLine(t *testing.T, keyPath string) string {
	t.Helper()
	b, err := os.ReadFile(keyPath + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestAgreesWithSSHKeygen signs with this package and verifies with
// ssh-keygen, and the reverse, for each key type drbook operators use.
func TestAgreesWithSSHKeygen(t *testing.T) {
	kg := needTool(t, "ssh-keygen")
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			key := keygen(t, dir, "alice", typ)
			allowed := filepath.Join(dir, "allowed_signers")
			line := `alice@example.org namespaces="` + Namespace + `" ` + pubLine(t, key)
			if err := os.WriteFile(allowed, []byte("# operators\n"+line+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			msg := []byte("drbook run head\nrun: r1\nseq: 9\nhash: abc\n")

			// drbook signs, ssh-keygen verifies.
			s, err := LoadSigner(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := Sign(s, Namespace, msg)
			if err != nil {
				t.Fatal(err)
			}
			sigPath := filepath.Join(dir, "msg.sig")
			if err := os.WriteFile(sigPath, sig, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(kg, "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", Namespace, "-s", sigPath)
			cmd.Stdin = bytes.NewReader(msg)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -Y verify refused drbook's signature: %v: %s", err, out)
			}
			// ssh-keygen refuses a changed message: the check can fail.
			cmd = exec.Command(kg, "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", Namespace, "-s", sigPath)
			cmd.Stdin = bytes.NewReader(append(msg, 'x'))
			if err := cmd.Run(); err == nil {
				t.Fatal("ssh-keygen verified a changed message")
			}

			// ssh-keygen signs, drbook verifies.
			msgPath := filepath.Join(dir, "msg")
			if err := os.WriteFile(msgPath, msg, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(kg, "-Y", "sign", "-f", key, "-n", Namespace, msgPath).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
			}
			theirs, err := os.ReadFile(msgPath + ".sig")
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(allowed)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			as, err := ParseAllowedSigners(f, allowed)
			if err != nil {
				t.Fatal(err)
			}
			for _, armored := range [][]byte{sig, theirs} {
				names, pub, err := as.Verify(armored, Namespace, msg, "", time.Time{})
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				if len(names) != 1 || names[0] != "alice@example.org" || Fingerprint(pub) != s.Fingerprint() {
					t.Fatalf("verify says %v %s, want alice@example.org %s", names, Fingerprint(pub), s.Fingerprint())
				}
				if _, _, err := as.Verify(armored, Namespace, append(msg, 'x'), "", time.Time{}); !errors.Is(err, ErrBadSignature) {
					t.Fatalf("changed message: %v, want ErrBadSignature", err)
				}
				if _, _, err := as.Verify(armored, "git", msg, "", time.Time{}); !errors.Is(err, ErrBadSignature) {
					t.Fatalf("other namespace: %v, want ErrBadSignature", err)
				}
				if _, _, err := as.Verify(armored, Namespace, msg, "bob@example.org", time.Time{}); !errors.Is(err, ErrNotAllowed) {
					t.Fatalf("other principal: %v, want ErrNotAllowed", err)
				}
			}
		})
	}
}

func TestAllowedSignersRules(t *testing.T) {
	dir := t.TempDir()
	alice := keygen(t, dir, "alice", "ed25519")
	bob := keygen(t, dir, "bob", "ed25519")
	msg := []byte("m")
	sign := func(key string) []byte {
		s, err := LoadSigner(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := Sign(s, Namespace, msg)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	aliceSig, bobSig := sign(alice), sign(bob)
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, file string
		sig        []byte
		principal  string
		want       error
	}{
		{"listed", "alice " + pubLine(t, alice), aliceSig, "", nil},
		{"not listed", "alice " + pubLine(t, alice), bobSig, "", ErrNotAllowed},
		{"wildcard principal", "*@ops.example " + pubLine(t, bob), bobSig, "bob@ops.example", nil},
		{"negated principal", "*@ops.example,!bob@ops.example " + pubLine(t, bob), bobSig, "bob@ops.example", ErrNotAllowed},
		{"other namespace only", `alice namespaces="git,file" ` + pubLine(t, alice), aliceSig, "", ErrNotAllowed},
		{"namespace pattern", `alice namespaces="drbook-*" ` + pubLine(t, alice), aliceSig, "alice", nil},
		{"expired", `alice valid-before=20260101 ` + pubLine(t, alice), aliceSig, "", ErrNotAllowed},
		{"not yet valid", `alice valid-after=20270101 ` + pubLine(t, alice), aliceSig, "", ErrNotAllowed},
		{"within validity", `alice valid-after=20260101,valid-before=20270101 ` + pubLine(t, alice), aliceSig, "", nil},
		{"garbage signature", "alice " + pubLine(t, alice), []byte("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"), "", ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, err := ParseAllowedSigners(strings.NewReader(tt.file+"\n"), "allowed")
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = as.Verify(tt.sig, Namespace, msg, tt.principal, at)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAllowedSignersErrors(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"no key", "alice\n", "allowed:1:"},
		{"bad key", "\n\nalice ssh-ed25519 !!!\n", "allowed:3: no valid public key"},
		{"unknown option", "alice frobnicate ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfz5fWOCH3lx2hXmLBpsvNmnUMXkPeoRh0vl4hAs0z5\n", `unknown option "frobnicate"`},
		{"cert authority", "alice cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfz5fWOCH3lx2hXmLBpsvNmnUMXkPeoRh0vl4hAs0z5\n", "cert-authority"},
		{"bad time", "alice valid-after=yesterday ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfz5fWOCH3lx2hXmLBpsvNmnUMXkPeoRh0vl4hAs0z5\n", "valid-after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAllowedSigners(strings.NewReader(tt.file), "allowed")
			if !errors.Is(err, ErrAllowedSigners) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrAllowedSigners containing %q", err, tt.want)
			}
		})
	}
}

// TestSignerFromAgent starts a real ssh-agent, adds a key and signs through
// it, by the agent's first key and by the key's public file.
func TestSignerFromAgent(t *testing.T) {
	agentBin := needTool(t, "ssh-agent")
	add := needTool(t, "ssh-add")
	dir := t.TempDir()
	key := keygen(t, dir, "carol", "ed25519")
	sock := filepath.Join(dir, "agent.sock")
	ag := exec.Command(agentBin, "-D", "-a", sock)
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ag.Process.Kill(); _ = ag.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent socket never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	if _, err := LoadSigner(context.Background(), ""); !errors.Is(err, ErrNoKey) {
		t.Fatalf("empty agent: %v, want ErrNoKey", err)
	}
	cmd := exec.Command(add, key)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	for _, path := range []string{"", key + ".pub"} {
		s, err := LoadSigner(context.Background(), path)
		if err != nil {
			t.Fatalf("LoadSigner(%q): %v", path, err)
		}
		if s.Source != "ssh-agent" {
			t.Fatalf("source %q, want ssh-agent", s.Source)
		}
		sig, err := Sign(s, Namespace, []byte("m"))
		if err != nil {
			t.Fatal(err)
		}
		pub, err := VerifyKey(sig, Namespace, []byte("m"))
		if err != nil || Fingerprint(pub) != s.Fingerprint() {
			t.Fatalf("verify: %v", err)
		}
		_ = s.Close()
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, err := LoadSigner(context.Background(), ""); !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), "--sign-key") {
		t.Fatalf("no agent: %v", err)
	}
}
