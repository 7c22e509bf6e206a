// Command badversion is a test plugin that answers the handshake with a
// protocol version drbook does not speak.
package main

import (
	plugin "github.com/hashicorp/go-plugin"

	"github.com/drbook/drbook/steps/plugin/internal/wire"
)

func main() {
	hs := wire.Handshake()
	hs.ProtocolVersion = wire.ProtocolVersion + 1
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		Plugins:         plugin.PluginSet{},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
