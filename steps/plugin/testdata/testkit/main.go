// Command testkit is a test plugin: testkit.run runs a command on the
// step's target (or on another node) through the broker; testkit.secret
// produces a secret output.
package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/drbook/drbook/steps/plugin/sdk"
)

type runKind struct{}

func (runKind) Info() sdk.KindInfo {
	return sdk.KindInfo{
		Name: "testkit.run",
		Params: sdk.Object(sdk.Props{
			"command": sdk.String("Command line."),
			"node":    sdk.String("Run on this node instead of the target."),
			"env":     map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
		}, "command"),
		Outputs:       []sdk.Output{{Name: "out"}},
		Targets:       sdk.TargetsRequired,
		SummaryParams: []string{"command"},
	}
}

func (runKind) Run(ctx context.Context, req *sdk.Request) (sdk.Result, error) {
	line, err := req.String("command")
	if err != nil {
		return sdk.Result{}, err
	}
	t := req.Target
	if n, _ := req.String("node"); n != "" {
		t = req.Node(n)
	}
	env := map[string]string{}
	if m, ok := req.Params["env"].(map[string]any); ok {
		for k, v := range m {
			env[k] = fmt.Sprint(v)
		}
	}
	var out strings.Builder
	code, err := t.Run(ctx, line, env, &out, req.Stderr)
	if err != nil {
		return sdk.Result{}, err
	}
	fmt.Fprint(req.Stdout, out.String())
	if code != 0 {
		return sdk.Result{}, &sdk.ExitError{Code: code}
	}
	return sdk.Result{Outputs: map[string]string{"out": strings.TrimSpace(out.String())}}, nil
}

type secretKind struct{}

func (secretKind) Info() sdk.KindInfo {
	return sdk.KindInfo{Name: "testkit.secret", Params: sdk.Object(sdk.Props{"value": sdk.String("The secret.")}, "value"),
		Outputs: []sdk.Output{{Name: "token", Secret: true}}, Targets: sdk.TargetsNone}
}

func (secretKind) Run(_ context.Context, req *sdk.Request) (sdk.Result, error) {
	v, _ := req.String("value")
	fmt.Fprintf(req.Stdout, "the token is %s\n", v)
	return sdk.Result{Outputs: map[string]string{"token": v}}, nil
}

func main() {
	sdk.Serve(sdk.Info{Name: "testkit", Version: "0.0.1"}, runKind{}, secretKind{})
}
