package nodeagent

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent/pki"
)

// TestRemovalRevokesCertificate: deleting a node from the metadata revokes
// the certificate the cluster issued to it, and the raft listener refuses
// that certificate while accepting others.
func TestRemovalRevokesCertificate(t *testing.T) {
	ca, err := pki.NewCA("c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	issue := func(id string) *x509.Certificate {
		certPEM, _, err := ca.Issue(id, []string{"127.0.0.1"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(certPEM)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	gone, kept := issue("n2"), issue("n3")
	a := &Agent{store: &raftStore{fsm: NewFSM(nil)}}
	for i, n := range []NodeInfo{{ID: "n2", CertSHA256: derSHA256(gone.Raw)}, {ID: "n3", CertSHA256: derSHA256(kept.Raw)}} {
		applyAt(a.store.fsm, uint64(i+1), must(encodeJSONCmd(opNodePut, n)))
	}
	conn := func(c *x509.Certificate) tls.ConnectionState {
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	}
	if err := a.refuseRevoked(conn(gone)); err != nil {
		t.Fatalf("member refused: %v", err)
	}
	applyAt(a.store.fsm, 3, must(encodeJSONCmd(opNodeDelete, "n2")))
	if err := a.refuseRevoked(conn(gone)); err == nil {
		t.Fatal("removed node's certificate accepted")
	}
	if err := a.refuseRevoked(conn(kept)); err != nil {
		t.Fatalf("other member refused: %v", err)
	}
	if got := a.store.fsm.Meta().Revoked[derSHA256(gone.Raw)]; got != "n2" {
		t.Fatalf("revoked list: %v", a.store.fsm.Meta().Revoked)
	}
	// A rejoin under the same id gets a new certificate, which is accepted.
	again := issue("n2")
	applyAt(a.store.fsm, 4, must(encodeJSONCmd(opNodePut, NodeInfo{ID: "n2", CertSHA256: derSHA256(again.Raw)})))
	if err := a.refuseRevoked(conn(again)); err != nil {
		t.Fatalf("rejoined node refused: %v", err)
	}
}
