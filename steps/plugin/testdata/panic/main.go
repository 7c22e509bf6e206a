// Command panic is a test plugin whose kinds panic: panic.inkind in the
// kind's Run (the SDK recovers), panic.goroutine in a goroutine (the
// process dies). With a `marker` file present they succeed instead, so a
// resumed run can finish.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/drbook/drbook/steps/plugin/sdk"
)

type kind struct{ goroutine bool }

func (k kind) Info() sdk.KindInfo {
	name := "panic.inkind"
	if k.goroutine {
		name = "panic.goroutine"
	}
	return sdk.KindInfo{Name: name, Params: sdk.Object(sdk.Props{"marker": sdk.String("Succeed if this file exists; else create it and panic.")}, "marker"),
		Targets: sdk.TargetsOptional}
}

func (k kind) Run(ctx context.Context, req *sdk.Request) (sdk.Result, error) {
	marker, _ := req.String("marker")
	if _, err := os.Stat(marker); err == nil {
		fmt.Fprintln(req.Stdout, "fine this time")
		return sdk.Result{}, nil
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return sdk.Result{}, err
	}
	fmt.Fprintln(req.Stdout, "about to panic")
	if k.goroutine {
		go func() { panic("boom in a goroutine") }()
		<-ctx.Done() // the panic ends the process first
		return sdk.Result{}, ctx.Err()
	}
	panic("boom")
}

func main() {
	sdk.Serve(sdk.Info{Name: "panic", Version: "0.0.1"}, kind{}, kind{goroutine: true})
}
