// Package wire is the protocol between drbook and its step plugins: the
// go-plugin handshake, two hand-written gRPC services and the JSON messages
// they carry inside google.protobuf.BytesValue payloads (no generated code).
//
// The Plugin service is served by the plugin: Describe announces its step
// kinds; Run executes one step and streams its output, ending with a result.
// The Host service is served by drbook through go-plugin's broker: Exec runs
// a command on the step's target (or another inventory node) over the
// runner's own transport and streams the output back.
//
// Changing any message incompatibly means bumping ProtocolVersion.
package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Handshake constants. ProtocolVersion is what both sides must agree on.
const (
	ProtocolVersion  = 1
	MagicCookieKey   = "DRBOOK_PLUGIN"
	MagicCookieValue = "drbook-step-plugin-9f3c2a71"
	// PluginName is the single entry of the go-plugin plugin set.
	PluginName = "steps"
)

// Handshake returns the go-plugin handshake for ProtocolVersion.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{ProtocolVersion: ProtocolVersion, MagicCookieKey: MagicCookieKey, MagicCookieValue: MagicCookieValue}
}

// DescribeRequest starts a plugin's session with drbook: the plugin
// connects to the Host service (broker id HostService) before answering,
// since the broker forgets an offered service nobody dials within seconds.
type DescribeRequest struct {
	HostService uint32 `json:"host_service"`
}

// Manifest is what Describe returns.
type Manifest struct {
	Name    string     `json:"name"`
	Version string     `json:"version"`
	Kinds   []KindInfo `json:"kinds"`
}

// KindInfo describes one step kind a plugin provides.
type KindInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Params is the JSON Schema (drbook's subset) of the `with:` mapping.
	Params  map[string]any `json:"params,omitempty"`
	Outputs []Output       `json:"outputs,omitempty"`
	// Targets is "required", "optional" or "none".
	Targets    string `json:"targets,omitempty"`
	Idempotent bool   `json:"idempotent,omitempty"`
	// SummaryParams are shown in the plan and confirmations; lint refuses
	// secrets in them.
	SummaryParams []string `json:"summary_params,omitempty"`
}

// Output is one output a kind produces.
type Output struct {
	Name   string `json:"name"`
	Secret bool   `json:"secret,omitempty"`
}

