package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

var now = time.Now()

func mustCA(t testing.TB, cluster string) *CA {
	t.Helper()
	ca, err := NewCA(cluster, now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

type node struct{ cert, key []byte }

func mustIssue(t testing.TB, ca *CA, id string, at time.Time) node {
	t.Helper()
	c, k, err := ca.Issue(id, []string{"127.0.0.1", "localhost"}, at)
	if err != nil {
		t.Fatal(err)
	}
	return node{c, k}
}

func TestNewCA(t *testing.T) {
	ca := mustCA(t, "c1")
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatal("CA certificate is not a CA")
	}
	if got := ca.Cert.NotAfter.Sub(now); got < CAValidity-time.Minute || got > CAValidity {
		t.Fatalf("CA validity %s", got)
	}
	fp, err := Fingerprint(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fp, ca.Fingerprint()) || len(fp) != 32 {
		t.Fatal("Fingerprint and CA.Fingerprint disagree")
	}
	if bytes.Equal(fp, mustCA(t, "c1").Fingerprint()) {
		t.Fatal("two CAs share a fingerprint")
	}
	back, err := LoadCA(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Fingerprint(), fp) {
		t.Fatal("LoadCA changed the fingerprint")
	}
	// A reloaded CA issues certificates that chain to the original.
	n := mustIssue(t, back, "node-1", now)
	if _, err := ServerConfig(n.cert, n.key, ca.CertPEM); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCAErrors(t *testing.T) {
	ca := mustCA(t, "c1")
	other := mustCA(t, "c2")
	leaf := mustIssue(t, ca, "node-1", now)
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      error
	}{
		{"leaf is not a CA", leaf.cert, leaf.key, ErrNotCA},
		{"key of another CA", ca.CertPEM, other.KeyPEM, ErrNotCA},
		{"garbage cert", []byte("not pem"), ca.KeyPEM, ErrBadPEM},
		{"key in cert slot", ca.KeyPEM, ca.KeyPEM, ErrBadPEM},
		{"cert in key slot", ca.CertPEM, ca.CertPEM, ErrBadPEM},
		{"empty key", ca.CertPEM, nil, ErrBadPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadCA(tc.cert, tc.key); !errors.Is(err, tc.want) {
				t.Fatalf("LoadCA err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := Fingerprint([]byte("x")); !errors.Is(err, ErrBadPEM) {
		t.Fatalf("Fingerprint(garbage) = %v", err)
	}
}

func TestIssue(t *testing.T) {
	ca := mustCA(t, "c1")
	n := mustIssue(t, ca, "node-1", now)
	cert, err := parseCert(n.cert)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "node-1" || cert.IsCA {
		t.Fatalf("unexpected subject %v / IsCA %v", cert.Subject, cert.IsCA)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("IP SANs %v", cert.IPAddresses)
	}
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "localhost" {
		t.Fatalf("DNS SANs %v", cert.DNSNames)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: "localhost"}); err != nil {
			t.Fatalf("usage %v: %v", usage, err)
		}
	}
	// A node certificate never outlives its CA.
	late := mustIssue(t, ca, "node-2", now.Add(CAValidity-24*time.Hour))
	lc, _ := parseCert(late.cert)
	if lc.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatalf("node cert expires %s after CA %s", lc.NotAfter, ca.Cert.NotAfter)
	}
	for _, bad := range []string{"", "node 1", "node/1", "ä", string(make([]byte, 65))} {
		if _, _, err := ca.Issue(bad, nil, now); !errors.Is(err, ErrBadNodeID) {
			t.Errorf("Issue(%q) err = %v, want ErrBadNodeID", bad, err)
		}
	}
}

func TestConfigsRejectForeignPair(t *testing.T) {
	ca := mustCA(t, "c1")
	other := mustCA(t, "c2")
	n := mustIssue(t, other, "node-1", now)
	if _, err := ServerConfig(n.cert, n.key, ca.CertPEM); err == nil {
		t.Fatal("ServerConfig accepted a certificate of another CA")
	}
	if _, err := ClientConfig(n.cert, n.key, ca.CertPEM); err == nil {
		t.Fatal("ClientConfig accepted a certificate of another CA")
	}
	n2 := mustIssue(t, ca, "node-2", now)
	if _, err := ServerConfig(n2.cert, n.key, ca.CertPEM); err == nil {
		t.Fatal("ServerConfig accepted a key that does not match the certificate")
	}
}

// handshake runs one TLS handshake over loopback TCP and returns both sides'
// connection states and errors.
func handshake(t *testing.T, server, client *tls.Config, serverName string) (srv, cli tls.ConnectionState, srvErr, cliErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		err = tc.HandshakeContext(ctx)
		if err == nil {
			// TLS 1.3 client certificates are checked after the client's
			// handshake returns: read until the client closes.
			_, err = tc.Read(make([]byte, 1))
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		done <- result{tc.ConnectionState(), err}
	}()
	d := tls.Dialer{Config: client}
	if serverName != "" {
		cfg := client.Clone()
		cfg.ServerName = serverName
		d.Config = cfg
	}
	c, cliErr := d.DialContext(ctx, "tcp", ln.Addr().String())
	if cliErr == nil {
		tc := c.(*tls.Conn)
		cli = tc.ConnectionState()
		// Give the server a chance to reject our certificate, then close.
		_, rerr := tc.Write([]byte{})
		if rerr != nil {
			cliErr = rerr
		}
		c.Close()
	}
	r := <-done
	return r.state, cli, r.err, cliErr
}

func TestMutualTLS(t *testing.T) {
	ca := mustCA(t, "c1")
	n1 := mustIssue(t, ca, "node-1", now)
	n2 := mustIssue(t, ca, "node-2", now)
	scfg, err := ServerConfig(n1.cert, n1.key, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := ClientConfig(n2.cert, n2.key, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv, cli, serr, cerr := handshake(t, scfg, ccfg, "")
	if serr != nil || cerr != nil {
		t.Fatalf("handshake: server %v, client %v", serr, cerr)
	}
	if srv.Version != tls.VersionTLS13 {
		t.Fatalf("negotiated version %x", srv.Version)
	}
	if id, err := NodeIDFromConn(srv); err != nil || id != "node-2" {
		t.Fatalf("server sees peer %q, %v; want node-2", id, err)
	}
	if id, err := NodeIDFromConn(cli); err != nil || id != "node-1" {
		t.Fatalf("client sees peer %q, %v; want node-1", id, err)
	}
}

func TestMutualTLSRejections(t *testing.T) {
	ca := mustCA(t, "c1")
	evil := mustCA(t, "c1")
	n1 := mustIssue(t, ca, "node-1", now)
	n2 := mustIssue(t, ca, "node-2", now)
	e2 := mustIssue(t, evil, "node-2", now)
	expired := mustIssue(t, ca, "node-1", now.Add(-3*NodeValidity))
	mustServer := func(n node, c *CA) *tls.Config {
		cfg, err := ServerConfig(n.cert, n.key, c.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	mustClient := func(n node, c *CA) *tls.Config {
		cfg, err := ClientConfig(n.cert, n.key, c.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tls12 := func(c *tls.Config) *tls.Config {
		c = c.Clone()
		c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		return c
	}
	// A client of the evil CA that trusts the real CA (so only the server
	// side can refuse it).
	evilClient := mustClient(e2, evil)
	evilClient.RootCAs = mustClient(n2, ca).RootCAs
	for _, tc := range []struct {
		name       string
		server     *tls.Config
		client     *tls.Config
		serverName string
	}{
		{"client cert from another CA", mustServer(n1, ca), evilClient, ""},
		{"server cert from another CA", mustServer(e2, evil), mustClient(n1, ca), ""},
		{"client without certificate", mustServer(n1, ca), &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: mustClient(n2, ca).RootCAs}, ""},
		{"expired server cert", mustServer(expired, ca), mustClient(n2, ca), ""},
		{"expired client cert", mustServer(n2, ca), mustClient(expired, ca), ""},
		{"wrong server name", mustServer(n1, ca), mustClient(n2, ca), "node-9.example"},
		{"TLS 1.2 client", mustServer(n1, ca), tls12(mustClient(n2, ca)), ""},
		{"TLS 1.2 server", tls12(mustServer(n1, ca)), mustClient(n2, ca), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, serr, cerr := handshake(t, tc.server, tc.client, tc.serverName)
			if serr == nil && cerr == nil {
				t.Fatal("handshake succeeded")
			}
			t.Logf("server: %v; client: %v", serr, cerr)
		})
	}
}

func TestPinnedJoin(t *testing.T) {
	ca := mustCA(t, "c1")
	n1 := mustIssue(t, ca, "node-1", now)
	jcfg, err := JoinServerConfig(n1.cert, n1.key, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv, _, serr, cerr := handshake(t, jcfg, PinnedClientConfig(ca.Fingerprint()), "")
	if serr != nil || cerr != nil {
		t.Fatalf("pinned join handshake: server %v, client %v", serr, cerr)
	}
	if _, err := NodeIDFromConn(srv); !errors.Is(err, ErrNoVerifiedPeer) {
		t.Fatalf("joiner without certificate got identity: %v", err)
	}
	// A member with a certificate is still identified on the join listener.
	n2 := mustIssue(t, ca, "node-2", now)
	ccfg, err := ClientConfig(n2.cert, n2.key, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv, _, serr, cerr = handshake(t, jcfg, ccfg, "")
	if serr != nil || cerr != nil {
		t.Fatalf("member on join listener: server %v, client %v", serr, cerr)
	}
	if id, err := NodeIDFromConn(srv); err != nil || id != "node-2" {
		t.Fatalf("member identity %q, %v", id, err)
	}
}

func TestPinnedRejections(t *testing.T) {
	ca := mustCA(t, "c1")
	evil := mustCA(t, "c1")
	n1 := mustIssue(t, ca, "node-1", now)
	e1 := mustIssue(t, evil, "node-1", now)
	expired := mustIssue(t, ca, "node-1", now.Add(-3*NodeValidity))
	join := func(n node, c *CA) *tls.Config {
		cfg, err := JoinServerConfig(n.cert, n.key, c.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	// An impostor that sends the real CA certificate after its own leaf.
	impostor := join(e1, evil)
	impostor.Certificates[0].Certificate[1] = ca.Cert.Raw
	// A server that presents the CA certificate itself as its leaf (no
	// second certificate in the chain).
	caAsLeaf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{
		Certificate: [][]byte{ca.Cert.Raw}, PrivateKey: ca.Key,
	}}}
	tls12 := join(n1, ca)
	tls12.MaxVersion = tls.VersionTLS12
	tls12.MinVersion = tls.VersionTLS12
	for _, tc := range []struct {
		name    string
		server  *tls.Config
		pin     []byte
		wantPin bool
	}{
		{"wrong fingerprint", join(n1, ca), evil.Fingerprint(), true},
		{"empty fingerprint", join(n1, ca), nil, true},
		{"short fingerprint", join(n1, ca), ca.Fingerprint()[:16], true},
		{"server of another CA", join(e1, evil), ca.Fingerprint(), true},
		{"impostor sending the real CA", impostor, ca.Fingerprint(), false},
		{"CA certificate as leaf", caAsLeaf, ca.Fingerprint(), true},
		{"expired server cert", join(expired, ca), ca.Fingerprint(), false},
		{"TLS 1.2 server", tls12, ca.Fingerprint(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, serr, cerr := handshake(t, tc.server, PinnedClientConfig(tc.pin), "")
			if cerr == nil {
				t.Fatalf("pinned client accepted the server (server err %v)", serr)
			}
			t.Logf("client: %v", cerr)
			if tc.wantPin && !errors.Is(cerr, ErrFingerprintMismatch) {
				t.Fatalf("client err = %v, want ErrFingerprintMismatch", cerr)
			}
		})
	}
}

func TestVerifyPinnedNonCA(t *testing.T) {
	// A pinned certificate that is not a CA is refused even if it matches.
	ca := mustCA(t, "c1")
	n1 := mustIssue(t, ca, "node-1", now)
	leaf, _ := parseCert(n1.cert)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: leaf.SerialNumber, Subject: pkix.Name{CommonName: "x"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := x509.ParseCertificate(der)
	fp, _ := Fingerprint(pemBlock("CERTIFICATE", der))
	if err := verifyPinned([]*x509.Certificate{leaf, self}, fp, now); !errors.Is(err, ErrFingerprintMismatch) {
		t.Fatalf("non-CA pin accepted: %v", err)
	}
	if err := verifyPinned(nil, fp, now); !errors.Is(err, ErrFingerprintMismatch) {
		t.Fatalf("empty chain accepted: %v", err)
	}
}

func TestNodeIDFromConnUnverified(t *testing.T) {
	ca := mustCA(t, "c1")
	n1 := mustIssue(t, ca, "node-1", now)
	leaf, _ := parseCert(n1.cert)
	// Peer certificates that were not verified do not give an identity.
	if _, err := NodeIDFromConn(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); !errors.Is(err, ErrNoVerifiedPeer) {
		t.Fatalf("unverified peer: %v", err)
	}
}
