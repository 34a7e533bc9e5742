#!/bin/sh
# flotilla plugin-test: the conformance run against fleeting-plugin-local
# (a real sshd instance on 127.0.0.N and a real ssh login with what
# ConnectInfo returned), then failing runs against the fake plugin and a
# missing binary, which must say FAIL and exit 1.  SKIPs only the local
# plugin's part when build/bin/fleeting-plugin-local does not exist.
# Needs root for sshd on port 22 (else the plugin picks a high port) and
# Debian's openssh-server and openssh-client.
set -u
. "${TOP:?TOP must be the repository root}/tests/lib/common.sh"

FL="$BUILD/bin/flotilla"
LOCAL="$BUILD/bin/fleeting-plugin-local"
FAKE="$BUILD/tests/fake_plugin"
echo "1..10"

TMP=$(mktemp -d /tmp/fpt.XXXXXX)
cleanup() {
	trap - EXIT INT TERM HUP
	for p in $(tl_pids_under "$TMP"); do
		kill -KILL "$p" 2>/dev/null
	done
	mkdir -p "$LOGDIR/plugin_test"
	cp "$TMP"/*.out "$TMP"/*.err "$LOGDIR/plugin_test/" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }

if [ -x "$LOCAL" ]; then
	cat >"$TMP/local.json" <<JSON
{"name": "pt$$", "state_dir": "$TMP/state", "max_size": 2, "delete_on_shutdown": true}
JSON
	"$FL" plugin-test "$LOCAL" --config "$TMP/local.json" --timeout 3m \
	    >"$TMP/local.out" 2>"$TMP/local.err"
	rc=$?
	sed 's/^/# /' "$TMP/local.out"
	check $rc "plugin-test fleeting-plugin-local exits 0"
	npass=$(grep -c '^PASS ' "$TMP/local.out")
	[ "$npass" -eq 11 ] && ! grep -q '^FAIL\|^SKIP' "$TMP/local.out"
	check $? "every one of the 11 steps passed ($npass)"
	grep -q '^PASS ssh (.*): ran `true` as ' "$TMP/local.out"
	check $? "a real ssh login ran true on the instance"
	tl_wait 10 sh -c "[ -z \"\$(. '$TOP/tests/lib/common.sh'; tl_pids_under '$TMP')\" ]"
	check $? "nothing of the run is left (plugin, sshd)"
else
	for t in "exits 0" "every step passed" "ssh login" "nothing left"; do
		ok "# SKIP plugin-test fleeting-plugin-local: $LOCAL not built ($t)"
	done
fi

# The fake plugin cannot be logged in to: the ssh step fails, the others
# pass, the instance is still deleted, and the exit status says so.
FAKE_PLUGIN_SCENARIO=ok FAKE_PLUGIN_STATE_DIR="$TMP" \
    "$FL" plugin-test "$FAKE" --timeout 8s >"$TMP/fake.out" 2>"$TMP/fake.err"
rc=$?
sed 's/^/# /' "$TMP/fake.out"
[ $rc -eq 1 ]
check $? "a failing step makes plugin-test exit 1"
grep -q '^FAIL ssh (' "$TMP/fake.out" && grep -q '^PASS heartbeat' "$TMP/fake.out" &&
    grep -q '^PASS wait-deleted' "$TMP/fake.out" && grep -q '^PASS shutdown' "$TMP/fake.out"
check $? "after the failed ssh step the rest still runs and cleans up"
[ -f "$TMP/instances" ] && ! grep -q 'fake-' "$TMP/instances"
check $? "the fake's instance was deleted"

FAKE_PLUGIN_SCENARIO=crash-at-start "$FL" plugin-test "$FAKE" \
    >"$TMP/crash.out" 2>"$TMP/crash.err"
rc=$?
[ $rc -eq 1 ] && grep -q '^FAIL handshake (.*): plugin exited during the handshake (exit_code=3)$' "$TMP/crash.out"
check $? "a plugin that crashes at start: FAIL handshake with its exit code"

"$FL" plugin-test /nonexistent/fleeting-plugin-x >"$TMP/missing.out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q '^FAIL handshake (0.00s): cannot run /nonexistent/fleeting-plugin-x: No such file or directory$' "$TMP/missing.out"
check $? "a missing binary: FAIL handshake naming the path"

echo '[1, 2]' >"$TMP/bad.json"
"$FL" plugin-test "$FAKE" --config "$TMP/bad.json" >"$TMP/bad.out" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q 'not a JSON object' "$TMP/bad.out"
check $? "--config that is not a JSON object is a usage error"
