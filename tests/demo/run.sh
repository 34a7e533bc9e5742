#!/bin/sh
# make demo: flotilla end to end on this machine, with nothing else needed.
#
# It starts a private Docker engine (as the tests do: its own data root and
# socket, never the system's), the demo coordinator (tests/fakes/
# fake_gitlab.py: a stand-in for GitLab's runner API, NOT GitLab), and
# `flotilla run` with fleeting-plugin-local, whose instances are sshd
# processes on 127.0.0.N.  tests/demo/pipeline.py then feeds a pipeline of
# ten jobs (one meant to fail, one with artifacts used by two others, one
# with a masked secret), shows jobs and instances while they run, and
# prints a summary table.  Everything it started is stopped at the end.
#
# Usage: sh tests/demo/run.sh [BUILD_DIR]      (root: dockerd and sshd)
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$TOP/build}" && pwd)
export TOP BUILD
. "$TOP/tests/lib/dockerd.sh"

VERSION=$(cat "$TOP/VERSION")
HELPER_TAR=$BUILD/helper/flotilla-helper-$VERSION.tar
for f in "$BUILD/bin/flotilla" "$BUILD/bin/fleeting-plugin-local" "$HELPER_TAR"; do
	if [ ! -e "$f" ]; then
		echo "demo: $f is missing: run make demo (it builds everything)" >&2
		exit 1
	fi
done
if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it starts a Docker engine and sshd instances)" >&2
	exit 1
fi

TMP=$(mktemp -d /tmp/flotilla-demo.XXXXXX)
FL_PID=
FAKE_PID=
cleanup() {
	trap - EXIT INT TERM HUP
	if [ -n "$FL_PID" ] && kill -0 "$FL_PID" 2>/dev/null; then
		kill -TERM "$FL_PID" 2>/dev/null
		tl_wait 40 tl_dead "$FL_PID" || kill -KILL "$FL_PID" 2>/dev/null
	fi
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
	for p in $(tl_pids_under "$TMP"); do
		kill -KILL "$p" 2>/dev/null
	done
	dockerd_stop "$TMP/docker"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting a private Docker engine (data in $TMP/docker)"
mkdir -p "$TMP/docker"
dockerd_start "$TMP/docker" || { echo "demo: dockerd did not start" >&2; exit 1; }
docker_test_image flotilla-test-busybox >/dev/null || exit 1

step "Starting the demo coordinator (a stand-in for GitLab; not GitLab)"
TOKEN=glrt-demo_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
FAKE_GITLAB_TOKENS=$TOKEN /usr/bin/python3 "$TOP/tests/fakes/fake_gitlab.py" \
	--port-file "$TMP/fake.port" --log "$TMP/fake.jsonl" \
	>"$TMP/fake.log" 2>&1 &
FAKE_PID=$!
tl_wait 20 test -s "$TMP/fake.port" || { cat "$TMP/fake.log"; exit 1; }
PORT=$(cat "$TMP/fake.port")
URL=http://127.0.0.1:$PORT
echo "coordinator at $URL"

mkdir -p "$TMP/plugin"
umask 077
cat >"$TMP/config.toml" <<EOF
# The demo's configuration: a GitLab-style config.toml.
concurrent = 4
check_interval = 1
shutdown_timeout = 30

[[runners]]
  name = "flotilla-demo"
  url = "$URL"
  token = "$TOKEN"
  executor = "docker-autoscaler"
  [runners.docker]
    host = "unix://$TMP/docker/docker.sock"
    image = "flotilla-test-busybox"
    network_mode = "host"
    pull_policy = ["if-not-present"]
  [runners.autoscaler]
    plugin = "$BUILD/bin/fleeting-plugin-local"
    capacity_per_instance = 2
    max_use_count = 3
    max_instances = 3
    delete_instances_on_shutdown = true
    [runners.autoscaler.plugin_config]
      name = "demo"
      state_dir = "$TMP/plugin"
      address_range = "127.0.0.60-127.0.0.80"
      boot_delay = "1s"
    [runners.autoscaler.connector_config]
      use_static_credentials = false
    [[runners.autoscaler.policy]]
      idle_count = 1
      idle_time = "30s"
EOF
echo "config: $TMP/config.toml"

step "Starting flotilla run (capacity_per_instance 2, max_use_count 3, idle_count 1)"
"$BUILD/bin/flotilla" run -c "$TMP/config.toml" \
	--helper-image-tar "$HELPER_TAR" >"$TMP/flotilla.log" 2>&1 &
FL_PID=$!
sleep 1
if ! kill -0 "$FL_PID" 2>/dev/null; then
	cat "$TMP/flotilla.log"
	exit 1
fi

step "Running the pipeline"
/usr/bin/python3 "$TOP/tests/demo/pipeline.py" --url "$URL" \
	--instances-dir "$TMP/plugin/instances" --timeout 600
rc=$?

step "Stopping flotilla (SIGQUIT: graceful)"
kill -QUIT "$FL_PID"
if tl_wait 90 tl_dead "$FL_PID"; then
	wait "$FL_PID"
	echo "flotilla exited with status $?"
else
	echo "flotilla did not stop within 90 s" >&2
	rc=1
fi
FL_PID=
if [ "$rc" -ne 0 ]; then
	echo "--- the last lines of flotilla's log ---"
	tail -40 "$TMP/flotilla.log"
fi
exit "$rc"
