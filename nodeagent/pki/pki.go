// Package pki runs the cluster's small certificate authority and builds the
// TLS 1.3 configurations that agents use between themselves.
//
// Every cluster has one CA (ECDSA P-256, valid ten years) created at bootstrap.
// Each node gets a certificate from it whose common name is the node id and
// whose subject alternative names are the node's addresses; it is valid for
// both server and client authentication, so agents authenticate each other
// with mutual TLS (ServerConfig, ClientConfig) and learn the peer's node id
// from the verified certificate (NodeIDFromConn).
//
// A joining node has no certificate yet. Its join token carries the SHA-256
// fingerprint of the CA certificate (Fingerprint); PinnedClientConfig accepts a
// server only if the server's chain contains a CA certificate with exactly
// that fingerprint and the server's leaf certificate verifies against it.
// Servers therefore send the CA certificate after their leaf. JoinServerConfig
// serves such joiners (client certificate optional, verified if given).
//
// All configurations require TLS 1.3.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// CAValidity is how long a cluster CA certificate is valid.
const CAValidity = 10 * 365 * 24 * time.Hour

// NodeValidity is how long a node certificate is valid (capped by the CA's
// own expiry).
const NodeValidity = 2 * 365 * 24 * time.Hour

// clockSkew backdates certificates so that a peer whose clock is slightly
// behind still accepts them.
const clockSkew = 5 * time.Minute

var (
	// ErrNotCA is returned by LoadCA for a certificate that is not a CA, or for
	// a key that does not match it.
	ErrNotCA = errors.New("pki: not a usable CA (certificate must be a CA and match its private key)")
	// ErrFingerprintMismatch is returned during a pinned handshake when no CA
	// certificate in the server's chain has the pinned fingerprint. The rule: a
	// joiner talks only to a server of the cluster named by its token.
	ErrFingerprintMismatch = errors.New("pki: server's CA does not match the pinned fingerprint")
	// ErrNoVerifiedPeer is returned by NodeIDFromConn when the connection has no
	// verified peer certificate. The rule: node identity comes only from a
	// certificate verified against the cluster CA.
	ErrNoVerifiedPeer = errors.New("pki: connection has no verified peer certificate")
	// ErrBadNodeID is returned by Issue for an empty node id or one with
	// characters outside [A-Za-z0-9._-], or longer than 64 characters.
	ErrBadNodeID = errors.New("pki: node id must be 1-64 characters of [A-Za-z0-9._-]")
	// ErrBadPEM is returned for PEM input that does not hold the expected block.
	ErrBadPEM = errors.New("pki: malformed PEM")
)

// CA is a cluster certificate authority: its certificate and private key in
// PEM, and their parsed forms.
type CA struct {
	// CertPEM is the CA certificate ("CERTIFICATE" block).
	CertPEM []byte
	// KeyPEM is the CA private key, PKCS #8 ("PRIVATE KEY" block). Secret:
	// store it sealed.
	KeyPEM []byte
	// Cert is the parsed CA certificate.
	Cert *x509.Certificate
	// Key is the parsed CA private key.
	Key crypto.Signer
}

// NewCA creates a CA for the cluster clusterID, valid from now for CAValidity.
func NewCA(clusterID string, now time.Time) (*CA, error) {
	if clusterID == "" {
		return nil, errors.New("pki: empty cluster id")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "drbook cluster CA " + clusterID, Organization: []string{"drbook"}, OrganizationalUnit: []string{clusterID}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal CA key: %w", err)
	}
	return LoadCA(pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER))
}

// LoadCA parses a CA certificate and its private key, and checks that the
// certificate is a CA whose public key matches the private key (ErrNotCA).
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: certificate %q is not a CA", ErrNotCA, cert.Subject.CommonName)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%w: private key does not match the certificate", ErrNotCA)
	}
	return &CA{
		CertPEM: append([]byte(nil), certPEM...),
		KeyPEM:  append([]byte(nil), keyPEM...),
		Cert:    cert,
		Key:     key,
	}, nil
}

// Fingerprint returns the SHA-256 of the CA certificate's DER encoding.
func (ca *CA) Fingerprint() []byte {
	s := sha256.Sum256(ca.Cert.Raw)
	return s[:]
}

// Fingerprint returns the SHA-256 of the DER encoding of the first
// certificate in certPEM.
func Fingerprint(certPEM []byte) ([]byte, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	s := sha256.Sum256(cert.Raw)
	return s[:], nil
}

