# The harness of the end-to-end tests of `flotilla run`
# (tests/integration/run_*.sh): a private Docker engine with the busybox
# test image, the fake GitLab, a config.toml for fleeting-plugin-local,
# and the daemon itself; everything under $TMP, killed at exit.
# Source it after setting TOP/BUILD/LOGDIR (tests/run.sh does), then:
#
#   e2e_harness NAME PLAN      temp dir, logs, cleanup, TAP plan
#   e2e_infra                  dockerd + image + fake GitLab ($URL, $TOKEN)
#   e2e_config FILE            write a config from the E2E_* variables
#   e2e_start [FILE]           flotilla run in the background ($FL_PID)
#   e2e_stop                   SIGTERM, then SIGKILL after 40 s
#   e2e_instances              the number of live instance sshds
#   e2e_py ARGS...             tests/lib/e2e.py ARGS (submit, wait, check)
#   e2e_jobs_ok MAXJOBS MAXATONCE WHAT ID...
#                              two checks: the jobs end, all successfully
. "$TOP/tests/lib/dockerd.sh"

n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }

FL_PID=
FAKE_PID=

e2e_cleanup() {
	trap - EXIT INT TERM HUP
	e2e_stop
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
	for p in $(tl_pids_under "$TMP"); do
		kill -KILL "$p" 2>/dev/null
	done
	dockerd_stop "$TMP/docker"
	cp "$TMP"/*.log "$TMP"/*.jsonl "$TMP"/*.toml "$TMP"/*.txt "$LOG"/ 2>/dev/null
	cp "$TMP"/docker/dockerd.log "$LOG"/ 2>/dev/null
	rm -rf "$TMP"
}

e2e_harness() {
	echo "1..$2"
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	LOG=$LOGDIR/$1
	mkdir -p "$LOG"
	trap e2e_cleanup EXIT
	trap 'exit 1' INT TERM HUP
	VERSION=$(cat "$TOP/VERSION")
	HELPER_TAR=$BUILD/helper/flotilla-helper-$VERSION.tar
	for b in "$BUILD/bin/flotilla" "$BUILD/bin/fleeting-plugin-local" \
	    "$HELPER_TAR"; do
		if [ ! -e "$b" ]; then
			echo "# $b missing: run make all helper-image"
			exit 1
		fi
	done
}

e2e_py() {
	/usr/bin/python3 "$TOP/tests/lib/e2e.py" "$@"
}

e2e_infra() {
	mkdir -p "$TMP/docker"
	dockerd_start "$TMP/docker" || return 1
	docker_test_image flotilla-test-busybox >/dev/null || return 1
	TOKEN=glrt-e2e_$(head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n')
	FAKE_GITLAB_TOKENS=$TOKEN /usr/bin/python3 \
	    "$TOP/tests/fakes/fake_gitlab.py" --port-file "$TMP/fake.port" \
	    --log "$TMP/fake.jsonl" ${E2E_FAKE_ARGS:-} >"$TMP/fake.log" 2>&1 &
	FAKE_PID=$!
	tl_wait 20 test -s "$TMP/fake.port" || return 1
	URL=http://127.0.0.1:$(cat "$TMP/fake.port")
}

# The E2E_* knobs, with their defaults.
e2e_config() {
	mkdir -p "$TMP/plugin"
	(umask 077; cat >"$1" <<EOF
concurrent = ${E2E_CONCURRENT:-8}
check_interval = 1
shutdown_timeout = ${E2E_SHUTDOWN_TIMEOUT:-30}
${E2E_GLOBAL_EXTRA:-}

[[runners]]
  name = "e2e"
  url = "$URL"
  token = "$TOKEN"
  executor = "docker-autoscaler"
  ${E2E_RUNNER_EXTRA:-}
  [runners.docker]
    host = "unix://$TMP/docker/docker.sock"
    image = "flotilla-test-busybox"
    network_mode = "host"
    pull_policy = ["if-not-present"]
    ${E2E_DOCKER_EXTRA:-}
  [runners.autoscaler]
    plugin = "$BUILD/bin/fleeting-plugin-local"
    capacity_per_instance = ${E2E_CAP:-2}
    max_use_count = ${E2E_MAX_USE:-3}
    max_instances = ${E2E_MAX_INST:-4}
    delete_instances_on_shutdown = true
    update_interval = "2s"
    update_interval_when_expecting = "1s"
    [runners.autoscaler.plugin_config]
      name = "e2e"
      state_dir = "$TMP/plugin"
      address_range = "${E2E_RANGE:-127.0.0.100-127.0.0.130}"
    [runners.autoscaler.connector_config]
      use_static_credentials = false
    [[runners.autoscaler.policy]]
      idle_count = ${E2E_IDLE:-0}
      idle_time = "${E2E_IDLE_TIME:-10s}"
EOF
	)
}

e2e_start() {
	"$BUILD/bin/flotilla" --log-level "${E2E_LOG_LEVEL:-info}" \
	    --log-format "${E2E_LOG_FORMAT:-runner}" run \
	    -c "${1:-$TMP/config.toml}" --helper-image-tar "$HELPER_TAR" \
	    ${E2E_RUN_ARGS:-} >>"$TMP/flotilla.log" 2>&1 &
	FL_PID=$!
	sleep 0.5
	kill -0 "$FL_PID" 2>/dev/null
}

e2e_stop() {
	if [ -n "$FL_PID" ] && kill -0 "$FL_PID" 2>/dev/null; then
		kill -TERM "$FL_PID" 2>/dev/null
		tl_wait 40 tl_dead "$FL_PID" || kill -KILL "$FL_PID" 2>/dev/null
	fi
	FL_PID=
}

# e2e_jobs_ok MAXJOBS MAXATONCE WHAT ID...: two checks: every job reaches
# a final state (300 s at most), and every one succeeded with a matching
# trace, no instance running more than MAXJOBS of them nor more than
# MAXATONCE at once (WHAT names that last check).
e2e_jobs_ok() {
	_ej_max=$1 _ej_once=$2 _ej_what=$3
	shift 3
	e2e_py wait "$URL" 300 "$@" >"$TMP/wait.out" 2>&1
	check $? "$# jobs reach a final state"
	e2e_py check "$URL" --expect success --max-jobs "$_ej_max" \
	    --max-at-once "$_ej_once" "$@" >"$TMP/check.out" 2>&1
	_ej_rc=$?
	sed 's/^/# /' "$TMP/check.out"
	check $_ej_rc "$_ej_what"
}

# Live sshd processes of the plugin's instances.
e2e_instances() {
	c=0
	for f in "$TMP"/plugin/instances/*/sshd.pid; do
		[ -f "$f" ] || continue
		p=$(cat "$f" 2>/dev/null)
		[ -n "$p" ] && kill -0 "$p" 2>/dev/null && c=$((c + 1))
	done
	echo "$c"
}

# For tl_wait: re-count at each try.
e2e_instances_ge() { [ "$(e2e_instances)" -ge "$1" ]; }
e2e_instances_le() { [ "$(e2e_instances)" -le "$1" ]; }
