package transport_test

import (
	"context"
	"testing"

	"github.com/drbook/drbook/steps/transport"
)

// BenchmarkRunTrue measures one command on a reused connection (a new
// session per `true`).
func BenchmarkRunTrue(b *testing.B) {
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			tr := dial(b, s.start(b))
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if code, err := tr.Run(ctx, transport.Command{Line: "true"}); err != nil || code != 0 {
					b.Fatalf("Run = %d, %v", code, err)
				}
			}
		})
	}
}

// BenchmarkDial measures a new connection: TCP, key exchange, host key
// check and public key authentication.
func BenchmarkDial(b *testing.B) {
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			cfg := sshConfig(s.start(b))
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				tr, err := transport.DialSSH(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				_ = tr.Close()
			}
		})
	}
}
