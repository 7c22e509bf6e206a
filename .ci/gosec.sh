#!/usr/bin/env bash
# gosec over drbook's packages. Every remaining finding is either fixed or
# carries a `// #nosec Gxxx -- reason` comment at its line. Exceptions
# that are not per-line are listed here with their reason.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"

# v2.22.10 builds with Go 1.26; later releases need modules the proxy no
# longer serves (github.com/pb33f/go-yaml).
GOSEC_VERSION=${GOSEC_VERSION:-v2.22.10}
if ! command -v gosec >/dev/null 2>&1; then
	echo "== installing gosec $GOSEC_VERSION" >&2
	(cd / && GOFLAGS= go install "github.com/securego/gosec/v2/cmd/gosec@$GOSEC_VERSION") >&2
fi

# Packages checked.
packages=(
	./cmd/drbook/...
	./runbooks/...
	./state/...
	./steps
	./steps/agent/...
	./steps/transport/...
	./nodeagent/seal/...
	./nodeagent/token/...
	./nodeagent/pki/...
	./nodeagent/backup/...
	./nodeagent/lab/...
	./nodeagent/labssh/...
)
# Not yet checked (their authors are still changing them; findings reported
# to the lead, see THREATS.md "Open findings"):
#   ./nodeagent (root package), ./cmd/drbook-agent, ./tui/...,
#   ./steps/plugin/..., ./cmd/drbook-plugin-file-sync, ./cmd/drbook-plugin-http-wait
#
# Rule excluded everywhere:
#   G104 (unchecked error): it flags every deferred Close/Remove on cleanup
#   and error paths, where the first error is already being returned; errors
#   that matter are checked by go vet and staticcheck in .ci/test.sh, and
#   `_ =` marks deliberate drops in new code.
gosec -quiet -fmt text -exclude=G104 -tests=false "${packages[@]}"
echo "== gosec: clean" >&2
