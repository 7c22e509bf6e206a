#!/usr/bin/env bash
# The test command README.md gives (`make test`). Safe to run on a fresh
# Debian machine as root: it installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

export PATH="$PATH:$(go env GOPATH)/bin"

# 0. The tools the tests need (sshd, tmux, systemd-analyze, promtool, etcd,
#    PostgreSQL 15, iproute2): installed when missing (root only).
if [ "$(id -u)" -eq 0 ]; then
	bash .ci/deps.sh
else
	log "not root: not installing test dependencies (see .ci/deps.sh)"
fi

# 1. A private OpenSSH server on 127.0.0.1 for the SSH tests (installs
#    openssh-server and the drbook-test user if missing; needs root).
if [ -z "${DRBOOK_TEST_SSH_ADDR:-}" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		sshd_dir=$(mktemp -d /tmp/drbook-sshd.XXXXXX)
		chmod 0755 "$sshd_dir"
		eval "$(sh .ci/setup-sshd.sh "$sshd_dir")"
		trap 'kill "${DRBOOK_TEST_SSH_PID:-0}" 2>/dev/null || true; rm -rf "$sshd_dir"' EXIT
	else
		log "not root: SSH tests will start their own sshd (openssh-server must be installed)"
	fi
fi

# 2. Static checks.
log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
log "go.mod: no replace, tidy"
if grep -Eq '^[[:space:]]*replace([[:space:]]|\()' go.mod; then
	echo "go.mod has a replace directive: go install MODULE/cmd/drbook@VERSION would not build" >&2
	exit 1
fi
if ! go mod tidy -diff; then
	echo "go mod tidy would change go.mod/go.sum (diff above): run go mod tidy and commit" >&2
	exit 1
fi
log "go vet"
go vet ./...
if ! command -v staticcheck >/dev/null 2>&1; then
	log "installing staticcheck"
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 >&2
fi
log "staticcheck"
staticcheck ./...
log "gosec"
bash .ci/gosec.sh

# 3. Tests (real SQLite, real SSH, real agent processes on loopback).
log "go test"
go test -count=1 -timeout 45m ./...

# 4. Fuzzing: every go test -fuzz target for a bounded time (FUZZTIME each).
log "fuzz"
bash .ci/fuzz.sh
