#!/bin/sh
# GitLab's preparation retries in flotilla run: a preparation that fails
# for a system reason (here the helper image cannot be loaded: its tar is
# broken) is tried again 3 s later, 3 attempts in all, in the same
# prepare_executor section of the trace ("ERROR: Preparation failed: ...",
# "Will be retried in 3s ...").  A job whose cause goes away in between
# succeeds; one whose cause stays fails as runner_system_failure after the
# third attempt; a failed pull (GitLab's BuildError) is not retried.
set -u
. "$TOP/tests/lib/e2e.sh"
e2e_harness run_prepare_retry 10

e2e_infra
check $? "a Docker engine, the test image and the fake GitLab"
GOOD_TAR=$HELPER_TAR
HELPER_TAR=$TMP/helper.tar
head -c 4096 "$GOOD_TAR" >"$HELPER_TAR"	# a tar cut short
E2E_CAP=1 E2E_MAX_USE=100 E2E_MAX_INST=1 E2E_IDLE=1 E2E_IDLE_TIME=5m
e2e_config "$TMP/config.toml"
e2e_start
check $? "flotilla run starts (with a broken helper image tar)"

trace() { curl -fsS "$URL/__fake/jobs/$1/trace" 2>/dev/null; }
count() { trace "$1" | grep -c -- "$2"; }
retried_ge() { [ "$(count "$1" 'Will be retried in 3s')" -ge "$2" ]; }

# A: the tar stays broken: three attempts, then a system failure.
a=$(e2e_py submit "$URL" 1 --name stays-broken)
e2e_py wait "$URL" 120 $a >/dev/null 2>&1
[ "$(e2e_py state "$URL" $a)" = "failed runner_system_failure" ]
check $? "a preparation that keeps failing ends as runner_system_failure"
trace "$a" >"$TMP/trace-a.txt"
[ "$(grep -c 'Using Docker executor' "$TMP/trace-a.txt")" -eq 3 ] &&
    [ "$(grep -c 'Will be retried in 3s' "$TMP/trace-a.txt")" -eq 2 ] &&
    [ "$(grep -c 'Preparation failed: loading the helper image' "$TMP/trace-a.txt")" -eq 2 ] &&
    [ "$(grep -c 'Running with flotilla' "$TMP/trace-a.txt")" -eq 1 ] &&
    grep -q 'ERROR: Job failed (system failure): loading the helper image' "$TMP/trace-a.txt"
check $? "3 attempts in one trace: header once, 2 retries announced, then the failure"
e2e_py check "$URL" --expect failed $a >"$TMP/check-a.out" 2>&1
check $? "its trace is intact (checksum)"

# B: the tar is fixed while the job waits for its retry.
b=$(e2e_py submit "$URL" 1 --name fixed-meanwhile)
tl_wait 60 retried_ge "$b" 1
check $? "the first attempt fails and a retry is announced"
cp "$GOOD_TAR" "$TMP/helper.tar.new" && mv "$TMP/helper.tar.new" "$HELPER_TAR"
e2e_py wait "$URL" 120 $b >/dev/null 2>&1
[ "$(e2e_py state "$URL" $b | cut -d' ' -f1)" = success ]
check $? "the retry succeeds once the cause is gone"
trace "$b" >"$TMP/trace-b.txt"
# (The trace reaches GitLab a few seconds late: the fix may come after
# the second attempt.)
n_b=$(grep -c 'Preparation failed' "$TMP/trace-b.txt")
[ "$(grep -c 'Using Docker executor' "$TMP/trace-b.txt")" -eq $((n_b + 1)) ] &&
    [ "$n_b" -ge 1 ] && [ "$n_b" -le 2 ] &&
    grep -q 'Job succeeded' "$TMP/trace-b.txt"
check $? "$n_b failed attempt(s) in the trace, then the job ran"

# C: a failed pull is the job's problem: not retried.
c=$(e2e_py submit "$URL" 1 --name no-such-image \
    --image flotilla-test-no-such-image:1)
e2e_py wait "$URL" 120 $c >/dev/null 2>&1
trace "$c" >"$TMP/trace-c.txt"
st=$(e2e_py state "$URL" $c)
[ "$st" = "failed image_pull_failure" ] &&
    ! grep -q 'Will be retried' "$TMP/trace-c.txt"
check $? "a job that does not fail for a system reason is not retried ($st)"

grep -q "$TOKEN" "$TMP/flotilla.log"
check $((! $?)) "the runner token never appears in the log"
