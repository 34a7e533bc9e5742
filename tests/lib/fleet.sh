# Shared harness of the fleet integration tests (tests/integration/fleet*.sh):
# the probe and plugin paths, a temporary directory whose processes are
# all killed at exit, logs kept under $LOGDIR/NAME, and TAP counters.
# Source it after common.sh, then call fleet_harness NAME PLAN.
PROBE=${FLEET_PROBE:-$BUILD/tests/fleet_probe}
PLUGIN=${PLUGIN_BIN:-$BUILD/bin/fleeting-plugin-local}

fleet_cleanup() {
	trap - EXIT INT TERM HUP
	# Whatever is left: the probes (their config is under $TMP) and the
	# sshds (their sshd_config is under $TMP/state*); the plugin dies
	# with its probe (PDEATHSIG).
	for p in $(tl_pids_under "$TMP"); do
		kill -KILL "$p" 2>/dev/null
	done
	cp "$TMP"/*.log "$TMP"/*.out "$LOG"/ 2>/dev/null
	rm -rf "$TMP"
}

n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }

# fleet_harness NAME PLAN: print the plan, make $TMP and $LOG, arm the
# cleanup, and stop at once if the probe or the plugin is not built.
fleet_harness() {
	echo "1..$2"
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	LOG=$LOGDIR/$1
	mkdir -p "$LOG"
	trap fleet_cleanup EXIT
	trap 'exit 1' INT TERM HUP
	for b in "$PROBE" "$PLUGIN"; do
		if [ ! -x "$b" ]; then
			echo "# $b missing: run make"
			exit 1
		fi
	done
}
