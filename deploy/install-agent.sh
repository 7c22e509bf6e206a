#!/bin/sh
# Installs drbook-agent as a systemd service, the way docs/deploy.md
# describes (run as root from a checkout or an unpacked release):
#
#   sudo deploy/install-agent.sh dist/drbook-agent-v1.2.3-linux-amd64
#
# It creates the system user drbook-agent, installs the binary to
# /usr/local/bin, the units to /etc/systemd/system, and /etc/drbook-agent
# (mode 0700, root) with agent.env (edit it) and backup-passphrase (created
# if missing: copy it to your password manager). It never overwrites
# agent.env or backup-passphrase, so it is also the upgrade command.
#
# DRBOOK_ROOT=DIR installs under DIR instead of / and then creates no user
# and runs no systemctl (image builds, tests).
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 PATH/TO/drbook-agent" >&2
	exit 2
fi
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
root=${DRBOOK_ROOT:-}

if [ -z "$root" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "$0: run as root (or set DRBOOK_ROOT)" >&2
		exit 1
	fi
	if ! getent passwd drbook-agent >/dev/null; then
		useradd --system --user-group --home-dir /var/lib/drbook-agent --no-create-home \
			--shell /usr/sbin/nologin --comment "drbook node agent" drbook-agent
	fi
fi

"$bin" version >/dev/null # refuse a binary that does not run here
install -D -m 0755 "$bin" "$root/usr/local/bin/drbook-agent.new"
mv -f "$root/usr/local/bin/drbook-agent.new" "$root/usr/local/bin/drbook-agent"
install -d -m 0755 "$root/etc/systemd/system"
for u in drbook-agent.service drbook-agent-backup.service drbook-agent-backup.timer; do
	install -m 0644 "$here/$u" "$root/etc/systemd/system/$u"
done
install -d -m 0700 "$root/etc/drbook-agent"
if [ ! -e "$root/etc/drbook-agent/agent.env" ]; then
	install -m 0600 "$here/agent.env" "$root/etc/drbook-agent/agent.env"
	echo "edit $root/etc/drbook-agent/agent.env (node id and addresses)" >&2
fi
if [ ! -e "$root/etc/drbook-agent/backup-passphrase" ]; then
	(umask 077 && head -c 32 /dev/urandom | base64 >"$root/etc/drbook-agent/backup-passphrase")
	echo "created $root/etc/drbook-agent/backup-passphrase: store a copy off this machine NOW (without it no backup can be restored)" >&2
fi
if [ -z "$root" ]; then
	systemctl daemon-reload
fi
"$root/usr/local/bin/drbook-agent" version
