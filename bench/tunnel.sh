#!/bin/sh
# The Docker tunnel's benchmarks (issue 5), run by bench/run.sh from the
# build directory:
#   sh ../bench/tunnel.sh output   200 MB of container output through our
#       tunnel (manager/tunnel.c over the connector) against OpenSSH's
#       `ssh -L local.sock:docker.sock` forward of the same socket, read by
#       the same Docker client (only the transport differs); throughput
#       ratio (goal >= 1.0).
#   sh ../bench/tunnel.sh rtt      GET /_ping round trips on a kept-alive
#       connection through the tunnel against the engine's socket
#       directly; median ratio (goal <= 1.5).
# A private dockerd and an sshd on 127.0.0.33 are started and stopped here.
set -u
MODE=${1:-output}
BUILD=$(pwd)
TOP=$(cd "$BUILD/.." 2>/dev/null && pwd)
[ -f "$TOP/tests/lib/dockerd.sh" ] || TOP=$(cd "$(dirname "$0")/.." && pwd)
export TOP
. "$TOP/tests/lib/dockerd.sh"
. "$TOP/tests/lib/sshd.sh"

PROBE=$BUILD/tests/tunnel_probe
IMG=flotilla-test-busybox
TMP=$(mktemp -d /tmp/flbt.XXXXXX)
mkdir -p "$TMP/dk" "$TMP/a"
cleanup() {
	trap - EXIT INT TERM HUP
	sshd_stop "$TMP/a" >/dev/null
	dockerd_stop "$TMP/dk" >/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

dockerd_start "$TMP/dk" >&2 || exit 1
sshd_start "$TMP/a" 127.0.0.33 >&2 || exit 1
docker_test_image "$IMG" >&2 || exit 1
S=$TMP/dk/docker.sock
SSH="-a 127.0.0.33 -p $(cat "$TMP/a/port") -k $TMP/a/id_ed25519 -s $S"

# median of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

case "$MODE" in
output)
	BYTES=209715200		# 200 MiB, written by dd in 1 MiB blocks
	sshd_forward "$TMP/a" "$TMP/fwd.sock" "$S" >&2 || exit 1
	: >"$TMP/t"; : >"$TMP/b"
	for i in 1 2 3; do
		# shellcheck disable=SC2086
		"$PROBE" $SSH output "$IMG" $BYTES 1048576 >"$TMP/o" 2>&2 || { cat "$TMP/o" >&2; exit 1; }
		sed -n 's/^stream_ms=//p' "$TMP/o" >>"$TMP/t"
		"$PROBE" -L "$TMP/fwd.sock" output "$IMG" $BYTES 1048576 >"$TMP/o" 2>&2 || { cat "$TMP/o" >&2; exit 1; }
		sed -n 's/^stream_ms=//p' "$TMP/o" >>"$TMP/b"
	done
	t=$(median <"$TMP/t"); b=$(median <"$TMP/b")
	awk -v t="$t" -v b="$b" -v n=$BYTES 'BEGIN {
		printf "tunnel_output_200mb: median %.1f ms (%.1f MB/s); ssh -L forward median %.1f ms (%.1f MB/s); throughput ratio %.2f (goal >= 1.0)\n",
		    t, n / 1e3 / t, b, n / 1e3 / b, b / t }'
	;;
rtt)
	N=2000
	# shellcheck disable=SC2086
	"$PROBE" $SSH bench-ping $N >"$TMP/o" 2>&2 || { cat "$TMP/o" >&2; exit 1; }
	t=$(sed -n 's/.*median_us=\([0-9.]*\).*/\1/p' "$TMP/o")
	"$PROBE" -L "$S" bench-ping $N >"$TMP/o" 2>&2 || { cat "$TMP/o" >&2; exit 1; }
	b=$(sed -n 's/.*median_us=\([0-9.]*\).*/\1/p' "$TMP/o")
	f=0
	if sshd_forward "$TMP/a" "$TMP/fwd.sock" "$S" >&2 &&
	    "$PROBE" -L "$TMP/fwd.sock" bench-ping $N >"$TMP/o" 2>&2; then
		f=$(sed -n 's/.*median_us=\([0-9.]*\).*/\1/p' "$TMP/o")
	fi
	awk -v t="$t" -v b="$b" -v f="$f" -v n=$N 'BEGIN {
		printf "tunnel_ping_rtt: median %.3f ms through the tunnel; socket directly median %.3f ms; ratio %.2f (goal <= 1.5; %d pings each; through ssh -L: median %.3f ms, ratio %.2f)\n",
		    t / 1000, b / 1000, t / b, n, f / 1000, f / b }'
	;;
*)
	echo "usage: tunnel.sh output|rtt" >&2
	exit 2
	;;
esac
