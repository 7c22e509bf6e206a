// Package opsig signs and verifies with the operator's own SSH key, in the
// SSHSIG format `ssh-keygen -Y sign` writes, so that anything drbook signs
// can be checked without drbook:
//
//	ssh-keygen -Y verify -f allowed_signers -I PRINCIPAL -n NAMESPACE -s SIG < MESSAGE
//
// A Signer comes from the ssh-agent (SSH_AUTH_SOCK) or from a private key
// file. AllowedSigners reads the allowed-signers file format git and
// ssh-keygen use (ssh-keygen(1), ALLOWED SIGNERS) and says who, if anyone,
// made a signature.
//
// The package depends on golang.org/x/crypto/ssh and github.com/hiddeco/sshsig
// only.
package opsig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Namespace is the SSHSIG namespace of drbook's run-record signatures. A
// signature made for another purpose (git commits: "git", files: "file")
// never verifies as a drbook signature, nor the reverse.
const Namespace = "drbook-run@drbook.dev"

// Hash is the message hash every drbook signature uses (ssh-keygen's
// default).
const Hash = sshsig.HashSHA512

// Sentinel errors. Each names a rule a signature or key broke.
var (
	// ErrNoKey: no key to sign with (no agent, empty agent, no such file).
	ErrNoKey = errors.New("no SSH key to sign with")
	// ErrBadSignature: the signature is malformed or does not match the
	// message.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrNotAllowed: the signature is valid but its key is not in the
	// allowed-signers file for that principal and namespace.
	ErrNotAllowed = errors.New("signer not allowed")
	// ErrAllowedSigners: the allowed-signers file cannot be used.
	ErrAllowedSigners = errors.New("bad allowed-signers file")
)

// Signer is an SSH key that can sign, and where it came from.
type Signer struct {
	ssh.Signer
	// Source says where the key came from: "ssh-agent" or the file's path.
	Source string
	// closer releases the agent connection, if any.
	closer func() error
}

// Fingerprint is the key's SHA256 fingerprint as ssh-keygen prints it
// ("SHA256:…").
func (s *Signer) Fingerprint() string { return Fingerprint(s.PublicKey()) }

// Close releases the agent connection behind the signer, if any.
func (s *Signer) Close() error {
	if s == nil || s.closer == nil {
		return nil
	}
	return s.closer()
}

// Fingerprint is the SHA256 fingerprint of a public key ("SHA256:…").
func Fingerprint(pub ssh.PublicKey) string { return ssh.FingerprintSHA256(pub) }

// LoadSigner finds the key to sign with. keyPath chooses it:
//   - "" : the first key the ssh-agent at SSH_AUTH_SOCK offers;
//   - a public key file (".pub" or any file holding one public key): the
//     agent's key with that public key (the private key stays in the agent);
//   - a private key file (unencrypted; an encrypted key must be added to
//     the agent with ssh-add).
//
// The error wraps ErrNoKey when there is nothing to sign with.
func LoadSigner(ctx context.Context, keyPath string) (*Signer, error) {
	if keyPath == "" {
		return agentSigner(ctx, nil)
	}
	data, err := os.ReadFile(keyPath) // #nosec G304 -- the operator names their own key file
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoKey, err)
	}
	if len(data) > 64<<10 {
		return nil, fmt.Errorf("%w: %s is larger than 64 KiB, not a key", ErrNoKey, keyPath)
	}
	if pub, _, _, _, perr := ssh.ParseAuthorizedKey(data); perr == nil {
		s, err := agentSigner(ctx, pub)
		if err != nil {
			return nil, fmt.Errorf("%s is a public key: its private key must be in the ssh-agent: %w", keyPath, err)
		}
		return s, nil
	}
	k, err := ssh.ParsePrivateKey(data)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			// The agent may hold it: use the agent's key of that public key.
			if missing.PublicKey != nil {
				if s, aerr := agentSigner(ctx, missing.PublicKey); aerr == nil {
					return s, nil
				}
			}
			return nil, fmt.Errorf("%w: %s is encrypted: add it to the ssh-agent (ssh-add %s)", ErrNoKey, keyPath, keyPath)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrNoKey, keyPath, err)
	}
	return &Signer{Signer: k, Source: keyPath}, nil
}

