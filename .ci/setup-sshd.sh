#!/bin/sh
# setup-sshd.sh DIR — start a private OpenSSH server on 127.0.0.1 for drbook's
# SSH tests and print the environment that points the tests at it:
#
#     eval "$(.ci/setup-sshd.sh /tmp/drbook-sshd)"
#
# Run as root on Debian (12). Idempotent: a second run with the same DIR reuses
# the keys and, if it is still running, the server. Everything but the export
# lines goes to stderr. What it does:
#   - installs openssh-server if /usr/sbin/sshd is missing (apt-get update first);
#   - creates the login user drbook-test (/bin/sh, plain home, key login only);
#   - creates /run/sshd (privilege separation directory);
#   - generates a host key, a client key, authorized_keys and known_hosts in DIR;
#   - starts sshd (UsePAM no, MaxSessions 200, loopback only) on a free port.
# Stop it with: kill "$DRBOOK_TEST_SSH_PID".
set -eu

log() { printf 'setup-sshd: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ $# -eq 1 ] || die "usage: $0 DIR"
[ "$(id -u)" -eq 0 ] || die "must run as root (it creates a user and starts sshd)"
user=drbook-test

if [ ! -x /usr/sbin/sshd ]; then
	log "installing openssh-server"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >&2
fi
# The Debian package starts no daemon in containers; if systemd did start one
# on port 22, it is not ours and we leave it alone.

if ! id "$user" >/dev/null 2>&1; then
	log "creating user $user"
	useradd -m -s /bin/sh -p '*' "$user"
fi
# Without PAM, sshd refuses key logins to locked accounts ("!" in shadow).
if getent shadow "$user" | cut -d: -f2 | grep -q '^!'; then
	usermod -p '*' "$user"
fi
mkdir -p /run/sshd
chmod 0755 /run/sshd

mkdir -p "$1"
dir=$(cd "$1" && pwd)
chmod 0755 "$dir"

[ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C drbook-test-host -f "$dir/ssh_host_ed25519_key" >&2
[ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C drbook-test-client -f "$dir/id_ed25519" >&2
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
chmod 0644 "$dir/authorized_keys"
# sshd reads authorized_keys as the login user: every parent must let it in.
su -s /bin/sh "$user" -c "test -r '$dir/authorized_keys'" ||
	die "$user cannot read $dir/authorized_keys: choose a DIR whose parents are world-searchable (e.g. under /tmp)"

running_pid() {
	[ -f "$dir/sshd.pid" ] || return 1
	pid=$(cat "$dir/sshd.pid")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	grep -q sshd "/proc/$pid/comm" 2>/dev/null || return 1
	echo "$pid"
}

# listening PORT: is something listening on TCP PORT? (/proc/net/tcp: no
# iproute2 or procps needed on a fresh image)
listening() {
	hex=$(printf '%04X' "$1")
	grep -Eq "^ *[0-9]+: [0-9A-F]{8}:$hex [0-9A-F]{8}:[0-9A-F]{4} 0A " /proc/net/tcp
}

free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
		return
	fi
	p=42200
	while [ $p -lt 42400 ]; do
		listening $p || { echo $p; return; }
		p=$((p + 1))
	done
	die "no free port in 42200-42399"
}

if pid=$(running_pid); then
	port=$(awk '$1 == "Port" {print $2}' "$dir/sshd_config")
	log "sshd already running (pid $pid, port $port)"
else
	port=$(free_port)
	cat >"$dir/sshd_config" <<CONFIG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $user
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
MaxSessions 200
MaxStartups 200:30:400
UseDNS no
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
LogLevel ERROR
CONFIG
	/usr/sbin/sshd -t -f "$dir/sshd_config" >&2 || die "sshd rejected $dir/sshd_config"
	/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
	i=0
	until listening "$port" && pid=$(running_pid); do
		i=$((i + 1))
		[ $i -lt 100 ] || die "sshd did not start on port $port: $(cat "$dir/sshd.log" 2>/dev/null)"
		sleep 0.1
	done
	log "sshd started (pid $pid, port $port)"
fi

printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >"$dir/known_hosts"

cat <<EXPORTS
export DRBOOK_TEST_SSH_ADDR=127.0.0.1:$port
export DRBOOK_TEST_SSH_USER=$user
export DRBOOK_TEST_SSH_KEY=$dir/id_ed25519
export DRBOOK_TEST_SSH_KNOWN_HOSTS=$dir/known_hosts
export DRBOOK_TEST_SSH_PID=$pid
EXPORTS
