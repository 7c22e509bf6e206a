// Command crash is a test plugin whose crash.exit kind exits the process in
// the middle of a step (unless its `marker` file exists: then it succeeds).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/drbook/drbook/steps/plugin/sdk"
)

type kind struct{}

func (kind) Info() sdk.KindInfo {
	return sdk.KindInfo{Name: "crash.exit", Params: sdk.Object(sdk.Props{"marker": sdk.String("Succeed if this file exists; else create it and exit.")}, "marker"),
		Targets: sdk.TargetsOptional}
}

func (kind) Run(_ context.Context, req *sdk.Request) (sdk.Result, error) {
	marker, _ := req.String("marker")
	if _, err := os.Stat(marker); err == nil {
		fmt.Fprintln(req.Stdout, "fine this time")
		return sdk.Result{}, nil
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return sdk.Result{}, err
	}
	fmt.Fprintln(req.Stdout, "exiting mid-step")
	req.Logger.Error("crash fixture: exiting with status 7")
	os.Exit(7)
	return sdk.Result{}, nil
}

func main() {
	sdk.Serve(sdk.Info{Name: "crash", Version: "0.0.1"}, kind{})
}
