#!/bin/sh
# Jobs whose image is in a private registry: a real one (Debian's
# docker-registry with htpasswd authentication, plain HTTP on 127.0.0.1,
# which dockerd treats as insecure by default).  Without credentials the
# pull is refused and the job fails as image_pull_failure; with
# DOCKER_AUTH_CONFIG as a job variable, or in the runner's environment,
# flotilla sends X-Registry-Auth and the job runs.  The password appears in
# no log and no trace.  Skipped without docker-registry (make deps).
set -u
. "$TOP/tests/lib/e2e.sh"
PLAN=8
if [ ! -x /usr/bin/docker-registry ]; then
	echo "1..$PLAN"
	i=1
	while [ $i -le $PLAN ]; do echo "ok $i - # SKIP no docker-registry"; i=$((i + 1)); done
	exit 0
fi
e2e_harness run_registry_auth $PLAN
REG_PID=
reg_cleanup() {
	[ -n "$REG_PID" ] && tl_stop 10 "$REG_PID"
	e2e_cleanup
}
trap reg_cleanup EXIT

RUSER=ci-puller
RPASS=pw-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
RPORT=$(tl_free_port 127.0.0.1)
REG=127.0.0.1:$RPORT
mkdir -p "$TMP/registry"
/usr/bin/python3 -W ignore -c '
import crypt, sys
print("%s:%s" % (sys.argv[1], crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH))))
' "$RUSER" "$RPASS" >"$TMP/htpasswd"
cat >"$TMP/registry.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $TMP/registry
auth:
  htpasswd:
    realm: flotilla-test
    path: $TMP/htpasswd
http:
  addr: $REG
EOF
/usr/bin/docker-registry serve "$TMP/registry.yml" >"$TMP/registry.log" 2>&1 &
REG_PID=$!
tl_wait 20 curl -s -o /dev/null "http://$REG/v2/" &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/")" = 401 ] &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' -u "$RUSER:$RPASS" "http://$REG/v2/")" = 200 ]
check $? "a registry that wants a password (401 without, 200 with)"

e2e_infra &&
    printf '%s' "$RPASS" | "$DOCKER" login -u "$RUSER" --password-stdin "$REG" >/dev/null 2>&1 &&
    "$DOCKER" tag flotilla-test-busybox "$REG/private/busybox:1" &&
    "$DOCKER" push -q "$REG/private/busybox:1" >/dev/null &&
    "$DOCKER" logout "$REG" >/dev/null 2>&1 &&
    "$DOCKER" rmi "$REG/private/busybox:1" >/dev/null
check $? "the private image pushed, then removed from the engine"

AUTH=$(printf '%s:%s' "$RUSER" "$RPASS" | base64 | tr -d '\n')
AUTHCFG="{\"auths\": {\"$REG\": {\"auth\": \"$AUTH\"}}}"
E2E_CAP=2 E2E_MAX_USE=100 E2E_MAX_INST=1 E2E_IDLE=1 E2E_IDLE_TIME=5m
e2e_config "$TMP/config.toml"
e2e_start
check $? "flotilla run starts"

IMG=$REG/private/busybox:1
# job NAME ARGS...: submit one job of IMG, wait for its end; then $ID,
# $ST (its "status reason") and its trace in $TMP/trace-NAME.txt.
job() {
	_jn=$1
	shift
	ID=$(e2e_py submit "$URL" 1 --name "$_jn" --image "$IMG" "$@")
	e2e_py wait "$URL" 120 $ID >/dev/null 2>&1
	curl -fsS "$URL/__fake/jobs/$ID/trace" >"$TMP/trace-$_jn.txt"
	ST=$(e2e_py state "$URL" $ID)
}

job no-creds --script 'echo ran'
no=$ID
[ "$ST" = "failed image_pull_failure" ]
check $? "without credentials the pull is refused: image_pull_failure"

# The job's platform (executor_opts.docker.platform) goes with the pull
# and the build container's create: the image is linux/amd64 only, so the
# engine refuses to run it as linux/arm64.
job arm64 --platform linux/arm64 --script 'echo ran-arm' \
    --var "DOCKER_AUTH_CONFIG=$AUTHCFG"
[ "${ST%% *}" = failed ] && grep -q 'wanted linux/arm64' "$TMP/trace-arm64.txt"
check $? "a job's platform linux/arm64 reaches the engine: refused for an amd64-only image"

job job-creds --script 'echo ran-from-private' --var "DOCKER_AUTH_CONFIG=$AUTHCFG"
yes=$ID
[ "${ST%% *}" = success ] &&
    grep -qE '(^|O )ran-from-private' "$TMP/trace-job-creds.txt"
check $? "DOCKER_AUTH_CONFIG as a job variable: pulled, the job ran"

# The runner's environment: a second config, the same daemon restarted.
e2e_stop
"$DOCKER" rmi "$IMG" >/dev/null 2>&1
E2E_RUNNER_EXTRA="environment = ['DOCKER_AUTH_CONFIG=$AUTHCFG']"
e2e_config "$TMP/config.toml"
e2e_start
job env-creds --script 'echo ran-with-env-creds'
env=$ID
[ "${ST%% *}" = success ] &&
    grep -qE '(^|O )ran-with-env-creds' "$TMP/trace-env-creds.txt"
check $? "DOCKER_AUTH_CONFIG in the runner's environment: pulled, the job ran"

for id in $no $yes $env; do curl -fsS "$URL/__fake/jobs/$id/trace"; done >"$TMP/traces.txt"
! grep -q -- "$RPASS" "$TMP/flotilla.log" "$TMP/traces.txt" &&
    ! grep -q -- "$AUTH" "$TMP/flotilla.log"
check $? "the registry password is in no log and no trace"
