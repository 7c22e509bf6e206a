// Command hang is a test plugin whose hang.forever kind ignores its context
// and never returns (unless its `marker` file exists: then it succeeds).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/drbook/drbook/steps/plugin/sdk"
)

type kind struct{}

func (kind) Info() sdk.KindInfo {
	return sdk.KindInfo{Name: "hang.forever", Params: sdk.Object(sdk.Props{"marker": sdk.String("Succeed if this file exists; else create it and hang.")}, "marker"),
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
	fmt.Fprintln(req.Stdout, "hanging")
	block := make(chan struct{})
	<-block // ignores ctx on purpose
	return sdk.Result{}, nil
}

func main() {
	sdk.Serve(sdk.Info{Name: "hang", Version: "0.0.1"}, kind{})
}