// Issue creates a node certificate and key: common name nodeID, subject
// alternative names hosts (each an IP address or a DNS name), usable for TLS
// server and client authentication, valid from now for NodeValidity but never
// beyond the CA's expiry. The key is PKCS #8 PEM and is secret.
func (ca *CA) Issue(nodeID string, hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if !validNodeID(nodeID) {
		return nil, nil, fmt.Errorf("%w: %q", ErrBadNodeID, nodeID)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate node key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(NodeValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeID, Organization: []string{"drbook"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue certificate for %s: %w", nodeID, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: marshal node key: %w", err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

func validNodeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: generate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: want a CERTIFICATE block", ErrBadPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse certificate: %w", err)
	}
	return cert, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: want a PRIVATE KEY block", ErrBadPEM)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: private key of type %T cannot sign", k)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

// certPool returns a pool holding the certificates in caPEM.
func certPool(caPEM []byte) (*x509.CertPool, *x509.Certificate, error) {
	ca, err := parseCert(caPEM)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, ca, nil
}

// keyPairWithCA loads a node certificate and key and appends the CA
// certificate to the chain sent to peers, so that pinned joiners can find it.
func keyPairWithCA(certPEM, keyPEM []byte, ca *x509.Certificate) (tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: load node key pair: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: parse node certificate: %w", err)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: node certificate %q is not signed by the given CA: %w", leaf.Subject.CommonName, err)
	}
	pair.Leaf = leaf
	if len(pair.Certificate) == 1 {
		pair.Certificate = append(pair.Certificate, ca.Raw)
	}
	return pair, nil
}

func serverConfig(certPEM, keyPEM, caPEM []byte, auth tls.ClientAuthType) (*tls.Config, error) {
	pool, ca, err := certPool(caPEM)
	if err != nil {
		return nil, err
	}
	pair, err := keyPairWithCA(certPEM, keyPEM, ca)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   auth,
	}, nil
}

// ServerConfig returns the TLS 1.3 configuration of an agent's cluster
// listener: it presents the node certificate (followed by the CA certificate)
// and requires a client certificate that verifies against the CA.
func ServerConfig(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	return serverConfig(certPEM, keyPEM, caPEM, tls.RequireAndVerifyClientCert)
}

// JoinServerConfig is like ServerConfig but for the listener that also serves
// joiners, which have no certificate yet: a client certificate is optional
// and verified against the CA when given. Handlers must call NodeIDFromConn
// and allow only the join operation to peers without a verified certificate.
func JoinServerConfig(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	return serverConfig(certPEM, keyPEM, caPEM, tls.VerifyClientCertIfGiven)
}

// ClientConfig returns the TLS 1.3 configuration an agent uses to call
// another: it presents the node certificate and verifies the server's
// certificate against the CA and against the ServerName (which crypto/tls sets
// from the dialled address when left empty; callers of tls.Client must set it,
// e.g. to the peer's IP).
func ClientConfig(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	pool, ca, err := certPool(caPEM)
	if err != nil {
		return nil, err
	}
	pair, err := keyPairWithCA(certPEM, keyPEM, ca)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
	}, nil
}

// PinnedClientConfig returns the TLS 1.3 configuration of a joiner, which has
// no certificate and knows the cluster only by its CA fingerprint. Standard
// verification is replaced (InsecureSkipVerify) by VerifyConnection, which
// accepts the server only if its chain contains a CA certificate whose SHA-256
// equals caFingerprint and the server's leaf certificate verifies against
// that CA for server authentication at the current time. The server's host
// name is not checked: the pinned CA is the identity. A fingerprint that is
// not 32 bytes never matches.
func PinnedClientConfig(caFingerprint []byte) *tls.Config {
	pin := append([]byte(nil), caFingerprint...)
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // #nosec G402 -- verification is not skipped: VerifyConnection below checks the chain against the pinned CA and always runs (replaced by VerifyConnection below, which always runs)
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs.PeerCertificates, pin, time.Now())
		},
	}
}

// verifyPinned is the real check behind PinnedClientConfig.
func verifyPinned(chain []*x509.Certificate, pin []byte, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: server sent no certificate", ErrFingerprintMismatch)
	}
	var ca *x509.Certificate
	for _, c := range chain[1:] {
		s := sha256.Sum256(c.Raw)
		if len(pin) == sha256.Size && subtle.ConstantTimeCompare(s[:], pin) == 1 {
			ca = c
			break
		}
	}
	if ca == nil {
		return ErrFingerprintMismatch
	}
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return fmt.Errorf("%w: pinned certificate is not a CA", ErrFingerprintMismatch)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("pki: server certificate does not verify against the pinned CA: %w", err)
	}
	return nil
}

// NodeIDFromConn returns the node id (common name) of the peer's certificate,
// only if crypto/tls verified it against the CA (ErrNoVerifiedPeer otherwise).
func NodeIDFromConn(state tls.ConnectionState) (string, error) {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", ErrNoVerifiedPeer
	}
	id := state.VerifiedChains[0][0].Subject.CommonName
	if !validNodeID(id) {
		return "", fmt.Errorf("%w: %q", ErrBadNodeID, id)
	}
	return id, nil
}
