package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/buildinfo"
)

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print drbook's version, commit, build date and Go version",
		Long: `Print which build of drbook this is: its semantic version, the git commit it
was built from, the build date (stamped by make build / make release) and the
Go toolchain. With --output json the fields are version, commit, modified,
commit_time, build_date, go_version, platform and source ("ldflags" when the
build stamped them, "buildinfo" when they come from the Go toolchain's record;
unknown values are "").`,
		Example: `  drbook version
  drbook version -o json | jq -r .commit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd.OutOrStdout(), a.output)
		},
	}
}

func printVersion(w io.Writer, output string) error {
	in := buildinfo.Get()
	if output == "json" {
		return writeJSON(w, in)
	}
	_, err := io.WriteString(w, in.Text("drbook"))
	return err
}
