#!/bin/sh
# fleeting-plugin-local, as a manager sees it, driven by a gRPC client
# that is not flotilla's (tests/integration/plugin_conformance.py: Python
# grpcio with stubs generated from proto/*.proto into a temporary
# directory, following proto/README.md only).  Here: the process checks
# (no cookie, --version, the handshake line, SIGTERM); there: health,
# Init, Increase, Update, ConnectInfo, a real SSH login and a
# direct-streamlocal forward with what ConnectInfo returned, Heartbeat,
# max_size, an instance's sshd killed, the plugin killed and re-adopting
# its instance, Decrease, Shutdown.  Finally: no sshd of the test is left.
#
# PLUGIN_BIN overrides the binary (e.g. build/asan/bin/fleeting-plugin-local).
# Needs root for sshd on 127.0.0.N (CI runs as root) and Debian's
# python3-grpcio and python3-grpc-tools (packaging/deps.sh).
set -u
. "${TOP:?TOP must be the repository root}/tests/lib/common.sh"

BIN=${PLUGIN_BIN:-$BUILD/bin/fleeting-plugin-local}
PY=/usr/bin/python3
NPY=32		# the conformance script's tests
echo "1..$((6 + NPY + 1))"

TMP=$(mktemp -d /tmp/fpl.XXXXXX)
LOG=$LOGDIR/plugin_local
mkdir -p "$LOG"
cleanup() {
	trap - EXIT INT TERM HUP
	# Whatever the test left: plugins and sshds started under $TMP.
	for p in $(tl_pids_under "$TMP"); do
		kill -KILL "$p" 2>/dev/null
	done
	cp "$TMP"/*.log "$LOG"/ 2>/dev/null
	for f in "$TMP"/state/instances/*/sshd.log; do
		[ -f "$f" ] && cp "$f" "$LOG/$(basename "$(dirname "$f")")-sshd.log"
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }

COOKIE_ENV="FLOTILLA_PLUGIN_MAGIC_COOKIE=7c1e3f0a9b5d4e2f8a6c1b3d5e7f9a0b-flotilla-fleeting"

if [ ! -x "$BIN" ]; then
	echo "# $BIN missing: run make"
	exit 1
fi

# 1. Without the cookie: go-plugin's message, exit 1.
env -u FLOTILLA_PLUGIN_MAGIC_COOKIE "$BIN" >"$TMP/nocookie.out" 2>"$TMP/nocookie.err"
rc=$?
grep -q "This binary is a plugin. These are not meant to be executed directly." \
    "$TMP/nocookie.err" && [ $rc -eq 1 ] && [ ! -s "$TMP/nocookie.out" ]
check $? "no cookie: exit $rc and the go-plugin message on stderr"

# 2. --version
"$BIN" --version >"$TMP/version.out" 2>&1
rc=$?
grep -q "fleeting-plugin-local" "$TMP/version.out" &&
    grep -q "Version:" "$TMP/version.out" && [ $rc -eq 0 ]
check $? "--version: $(grep Version: "$TMP/version.out" | tr -s ' ')"

# 3. No common protocol version: exit 1.
env "$COOKIE_ENV" PLUGIN_PROTOCOL_VERSIONS=2,3 "$BIN" >"$TMP/badver.out" 2>"$TMP/badver.err"
rc=$?
[ $rc -eq 1 ] && grep -q "Incompatible API version" "$TMP/badver.err" &&
    [ ! -s "$TMP/badver.out" ]
check $? "PLUGIN_PROTOCOL_VERSIONS=2,3: exit $rc, an error"

# 4-6. With the cookie: exactly one handshake line; SIGINT ignored;
# SIGTERM ends it with 0 and removes the socket.
mkdir -m 700 "$TMP/sock"
env "$COOKIE_ENV" PLUGIN_PROTOCOL_VERSIONS=1 PLUGIN_UNIX_SOCKET_DIR="$TMP/sock" \
    "$BIN" >"$TMP/hs.out" 2>"$TMP/hs.log" &
pid=$!
tl_wait 10 test -s "$TMP/hs.out"
line=$(cat "$TMP/hs.out")
sock=$(echo "$line" | cut -d'|' -f4)
case "$line" in
"1|1|unix|$TMP/sock/"*"|grpc|") [ "$(wc -l <"$TMP/hs.out")" -eq 1 ] && [ -S "$sock" ] ;;
*) false ;;
esac
check $? "handshake: one line '$line', the socket exists"
kill -INT $pid
sleep 0.3
tl_alive $pid
check $? "SIGINT is ignored"
kill -TERM $pid
tl_wait 5 tl_dead $pid
wait $pid
rc=$?
[ $rc -eq 0 ] && [ ! -e "$sock" ] && [ "$(wc -l <"$TMP/hs.out")" -eq 1 ]
check $? "SIGTERM: exit $rc, socket removed, nothing more on stdout"

# The conformance run: stubs generated now, from the schemas.
mkdir "$TMP/stubs"
if ! "$PY" -m grpc_tools.protoc -I"$TOP/proto" --python_out="$TMP/stubs" \
    --grpc_python_out="$TMP/stubs" fleeting.proto health.proto \
    controller.proto 2>"$TMP/protoc.log"; then
	tl_diag "$TMP/protoc.log"
	echo "# (python3-grpc-tools: sh packaging/deps.sh)"
	exit 1
fi
start=$(date +%s)
"$PY" "$TOP/tests/integration/plugin_conformance.py" --plugin "$BIN" \
    --stubs "$TMP/stubs" --tmp "$TMP" --readme "$TOP/proto/README.md" \
    --first $((n + 1)) --log "$TMP/plugin.log"
echo "# conformance run: $(($(date +%s) - start)) s"
rc=$?
n=$((n + NPY))
[ $rc -ne 0 ] && tl_diag "$TMP/plugin.log" 15

# Nothing of the test runs any more (zombies of PID 1 aside).
left=$(tl_pids_under "$TMP")
[ -z "$left" ]
check $? "no process of the test is left${left:+: $left}"
exit 0
