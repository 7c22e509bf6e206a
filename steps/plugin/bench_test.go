package plugin_test

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/plugin"
	"github.com/drbook/drbook/steps/transport"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

// BenchmarkPluginStart: pin check + process start + handshake + Describe,
// then Close (kill), per iteration.
func BenchmarkPluginStart(b *testing.B) {
	p := pin(b, bin("testkit"))
	for b.Loop() {
		m := plugin.NewManager(plugin.Config{})
		if _, err := m.Load(context.Background(), p); err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}

// BenchmarkStep compares one step that runs `true` on the target: the
// built-in shell kind against a plugin kind that runs it through the broker
// (host service over the runner's transport), over the local transport and
// over loopback SSH. The difference is the per-step plugin overhead.
func BenchmarkStep(b *testing.B) {
	_, reg, _ := load(b, "testkit")
	node := &runbooks.Node{Name: "node1", Env: map[string]string{}}
	lab := sshtest.StartLab(b)
	ssh, err := transport.DialSSH(context.Background(), transport.SSHConfig{Name: "node1", Host: lab.Host, Port: lab.Port, User: lab.User,
		IdentityFile: lab.IdentityFile, KnownHostsFile: lab.KnownHostsFile})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ssh.Close() })
	transports := []struct {
		name string
		tr   transport.Transport
	}{{"local", &transport.Local{BaseEnv: os.Environ()}}, {"ssh", ssh}}
	kinds := []struct {
		name, kind string
	}{{"builtin-shell", "shell"}, {"plugin-broker", "testkit.run"}}
	for _, tr := range transports {
		for _, k := range kinds {
			b.Run(tr.name+"/"+k.name, func(b *testing.B) {
				kind, ok := reg.Get(k.kind)
				if !ok {
					b.Fatalf("no kind %s", k.kind)
				}
				step := &runbooks.Step{ID: "s", Run: k.kind}
				for b.Loop() {
					x := &steps.Exec{Step: step, Params: map[string]any{"command": "true"}, Target: node, Transport: tr.tr,
						Stdout: io.Discard, Stderr: io.Discard}
					if _, err := kind.Run(context.Background(), x); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPluginNoop is the floor of a plugin step: a kind that runs no
// command (one Run stream round trip).
func BenchmarkPluginNoop(b *testing.B) {
	_, reg, _ := load(b, "testkit")
	kind, _ := reg.Get("testkit.secret")
	step := &runbooks.Step{ID: "s", Run: "testkit.secret"}
	for b.Loop() {
		x := &steps.Exec{Step: step, Params: map[string]any{"value": "v"}, Stdout: io.Discard, Stderr: io.Discard}
		if _, err := kind.Run(context.Background(), x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPinHash is the share of a start spent checking the pin (SHA-256
// of the whole executable).
func BenchmarkPinHash(b *testing.B) {
	path := bin("testkit")
	for b.Loop() {
		if _, err := plugin.FileSHA256(path); err != nil {
			b.Fatal(err)
		}
	}
}
