#!/bin/sh
# Installs the Debian packages that flotilla's build and tests need, and only
# those that are missing, so `make deps` is cheap on a machine that has them.
# Runs as root on Debian 12 (CI, a fresh machine); elsewhere it only reports.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev
libcmocka-dev libjansson-dev libevent-dev libinih-dev libcurl4-openssl-dev
libssh2-1-dev libssl-dev libxml2-dev libarchive-dev
libprotobuf-c-dev protobuf-c-compiler libgrpc-dev
tzdata python3 python3-grpcio python3-grpc-tools ca-certificates
docker.io openssh-server openssh-client busybox-static git iproute2 procps
curl docker-registry"

missing=""
for p in $PKGS; do
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$s" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run 'make deps' as root, or: apt-get install$missing" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive

# The tests start their own dockerd (private data root and socket) and their
# own sshd instances on 127.0.0.N, and CI runs with no services.  Debian's
# docker.io, containerd and openssh-server packages start the system's
# daemons from their postinst, which would hold /var/run/docker.sock,
# /run/containerd/containerd.sock (a private dockerd would then use that
# shared containerd) and 0.0.0.0:22 (no sshd of ours could listen on
# 127.0.0.N:22).  So: forbid service starts for the time of the install with
# a policy-rc.d (unless the machine already has one), then stop whatever
# started anyway.  docker-registry (Docker's distribution registry) is a
# local mirror for the tests' pulls; it too is only ever started by them.
policy=/usr/sbin/policy-rc.d
ownpolicy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# flotilla deps.sh: no service starts during install\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	ownpolicy=1
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ $ownpolicy -eq 1 ] && rm -f "$policy" && trap - EXIT

# stop_pidfile FILE NAME: end the daemon named NAME whose pid FILE holds,
# if it is running (init scripts started by a postinst, no systemd).
stop_pidfile() {
	[ -r "$1" ] || return 0
	pid=$(cat "$1" 2>/dev/null) || return 0
	case "$pid" in ''|*[!0-9]*) return 0 ;; esac
	[ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ] || return 0
	echo "deps: stopping $2 ($pid) started by its package"
	kill "$pid" 2>/dev/null || true
}
systemd=0
[ -d /run/systemd/system ] && systemd=1
case " $missing " in
*" docker.io "*)
	if [ $systemd -eq 1 ]; then
		# Not running, and not started at boot either.
		systemctl disable --now docker.socket docker.service \
		    containerd.service >/dev/null 2>&1 || true
	else
		[ -x /etc/init.d/docker ] && { /etc/init.d/docker stop >/dev/null 2>&1 || true; }
		stop_pidfile /var/run/docker.pid dockerd
	fi
	;;
esac
case " $missing " in
*" openssh-server "*)
	if [ $systemd -eq 1 ]; then
		systemctl disable --now ssh.socket ssh.service >/dev/null 2>&1 || true
	else
		[ -x /etc/init.d/ssh ] && { /etc/init.d/ssh stop >/dev/null 2>&1 || true; }
		stop_pidfile /run/sshd.pid sshd
	fi
	;;
esac
case " $missing " in
*" docker-registry "*)
	if [ $systemd -eq 1 ]; then
		systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
	else
		[ -x /etc/init.d/docker-registry ] && { /etc/init.d/docker-registry stop >/dev/null 2>&1 || true; }
	fi
	;;
esac
exit 0