// agentSigner returns the agent's key matching want, or its first key when
// want is nil.
func agentSigner(ctx context.Context, want ssh.PublicKey) (*Signer, error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, fmt.Errorf("%w: no ssh-agent (SSH_AUTH_SOCK is not set); name a key file with --sign-key", ErrNoKey)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("%w: ssh-agent at %s: %w", ErrNoKey, sock, err)
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: ssh-agent: %w", ErrNoKey, err)
	}
	for _, s := range signers {
		if want == nil || bytes.Equal(s.PublicKey().Marshal(), want.Marshal()) {
			return &Signer{Signer: s, Source: "ssh-agent", closer: conn.Close}, nil
		}
	}
	_ = conn.Close()
	if want != nil {
		return nil, fmt.Errorf("%w: the ssh-agent does not hold %s", ErrNoKey, Fingerprint(want))
	}
	return nil, fmt.Errorf("%w: the ssh-agent holds no key (ssh-add)", ErrNoKey)
}

// Sign signs message in namespace and returns the armored signature
// ("-----BEGIN SSH SIGNATURE-----"), byte for byte what
// `ssh-keygen -Y sign -n namespace` accepts for verification.
func Sign(s ssh.Signer, namespace string, message []byte) ([]byte, error) {
	if w, ok := s.(*Signer); ok {
		s = w.Signer // the embedded interface hides SignWithAlgorithm
	}
	if s.PublicKey().Type() == ssh.KeyAlgoRSA {
		// SSHSIG wants rsa-sha2-512; a plain key signer offers it only
		// through this wrapper (agent signers already do).
		if as, ok := s.(ssh.AlgorithmSigner); ok {
			if _, multi := s.(ssh.MultiAlgorithmSigner); !multi {
				ms, err := ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256})
				if err != nil {
					return nil, fmt.Errorf("sign: %w", err)
				}
				s = ms
			}
		}
	}
	sig, err := sshsig.Sign(bytes.NewReader(message), s, Hash, namespace)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sshsig.Armor(sig), nil
}

// Parse reads an armored signature and returns its public key (without
// checking it against anything).
func Parse(armored []byte) (ssh.PublicKey, error) {
	sig, err := sshsig.Unarmor(armored)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return sig.PublicKey, nil
}

// VerifyKey checks that armored is a valid signature of message in
// namespace and returns the key that made it. It does not say whether that
// key is allowed: see AllowedSigners.Verify.
func VerifyKey(armored []byte, namespace string, message []byte) (ssh.PublicKey, error) {
	sig, err := sshsig.Unarmor(armored)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if sig.Namespace != namespace {
		return nil, fmt.Errorf("%w: namespace is %q, want %q", ErrBadSignature, sig.Namespace, namespace)
	}
	h := sshsig.HashAlgorithm(sig.HashAlgorithm)
	if h != sshsig.HashSHA512 && h != sshsig.HashSHA256 {
		return nil, fmt.Errorf("%w: hash %q", ErrBadSignature, sig.HashAlgorithm)
	}
	if sig.Signature != nil && sig.Signature.Format == ssh.KeyAlgoRSA {
		return nil, fmt.Errorf("%w: ssh-rsa (SHA-1) signatures are refused", ErrBadSignature)
	}
	if err := sshsig.Verify(bytes.NewReader(message), sig, sig.PublicKey, h, namespace); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return sig.PublicKey, nil
}

// MarshalPublicKey is the key in authorized_keys form without a comment
// ("ssh-ed25519 AAAA…").
func MarshalPublicKey(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}
