#!/bin/sh
# The plugin host as another process sees it, through host_probe (a tiny
# manager: tests/helpers/host_probe.c) and the fake plugin: the manager
# killed -9 takes its plugin along (PDEATHSIG), plugins run in their own
# process group, the plugin's stderr lines reach the manager's log with
# the plugin's name, resolution through $FLEETING_PLUGIN_PATH, clear
# errors for a missing binary and a plugin that crashes at start, and no
# process left behind.  The unit test test_plugin_host covers the state
# machine; this covers what needs a shell.
set -u
. "${TOP:?TOP must be the repository root}/tests/lib/common.sh"

PROBE="$BUILD/tests/host_probe"
echo "1..12"

TMP=$(mktemp -d /tmp/fph.XXXXXX)
# A private copy of the fake, so that every plugin process of this test
# has $TMP in its command line (and no other test's process has).
cp "$BUILD/tests/fake_plugin" "$TMP/fleeting-plugin-fake"
FAKE="$TMP/fleeting-plugin-fake"
probe_pid=
cleanup() {
	trap - EXIT INT TERM HUP
	[ -n "$probe_pid" ] && kill -KILL "$probe_pid" 2>/dev/null
	for p in $(tl_pids_under "$TMP"); do
		kill -KILL "$p" 2>/dev/null
	done
	mkdir -p "$LOGDIR/plugin_host"
	cp "$TMP"/*.out "$TMP"/*.err "$LOGDIR/plugin_host/" 2>/dev/null
	rm -rf "$TMP"
	# The private socket directories of the probes killed -9.
	[ -s "$LOGDIR/plugin_host/sockdirs" ] &&
	    xargs rm -rf <"$LOGDIR/plugin_host/sockdirs" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }
nothing_left() { [ -z "$(tl_pids_under "$TMP")" ]; }

# 1-5: kill -9 of the manager.
"$PROBE" -j "$FAKE" start hold >"$TMP/hold.out" 2>"$TMP/hold.err" &
probe_pid=$!
tl_wait 15 grep -q '^pid ' "$TMP/hold.out"
check $? "the probe started the plugin"
plugin=$(awk '/^pid /{print $2}' "$TMP/hold.out")
tl_owned "$plugin" "$TMP"
check $? "the plugin ($plugin) runs"
pgid=$(ps -o pgid= -p "$plugin" | tr -d ' ')
mgid=$(ps -o pgid= -p "$probe_pid" | tr -d ' ')
[ "$pgid" = "$plugin" ] && [ "$pgid" != "$mgid" ]
check $? "the plugin leads its own process group ($pgid, the manager's is $mgid)"
mkdir -p "$LOGDIR/plugin_host"
grep -o '"socket":"[^"]*"' "$TMP/hold.err" | sed 's/"socket":"//; s|/[^/]*"$||' \
    >>"$LOGDIR/plugin_host/sockdirs"
kill -KILL "$probe_pid"
wait "$probe_pid" 2>/dev/null
probe_pid=
tl_wait 5 tl_dead "$plugin"
check $? "the manager killed -9 takes the plugin along (PDEATHSIG)"
tl_wait 5 nothing_left
check $? "no process of the test is left"

# 6-8: the plugin's stderr in the manager's log (json), with its name.
"$PROBE" -j "$FAKE" start update stop >"$TMP/logs.out" 2>"$TMP/logs.err"
check $? "start, update, stop"
grep '"msg":"fake plugin starting"' "$TMP/logs.err" | grep '"plugin":"probe"' |
    grep '"subsystem":"fleeting-plugin"' | grep '"module":"fake-plugin"' |
    grep -q '"scenario":"ok"'
check $? "an hclog JSON line is re-logged with plugin=, subsystem= and its fields"
grep '"msg":"a tagged warning from the fake plugin"' "$TMP/logs.err" |
    grep '"level":"warning"' | grep -q '"plugin":"probe"'
check $? "a [WARN] text line is re-logged as a warning"

# 9: resolution by name through $FLEETING_PLUGIN_PATH.
FLEETING_PLUGIN_PATH="/nonexistent:$TMP" "$PROBE" fake start stop \
    >"$TMP/name.out" 2>"$TMP/name.err"
check $? "\"fake\" is found as fleeting-plugin-fake in \$FLEETING_PLUGIN_PATH"

# 10: a missing binary is a synchronous error naming the path.
"$PROBE" "$TMP/fleeting-plugin-missing" start >"$TMP/missing.out" \
    2>"$TMP/missing.err"
rc=$?
[ $rc -eq 1 ] && grep -q "^host_probe: error: cannot run $TMP/fleeting-plugin-missing: No such file or directory\$" "$TMP/missing.err"
check $? "a missing binary: cannot run PATH: No such file or directory"

# 11: a plugin that crashes at start: restarted with back-off, then given
# up, each exit logged with its code.
FAKE_PLUGIN_SCENARIO=crash-at-start "$PROBE" -m 3 -b 100 "$FAKE" start \
    >"$TMP/crash.out" 2>"$TMP/crash.err"
rc=$?
[ $rc -eq 1 ] && [ "$(grep -c '^ERROR: plugin exited .*exit_code=3' "$TMP/crash.err")" -eq 3 ] &&
    grep -q 'restarting plugin .*failures=2 in=200ms' "$TMP/crash.err" &&
    grep -q 'error: start: plugin exited during the handshake (exit_code=3)' "$TMP/crash.err"
check $? "crash at start: 3 exits with exit_code=3, back-off doubling, then an error"

tl_wait 5 nothing_left
check $? "every plugin of the test was reaped or killed"
