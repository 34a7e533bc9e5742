#!/bin/sh
# flotilla run end to end: 20 jobs from the fake GitLab on
# fleeting-plugin-local instances (capacity_per_instance 2, max_use_count 3,
# max_instances 4).  Every job succeeds; no instance runs more than 3 jobs
# nor more than 2 at once; each trace GitLab assembled matches the crc32
# and size flotilla reported; idle instances go after idle_time; SIGQUIT
# then stops the daemon with status 0 and leaves no instance behind.
set -u
. "$TOP/tests/lib/e2e.sh"
e2e_harness run_e2e 18

e2e_infra
check $? "a Docker engine, the test image and the fake GitLab"
MPORT=$(tl_free_port 127.0.0.1)
E2E_DOCKER_EXTRA='ulimit = { nofile = "1024:2048" }'
E2E_GLOBAL_EXTRA="listen_address = \"127.0.0.1:$MPORT\"" \
E2E_CAP=2 E2E_MAX_USE=3 E2E_MAX_INST=4 E2E_IDLE=0 E2E_IDLE_TIME=8s \
    e2e_config "$TMP/config.toml"
# systemd's notification socket, as a Type=notify unit would have it.
/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(4096) + b"\n")
' "$TMP/notify.sock" "$TMP/notify.log" &
tl_wait 10 test -S "$TMP/notify.sock"
NOTIFY_SOCKET=$TMP/notify.sock
export NOTIFY_SOCKET
e2e_start
check $? "flotilla run starts"
unset NOTIFY_SOCKET
tl_wait 20 grep -q "READY=1" "$TMP/notify.log"
check $? "sd_notify: READY=1 once the runners are started"

ids=$(e2e_py submit "$URL" 20 --sleep 2 --name e2e)
e2e_py started "$URL" 120 $(echo $ids | cut -d' ' -f1)
curl -fsS "http://127.0.0.1:$MPORT/debug/jobs/list" >"$TMP/jobs.out"
grep -q "state=running" "$TMP/jobs.out"
check $? "/debug/jobs/list shows running jobs"
curl -fsS "http://127.0.0.1:$MPORT/metrics" >"$TMP/metrics.out"
grep -q '^gitlab_runner_jobs{.*state="running"' "$TMP/metrics.out" &&
    grep -q '^fleeting_provisioner_instances{' "$TMP/metrics.out" &&
    grep -q '^gitlab_runner_api_request_statuses_total{.*endpoint="request_job"' "$TMP/metrics.out" &&
    grep -q '^gitlab_runner_worker_slots_number 8$' "$TMP/metrics.out" &&
    grep -q '^gitlab_runner_worker_slot_operations_total{operation="started"} 8$' "$TMP/metrics.out"
check $? "/metrics: running jobs, fleeting_*, API request and worker slot families"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/health/ready")" = 200 ]
check $? "/health/ready answers 200 while running"
e2e_jobs_ok 3 2 "every job succeeded; traces match; instances ran <= 3 jobs, <= 2 at once" $ids

# User steps after the script (GitLab's release step): each its own
# step_NAME stage, in order; a failing script skips the rest.
rel=$(e2e_py submit "$URL" 1 --name release --script 'echo in-script' \
    --release 'echo in-release-$CI_JOB_ID')
relf=$(e2e_py submit "$URL" 1 --name release-skipped --script 'exit 4' \
    --release 'echo never-here')
e2e_py wait "$URL" 60 $rel $relf >/dev/null 2>&1
curl -fsS "$URL/__fake/jobs/$rel/trace" >"$TMP/trace-rel.txt"
[ "$(e2e_py state "$URL" $rel | cut -d' ' -f1)" = success ] &&
    grep -q "step_release.*Executing \"step_release\" stage of the job script" "$TMP/trace-rel.txt" &&
    grep -qE "(^|O )in-release-$rel" "$TMP/trace-rel.txt" &&
    [ "$(grep -n 'in-script$' "$TMP/trace-rel.txt" | head -1 | cut -d: -f1)" -lt \
      "$(grep -nE "(^|O )in-release-$rel" "$TMP/trace-rel.txt" | cut -d: -f1)" ]
check $? "a release step runs after the script as step_release"
curl -fsS "$URL/__fake/jobs/$relf/trace" >"$TMP/trace-relf.txt"
[ "$(e2e_py state "$URL" $relf)" = "failed script_failure" ] &&
    ! grep -q "never-here$" "$TMP/trace-relf.txt"
check $? "a failed script skips the release step"

# FF_TIMESTAMPS (on by default, as GitLab Runner 18.7+): every line of the
# trace has GitLab's header; a job may turn it off.
TSRE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z '
curl -fsS "$URL/__fake/jobs/$rel/trace" | tr -d '\r' >"$TMP/trace-ts.txt"
grep -qE "${TSRE}00O Running with flotilla" "$TMP/trace-ts.txt" &&
    grep -qE "${TSRE}01O in-release-$rel" "$TMP/trace-ts.txt" &&
    ! grep -vqE "${TSRE}0[01][OE][ +]" "$TMP/trace-ts.txt"
check $? "FF_TIMESTAMPS: every trace line has GitLab's header (00 runner, 01 job)"
nts=$(e2e_py submit "$URL" 1 --name no-timestamps --script 'echo plain-line' \
    --var FF_TIMESTAMPS=false)
e2e_py wait "$URL" 60 $nts >/dev/null 2>&1
curl -fsS "$URL/__fake/jobs/$nts/trace" >"$TMP/trace-nts.txt"
grep -q '^plain-line' "$TMP/trace-nts.txt" &&
    ! grep -qE "$TSRE" "$TMP/trace-nts.txt"
check $? "FF_TIMESTAMPS=false in the job: no headers"

# [runners.docker.ulimit] reaches the build container.
u=$(e2e_py submit "$URL" 1 --name ulimit --script 'echo "nofile=$(ulimit -n):$(ulimit -Hn)"')
e2e_py wait "$URL" 60 $u >/dev/null 2>&1
curl -fsS "$URL/__fake/jobs/$u/trace" | grep -qE '(^|O )nofile=1024:2048'
check $? "[runners.docker] ulimit applies to the build container"

v=$(curl -fsS "$URL/__fake/violations")
[ "$v" = "[]" ]
check $? "the fake GitLab saw no protocol violation ($v)"

tl_wait 40 e2e_instances_le 0
check $? "idle instances are deleted after idle_time (left: $(e2e_instances))"

grep -q "$TOKEN" "$TMP/flotilla.log"
check $((! $?)) "the runner token never appears in the log"

kill -QUIT "$FL_PID"
tl_wait 60 tl_dead "$FL_PID"
wait "$FL_PID"
check $? "SIGQUIT: flotilla exits with status 0"
grep -q "STOPPING=1" "$TMP/notify.log"
check $? "sd_notify: STOPPING=1 on SIGQUIT"
FL_PID=
