#!/usr/bin/env bash
# Installs, as root on Debian, every tool the tests need that is missing
# (called by .ci/test.sh, so `make test` sets up a fresh machine by itself).
# Packages must not start system services: a policy-rc.d refuses them during
# the install, and packaged etcd/PostgreSQL servers are stopped afterwards.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Each tool the tests need, with the Debian package that provides it; only
# the missing ones are installed.
need=()
{ command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; } || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
# systemd-analyze verify checks deploy/*.service (it works without systemd
# running as PID 1).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# promtool (Debian's prometheus package) checks docs/alerts.yaml and the
# agent's /metrics exposition (nodeagent tests).
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# etcd 3.4 (bookworm): the shipped etcd runbooks are rehearsed against it.
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
# PostgreSQL 15 (Debian's postgresql package): the shipped PostgreSQL
# runbooks are rehearsed against it (cmd/drbook/pg_test.go starts its own
# servers as the SSH test user on free loopback ports).
pg_new=
[ -x /usr/lib/postgresql/15/bin/pg_rewind ] || { need+=(postgresql); pg_new=1; }
# iproute2 (ip, network namespaces, veth, bridge) runs the partition
# nemesis (nodeagent/clustertest TestPartitionNemesis_*).
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
	# Package scripts must not leave services running (etcd-server's postinst
	# starts etcd on the default ports 2379/2380, prometheus on 9090): refuse
	# every start during the install with a policy-rc.d, unless one exists.
	policy=/usr/sbin/policy-rc.d
	own_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# drbook .ci/run: no service starts during package installs\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own_policy=1
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	[ -z "$own_policy" ] || rm -f "$policy"
fi
# Whatever policy was in place: no packaged etcd (it runs as user etcd; the
# tests' members run as the SSH test user) left serving 2379/2380.
if [ -x /etc/init.d/etcd ] && pgrep -u etcd -x etcd >/dev/null 2>&1; then
	/etc/init.d/etcd stop >/dev/null 2>&1 || true
fi
# PostgreSQL's postinst creates a cluster "15 main" on port 5432 (its start
# is refused by the policy above): drop it when this script installed the
# package, and stop any packaged cluster still running whoever installed it.
if [ -n "$pg_new" ] && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main '; then
	pg_dropcluster --stop 15 main
fi
if command -v pg_lsclusters >/dev/null 2>&1; then
	pg_lsclusters -h | while read -r pg_ver pg_name _ pg_status _; do
		if [ "$pg_status" = online ]; then pg_ctlcluster "$pg_ver" "$pg_name" stop -m fast; fi
	done
fi
