// Command drbook-plugin-hello is the minimal plugin of the README: one
// kind, hello.say, that greets and reports the target's kernel name, run
// on the target through drbook's own transport.
package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/drbook/drbook/steps/plugin/sdk"
)

type hello struct{}

func (hello) Info() sdk.KindInfo {
	return sdk.KindInfo{
		Name:        "hello.say",
		Description: "Greet someone from the target node.",
		Params:      sdk.Object(sdk.Props{"to": sdk.String("Who to greet.")}, "to"),
		Outputs:     []sdk.Output{{Name: "kernel"}},
		Targets:     sdk.TargetsRequired,
		Idempotent:  true,
	}
}

func (hello) Run(ctx context.Context, req *sdk.Request) (sdk.Result, error) {
	to, err := req.String("to")
	if err != nil {
		return sdk.Result{}, err
	}
	var out strings.Builder
	code, err := req.Target.Run(ctx, "uname -s", nil, &out, req.Stderr)
	if err != nil {
		return sdk.Result{}, err // transport failure
	}
	if code != 0 {
		return sdk.Result{}, &sdk.ExitError{Code: code}
	}
	kernel := strings.TrimSpace(out.String())
	fmt.Fprintf(req.Stdout, "hello %s from %s (%s)\n", to, req.Target.Name, kernel)
	return sdk.Result{Outputs: map[string]string{"kernel": kernel}}, nil
}

func main() {
	sdk.Serve(sdk.Info{Name: "hello", Version: "0.1.0"}, hello{})
}
