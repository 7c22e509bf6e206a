#!/usr/bin/env bash
# Write throughput of a 3-node drbook-agent cluster vs a 3-member etcd 3.4
# cluster, same machine, same load generator and concurrency, one run.
# Not run by CI. Needs etcd (Debian: apt-get install etcd-server).
#   bench/compare-etcd.sh [-n 20000] [-c 64] [-size 32] [-rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v etcd >/dev/null 2>&1; then
	echo "etcd not found (Debian: apt-get install -y etcd-server)" >&2
	exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/drbook-agent" ./cmd/drbook-agent
go build -o "$tmp/writecompare" ./bench/writecompare
etcd --version | head -1
"$tmp/writecompare" -agent "$tmp/drbook-agent" -etcd "$(command -v etcd)" "$@"
