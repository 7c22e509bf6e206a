#!/bin/sh
# Measures what one step costs in a whole headless `drbook run` (durable
# checkpoints, one OpenSSH node on loopback) next to the floor: a bare SSH
# session running `true` on an open connection. Needs openssh-server
# (/usr/sbin/sshd). Prints margin-ms/step, floor-ms/session,
# above-floor-ms/step and startup-ms (process start to first step).
# Usage: bench/steps.sh [-count N]
set -eu
cd "$(dirname "$0")/.."
exec go test ./cmd/drbook -run '^$' -bench '^BenchmarkStepCost$' -benchtime 1x -timeout 20m "$@"
