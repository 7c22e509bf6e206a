package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/melbahja/goph"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError reports a host key that strict host key checking refused. It
// matches ErrUnknownHost or ErrHostKeyMismatch with errors.Is.
type HostKeyError struct {
	// HostPort is the address the key was offered for, in known_hosts form
	// ("[127.0.0.1]:2222", or "host" for port 22).
	HostPort string
	// Key is the key the server offered.
	Key ssh.PublicKey
	// KnownHostsFile is the file that was consulted.
	KnownHostsFile string
	// Known lists the keys known_hosts holds for HostPort (mismatch only).
	Known []knownhosts.KnownKey
	// Err is ErrUnknownHost or ErrHostKeyMismatch.
	Err error
}

// Fingerprint returns the offered key's SHA256 fingerprint.
func (e *HostKeyError) Fingerprint() string { return ssh.FingerprintSHA256(e.Key) }

// Error names the host, the offered key's fingerprint and what to do.
func (e *HostKeyError) Error() string {
	offered := e.Key.Type() + " " + e.Fingerprint()
	if errors.Is(e.Err, ErrHostKeyMismatch) {
		var known []string
		for _, k := range e.Known {
			known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
		}
		return fmt.Sprintf("HOST KEY MISMATCH for %s: the server offered %s but known_hosts has %s. "+
			"Someone may be intercepting the connection; if the node was rebuilt, verify the new fingerprint "+
			"out of band, remove the old line and trust the new key (drbook trust): %v",
			e.HostPort, offered, strings.Join(known, ", "), e.Err)
	}
	return fmt.Sprintf("unknown host %s: it offered %s, which is not in %s. Verify this fingerprint out of band "+
		"(on the node: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add it with drbook trust "+
		"or ssh-keyscan: %v", e.HostPort, offered, e.KnownHostsFile, e.Err)
}

// Unwrap returns the sentinel (ErrUnknownHost or ErrHostKeyMismatch).
func (e *HostKeyError) Unwrap() error { return e.Err }

// strictHostKeyCallback checks keys against knownHostsFile with goph's
// known_hosts callback and turns refusals into *HostKeyError. A missing file
// holds no keys: every host is unknown. It records the offered key in seen.
func strictHostKeyCallback(knownHostsFile string, seen *atomic.Pointer[ssh.PublicKey]) (ssh.HostKeyCallback, error) {
	if knownHostsFile == "" {
		return nil, errors.New("known_hosts file is required (strict host key checking)")
	}
	var check ssh.HostKeyCallback
	if _, err := os.Stat(knownHostsFile); errors.Is(err, os.ErrNotExist) {
		check = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
	} else {
		check, err = goph.KnownHosts(knownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("read known_hosts %s: %w", knownHostsFile, err)
		}
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		seen.Store(&key)
		err := check(hostname, remote, key)
		if err == nil {
			return nil
		}
		hke := &HostKeyError{HostPort: knownhosts.Normalize(hostname), Key: key, KnownHostsFile: knownHostsFile}
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
			hke.Known, hke.Err = keyErr.Want, ErrHostKeyMismatch
		case errors.As(err, &keyErr):
			hke.Err = ErrUnknownHost
		case errors.As(err, &revoked):
			return fmt.Errorf("host key for %s is revoked in %s: %w", hke.HostPort, knownHostsFile, err)
		default:
			return err
		}
		return hke
	}, nil
}

// AppendKnownHost appends a known_hosts line trusting key for hostport
// ("host:port"; written as "[host]:port" unless the port is 22). The file is
// created with mode 0600 if missing.
func AppendKnownHost(path, hostport string, key ssh.PublicKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(hostport)}, key)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- the operator's known_hosts file from the inventory
	if err != nil {
		return fmt.Errorf("append known host: %w", err)
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("append known host %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("append known host %s: %w", path, err)
	}
	return nil
}

// errKeyScanned aborts a handshake once the host key has been captured.
var errKeyScanned = errors.New("host key captured")

// ScanHostKey connects to hostport and returns the host key the server
// offers, without trusting it and without authenticating: the handshake is
// abandoned as soon as the key arrives. Show ssh.FingerprintSHA256 of the
// result to the operator before calling AppendKnownHost.
func ScanHostKey(ctx context.Context, hostport string) (ssh.PublicKey, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("scan host key %s: %w", hostport, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	var key ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: "drbook-keyscan",
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = k
			return errKeyScanned
		},
	}
	_, _, _, err = ssh.NewClientConn(conn, hostport, cfg)
	if key != nil {
		return key, nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("scan host key %s: %w", hostport, ctxErr)
	}
	return nil, fmt.Errorf("scan host key %s: %w", hostport, err)
}
