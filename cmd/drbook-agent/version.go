package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/buildinfo"
)

func newVersionCmd(o *opts) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the agent's version, commit, build date and Go version",
		Long: `Print which build of drbook-agent this is: its semantic version, the git
commit it was built from, the build date (stamped by make build / make release)
and the Go toolchain. It does not contact the daemon. With --output json:
{"version","commit","modified","commit_time","build_date","go_version","platform","source"}
(source is "ldflags" when the build stamped the values, "buildinfo" when they
come from the Go toolchain's record; unknown values are "").`,
		Example: `  drbook-agent version
  drbook-agent version -o json`,
		Args: exactArgs(0),
		RunE: func(_ *cobra.Command, _ []string) error {
			in := buildinfo.Get()
			return o.print(in, func(w io.Writer) { _, _ = io.WriteString(w, in.Text("drbook-agent")) })
		},
	}
}
