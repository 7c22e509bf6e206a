package nodeagent

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStreamLayer is a raft.StreamLayer over mutual TLS 1.3: every raft
// connection is authenticated in both directions by the cluster CA.
type tlsStreamLayer struct {
	net.Listener
	client *tls.Config
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSStreamLayer listens on addr with the server config and dials with
// the client config.
func newTLSStreamLayer(addr string, server, client *tls.Config) (*tlsStreamLayer, error) {
	ln, err := tls.Listen("tcp", addr, server)
	if err != nil {
		return nil, fmt.Errorf("listen raft %s: %w", addr, err)
	}
	return &tlsStreamLayer{Listener: ln, client: client}, nil
}

// Dial opens a mutual-TLS connection to a raft peer.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", string(address), s.client)
	if err != nil {
		return nil, fmt.Errorf("dial raft %s: %w", address, err)
	}
	return conn, nil
}
