#!/bin/sh
# The Docker Engine API client (manager/docker.c) against a real, private
# dockerd over its unix socket, driven by build/tests/docker_probe: version
# negotiation, images and pull policies (no registry is reachable: pulls
# fail, and must fail cleanly), containers (logs, attach with stdin, wait,
# kill, archive upload), ten containers at once, label filters, volumes,
# networks, image load, cancellation, and the transport errors (dead
# socket, EOF, timeout).  DOCKER_PROBE overrides the probe (e.g. the ASan
# build's).
set -u
. "$TOP/tests/lib/dockerd.sh"

PROBE=${DOCKER_PROBE:-$BUILD/tests/docker_probe}
TMP=$(mktemp -d)
DK=$TMP/docker
mkdir -p "$DK"
IMG=flotilla-test-busybox
REMOTE=127.0.0.1:9/$IMG:latest	# a registry that refuses connections

cleanup() {
	trap - EXIT INT TERM HUP
	[ -d "$TMP" ] || return 0
	dockerd_stop "$DK" >/dev/null
	if [ -n "${LOGDIR:-}" ]; then
		mkdir -p "$LOGDIR/docker_client"
		cp "$DK/dockerd.log" "$LOGDIR/docker_client/" 2>/dev/null
		cp "$TMP"/out.* "$LOGDIR/docker_client/" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
# t NAME CMD...: a TAP line from CMD's status; the probe's output is shown
# as comments when it fails.
t() {
	_name=$1; shift
	if "$@"; then ok "$_name"; else nok "$_name"; sed 's/^/#   /' "$TMP/out"; fi
}
# probe NAME ARGS...: run the probe on the engine's socket into $TMP/out
# (and a copy per step), 120 s at most.
step=0
probe() {
	step=$((step + 1))
	timeout 120 "$PROBE" "$@" >"$TMP/out" 2>&1
	_rc=$?
	cp "$TMP/out" "$TMP/out.$step"
	return $_rc
}
has() { grep -qxF -- "$1" "$TMP/out"; }
has_re() { grep -qE -- "$1" "$TMP/out"; }

PLAN=28
echo "1..$PLAN"
if [ ! -x "$PROBE" ]; then
	while [ $n -lt $PLAN ]; do nok "no $PROBE"; done
	exit 1
fi

dockerd_start "$DK"
rc=$?
if [ $rc -ne 0 ]; then
	while [ $n -lt $PLAN ]; do nok "dockerd did not start"; done
	exit 1
fi
ok "private dockerd ($DOCKERD_STORAGE_DRIVER)"
S=$DK/docker.sock
docker_test_image "$IMG" && "$DOCKER" tag "$IMG" "$REMOTE"
t "test image $IMG (also tagged $REMOTE)" [ $? -eq 0 ]

probe "$S" ping
t "ping negotiates API 1.41 on one keep-alive connection" \
    sh -c "grep -qx api_version=1.41 '$TMP/out' && grep -qx client_api=1.41 '$TMP/out' && grep -qx dials=1 '$TMP/out'"

probe "$S" pinned 1.99 "$IMG"
t "a pinned API version is used as is (the engine refuses 1.99)" \
    sh -c "grep -qx status=400 '$TMP/out' && grep -q 'is too new' '$TMP/out'"

probe "$S" inspect-image "$IMG"
t "image inspect of the local image" has_re '^id=sha256:[0-9a-f]{64}$'

probe "$S" inspect-image flotilla-absent:1
t "image inspect of a missing image: not found, Docker's message" \
    sh -c "grep -qx err=not\\ found '$TMP/out' && grep -q 'No such image' '$TMP/out'"

probe "$S" get-image "$IMG" - never -
t "pull_policy never, image present: used, no pull" \
    sh -c "grep -qx policy=never '$TMP/out' && grep -qx pulled=0 '$TMP/out'"

probe "$S" get-image flotilla-absent:1 - never -
t "pull_policy never, image absent: a clear error" \
    has_re '^error: failed to pull image "flotilla-absent:1": .*No such image'


probe "$S" get-image "$REMOTE" - if-not-present -
t "pull_policy if-not-present, image present: no pull" \
    sh -c "grep -qx policy=if-not-present '$TMP/out' && grep -qx pulled=0 '$TMP/out'"

probe "$S" get-image "$REMOTE" - always -
rc=$?
t "pull_policy always with no registry: fails cleanly with the engine's reason" \
    sh -c "[ $rc -eq 1 ] && grep -q '^error: failed to pull image \"$REMOTE\": .*connection refused' '$TMP/out'"

probe "$S" get-image "$REMOTE" - always,if-not-present -
t "pull_policy [always, if-not-present]: the failed pull falls back" \
    sh -c "grep -q '^attempt=always: ' '$TMP/out' && grep -qx policy=if-not-present '$TMP/out'"

probe "$S" get-image "$IMG" never - -
t "a job's pull_policy outside allowed_pull_policies: the runner's error" \
    has 'error: invalid pull policy for image "flotilla-test-busybox": pull_policy ([never]) defined in GitLab pipeline config is not one of the allowed_pull_policies ([always])'

probe "$S" pull 127.0.0.1:9/x:1 '{"auths":{"127.0.0.1:9":{"auth":"dXNlcjpwYXNz"}}}'
t "pull with DOCKER_AUTH_CONFIG: credentials matched, engine error passed back" \
    sh -c "grep -qx auth_registry=127.0.0.1:9 '$TMP/out' && grep -qx status=500 '$TMP/out' && grep -q '^msg=.*connection refused' '$TMP/out' && ! grep -q 'dXNlcjpwYXNz\\|pass' '$TMP/out'"

probe "$S" run "$IMG" 'echo out1; echo err1 >&2; echo out2; exit 3'
t "create, start, logs (follow), wait: stdout and stderr apart, exit code 3" \
    sh -c "grep -qx 'stdout=out1|out2|' '$TMP/out' && grep -qx 'stderr=err1|' '$TMP/out' && grep -qx exit=3 '$TMP/out'"

probe "$S" attach "$IMG" 'echo "script from stdin"; echo oops >&2; exit 5'
t "attach (hijacked) with the script on stdin, half-closed: output and exit 5" \
    sh -c "grep -qx 'stdout=script from stdin|' '$TMP/out' && grep -qx 'stderr=oops|' '$TMP/out' && grep -qx exit=5 '$TMP/out'"

probe "$S" parallel 10 "$IMG"
t "10 containers at once, each with its own output and exit code" has good=10
grep -E '^(elapsed_ms|dials)=' "$TMP/out" | sed 's/^/# parallel: /'

probe "$S" archive "$IMG"
t "archive upload (tar from memory) of a script, then run it; bad path 404" \
    sh -c "grep -qx 'stdout=from-archive /flotilla/run.sh|' '$TMP/out' && grep -qx 'stderr=to-stderr|' '$TMP/out' && grep -qx exit=7 '$TMP/out' && grep -qx badpath_err=not\\ found '$TMP/out'"

probe "$S" kill "$IMG"
t "kill a long-running container: wait returns 137; killing again is 409" \
    sh -c "grep -qx exit=137 '$TMP/out' && grep -qx again_status=409 '$TMP/out' && grep -q 'is not running' '$TMP/out'"

probe "$S" labels "$IMG" 4
t "labels: list by label finds 4, remove them all, none left, others kept" \
    sh -c "grep -qx listed=4 '$TMP/out' && grep -qx after_remove=0 '$TMP/out' && grep -qx other_left=1 '$TMP/out'"

probe "$S" volumes 3
t "volumes: create 3 with labels, list by label, remove, none left" \
    sh -c "grep -qx listed=3 '$TMP/out' && grep -qx after_remove=0 '$TMP/out'"

probe "$S" networks "$IMG"
t "networks (bridge, under --bridge=none): create, run on, connect, disconnect, remove" \
    sh -c "grep -qx run_exit=0 '$TMP/out' && grep -qx connected=1 '$TMP/out' && grep -qx disconnected=1 '$TMP/out' && grep -qx after_remove=0 '$TMP/out'"

"$DOCKER" tag "$IMG" flotilla-load-test:1 &&
    "$DOCKER" save -o "$TMP/image.tar" flotilla-load-test:1 &&
    "$DOCKER" rmi flotilla-load-test:1 >/dev/null &&
    ! "$DOCKER" image inspect flotilla-load-test:1 >/dev/null 2>&1 &&
    probe "$S" load "$TMP/image.tar" &&
    probe "$S" inspect-image flotilla-load-test:1
t "image load of a docker save tar (streamed from disk) brings the tag back" \
    has_re '^id=sha256:'

echo "not a tar" >"$TMP/bad.tar"
probe "$S" load "$TMP/bad.tar"
t "image load of garbage: the error inside the stream is reported" \
    has_re '^error: load: Error processing tar file.*status 200'

probe "$S" cancel "$IMG"
t "cancel a following logs request, free the client with requests in flight" \
    sh -c "grep -qx got_before_cancel=1 '$TMP/out' && grep -qx callback_after_cancel=0 '$TMP/out' && grep -qx callbacks_after_free=0 '$TMP/out'"

probe "$TMP/nonexistent.sock" ping
t "a dead socket: a clean dial error" \
    has_re "^error: ping: GET /_ping: dial: connect .*nonexistent.sock: No such file or directory"

probe "$TMP" eof
t "the engine closes the connection: \"connection closed\" (and negotiation)" \
    sh -c "grep -qx 'msg=GET /_ping: connection closed' '$TMP/out' && grep -qx 'versioned_msg=GET /images/x/json: API version negotiation: GET /_ping: connection closed' '$TMP/out'"

probe "$TMP" timeout
t "an engine that never answers: the request's deadline (300 ms)" \
    sh -c "grep -qx 'msg=GET /_ping: timeout after 300 ms' '$TMP/out' && grep -qx err=deadline\\ exceeded '$TMP/out'"

left=$("$DOCKER" ps -aq --filter label=com.gitlab.gitlab-runner.managed=true | wc -l)
t "no container left behind by the probe ($left)" [ "$left" -eq 0 ]