// Node is the step's target as the plugin sees it (no environment: it may
// hold secrets, and the host adds it to every command itself).
type Node struct {
	Name   string            `json:"name"`
	Host   string            `json:"host,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// RunRequest asks the plugin to run one step.
type RunRequest struct {
	Kind    string         `json:"kind"`
	RunID   string         `json:"run_id"`
	StepID  string         `json:"step_id"`
	Attempt int            `json:"attempt"`
	Params  map[string]any `json:"params,omitempty"`
	Target  *Node          `json:"target,omitempty"`
	// HostService is the broker id of the Host service; Session names this
	// step to it.
	HostService uint32 `json:"host_service"`
	Session     string `json:"session"`
}

// Error kinds a step result may carry.
const (
	ErrorParams  = "params"  // bad parameters
	ErrorExit    = "exit"    // a command exited non-zero (ExitCode)
	ErrorTimeout = "timeout" // an expectation never held
)

// RunEvent is one message of the Run stream: output, or the final result.
type RunEvent struct {
	Stdout []byte  `json:"stdout,omitempty"`
	Stderr []byte  `json:"stderr,omitempty"`
	Result *Result `json:"result,omitempty"`
}

// Result ends a step.
type Result struct {
	ExitCode int               `json:"exit_code"`
	Outputs  map[string]string `json:"outputs,omitempty"`
	Secret   []string          `json:"secret,omitempty"`
	Message  string            `json:"message,omitempty"`
	// Error is set when the step failed; ErrorKind classifies it.
	Error     string `json:"error,omitempty"`
	ErrorKind string `json:"error_kind,omitempty"`
}

// ExecRequest asks the host to run a command line on a node.
type ExecRequest struct {
	Session string `json:"session"`
	// Node is "" for the step's own target.
	Node string            `json:"node,omitempty"`
	Line string            `json:"line"`
	Env  map[string]string `json:"env,omitempty"`
}

// ExecEvent is one message of the Exec stream: output, or the exit status.
type ExecEvent struct {
	Stdout []byte `json:"stdout,omitempty"`
	Stderr []byte `json:"stderr,omitempty"`
	Exit   *int   `json:"exit,omitempty"`
	// Error is a transport failure; NotStarted says the command surely did
	// not run.
	Error      string `json:"error,omitempty"`
	NotStarted bool   `json:"not_started,omitempty"`
}

// Encode wraps a message as JSON in a BytesValue.
func Encode(v any) (*wrapperspb.BytesValue, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return wrapperspb.Bytes(b), nil
}

// MaxManifestBytes bounds a plugin's Describe answer (its manifest with every
// kind's parameter schema): a larger answer is refused by gRPC before it is
// decoded.
const MaxManifestBytes = 1 << 20

// Decode reads a JSON message out of a BytesValue.
func Decode(b *wrapperspb.BytesValue, v any) error {
	if err := json.Unmarshal(b.GetValue(), v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}

// Service and method names.
const (
	PluginService = "drbook.plugin.v1.Plugin"
	HostService   = "drbook.plugin.v1.Host"

	MethodDescribe = "/" + PluginService + "/Describe"
	MethodRun      = "/" + PluginService + "/Run"
	MethodExec     = "/" + HostService + "/Exec"
)

// PluginServer is implemented by the plugin.
type PluginServer interface {
	Describe(ctx context.Context, req *DescribeRequest) (*Manifest, error)
	// Run runs one step, sending output events; the returned result ends it.
	Run(ctx context.Context, req *RunRequest, send func(RunEvent) error) (*Result, error)
}

// HostServer is implemented by drbook.
type HostServer interface {
	// Exec runs a command, sending output events; it returns the final
	// event: the exit status, or the transport error.
	Exec(ctx context.Context, req *ExecRequest, send func(ExecEvent) error) ExecEvent
}

// RunStream is the server-streaming descriptor of Plugin.Run.
var runStream = grpc.StreamDesc{StreamName: "Run", ServerStreams: true}

// execStream is the server-streaming descriptor of Host.Exec.
var execStream = grpc.StreamDesc{StreamName: "Exec", ServerStreams: true}

// RegisterPluginServer registers the Plugin service on s.
func RegisterPluginServer(s *grpc.Server, impl PluginServer) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: PluginService,
		HandlerType: (*PluginServer)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Describe",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.BytesValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				var req DescribeRequest
				if err := Decode(in, &req); err != nil {
					return nil, err
				}
				m, err := srv.(PluginServer).Describe(ctx, &req)
				if err != nil {
					return nil, err
				}
				return Encode(m)
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    runStream.StreamName,
			ServerStreams: true,
			Handler: func(srv any, stream grpc.ServerStream) error {
				in := new(wrapperspb.BytesValue)
				if err := stream.RecvMsg(in); err != nil {
					return err
				}
				var req RunRequest
				if err := Decode(in, &req); err != nil {
					return err
				}
				send := func(ev RunEvent) error {
					b, err := Encode(ev)
					if err != nil {
						return err
					}
					return stream.SendMsg(b)
				}
				res, err := srv.(PluginServer).Run(stream.Context(), &req, send)
				if err != nil {
					return err
				}
				return send(RunEvent{Result: res})
			},
		}},
	}, impl)
}

// RegisterHostServer registers the Host service on s.
func RegisterHostServer(s *grpc.Server, impl HostServer) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: HostService,
		HandlerType: (*HostServer)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    execStream.StreamName,
			ServerStreams: true,
			Handler: func(srv any, stream grpc.ServerStream) error {
				in := new(wrapperspb.BytesValue)
				if err := stream.RecvMsg(in); err != nil {
					return err
				}
				var req ExecRequest
				if err := Decode(in, &req); err != nil {
					return err
				}
				send := func(ev ExecEvent) error {
					b, err := Encode(ev)
					if err != nil {
						return err
					}
					return stream.SendMsg(b)
				}
				return send(srv.(HostServer).Exec(stream.Context(), &req, send))
			},
		}},
	}, impl)
}

// Describe calls Plugin.Describe.
func Describe(ctx context.Context, conn grpc.ClientConnInterface, req *DescribeRequest) (*Manifest, error) {
	in, err := Encode(req)
	if err != nil {
		return nil, err
	}
	out := new(wrapperspb.BytesValue)
	if err := conn.Invoke(ctx, MethodDescribe, in, out, grpc.MaxCallRecvMsgSize(MaxManifestBytes)); err != nil {
		return nil, err
	}
	var m Manifest
	if err := Decode(out, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Run calls Plugin.Run, handing each output event to onEvent, and returns
// the final result.
func Run(ctx context.Context, conn grpc.ClientConnInterface, req *RunRequest, onEvent func(RunEvent)) (*Result, error) {
	var res *Result
	err := serverStream(ctx, conn, &runStream, MethodRun, req, func(b *wrapperspb.BytesValue) error {
		var ev RunEvent
		if err := Decode(b, &ev); err != nil {
			return err
		}
		if ev.Result != nil {
			res = ev.Result
			return nil
		}
		onEvent(ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("plugin ended the step without a result")
	}
	return res, nil
}

// Exec calls Host.Exec, handing each output event to onEvent, and returns
// the final event (exit status or transport error).
func Exec(ctx context.Context, conn grpc.ClientConnInterface, req *ExecRequest, onEvent func(ExecEvent)) (ExecEvent, error) {
	var last ExecEvent
	done := false
	err := serverStream(ctx, conn, &execStream, MethodExec, req, func(b *wrapperspb.BytesValue) error {
		var ev ExecEvent
		if err := Decode(b, &ev); err != nil {
			return err
		}
		if ev.Exit != nil || ev.Error != "" {
			last, done = ev, true
			return nil
		}
		onEvent(ev)
		return nil
	})
	if err != nil {
		return ExecEvent{}, err
	}
	if !done {
		return ExecEvent{}, fmt.Errorf("host ended the command without an exit status")
	}
	return last, nil
}

func serverStream(ctx context.Context, conn grpc.ClientConnInterface, desc *grpc.StreamDesc, method string, req any, recv func(*wrapperspb.BytesValue) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := conn.NewStream(ctx, desc, method)
	if err != nil {
		return err
	}
	in, err := Encode(req)
	if err != nil {
		return err
	}
	if err := st.SendMsg(in); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for {
		b := new(wrapperspb.BytesValue)
		err := st.RecvMsg(b)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := recv(b); err != nil {
			return err
		}
	}
}
