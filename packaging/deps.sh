#!/bin/sh
# Installs the Debian packages that flotilla's build and tests need, and only
# those that are missing, so `make deps` is cheap on a machine that has them.
# Runs as root on Debian 12 (CI, a fresh machine); elsewhere it only reports.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev
libcmocka-dev libjansson-dev libevent-dev libinih-dev libcurl4-openssl-dev
libssh2-1-dev libssl-dev libxml2-dev libarchive-dev
libprotobuf-c-dev protobuf-c-compiler libgrpc-dev
tzdata python3 ca-certificates"

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
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
