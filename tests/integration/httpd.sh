#!/bin/sh
# The metrics and debug HTTP server (manager/httpd.c, manager/metrics.c)
# through build/tests/httpd_probe on 127.0.0.1: /metrics parsed by a
# strict text-format parser (prom_parse.py) with GitLab Runner's and the
# fleeting_* families and exact histogram numbers, label escaping end to
# end, collectors run at each scrape, /debug/jobs/list, the readiness and
# liveness endpoints across process states, 404/405/HEAD, parallel
# scrapes, a stalled client, oversized headers, a clear bind failure, and
# a clean stop.  HTTPD_PROBE overrides the probe (e.g. the ASan build's).
set -u
. "$TOP/tests/lib/common.sh"

PROBE=${HTTPD_PROBE:-$BUILD/tests/httpd_probe}
PARSE="$TL_PYTHON $TOP/tests/integration/prom_parse.py"
TMP=$(mktemp -d)
PID=

cleanup() {
	trap - EXIT INT TERM HUP
	[ -n "$PID" ] && tl_stop 5 "$PID" >/dev/null 2>&1
	if [ -n "${LOGDIR:-}" ]; then
		mkdir -p "$LOGDIR/httpd"
		cp "$TMP"/*.out "$TMP"/*.err "$TMP"/metrics* "$LOGDIR/httpd/" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
# t NAME CMD...: a TAP line from CMD's status; $TMP/why shown on failure.
t() {
	_name=$1; shift
	: >"$TMP/why"
	if "$@" >>"$TMP/why" 2>&1; then ok "$_name"; else nok "$_name"; sed 's/^/#   /' "$TMP/why"; fi
}
# get PATH [CURL ARGS]: headers in $TMP/h, body in $TMP/b, status printed.
get() {
	_p=$1; shift
	curl -sS --max-time 10 -D "$TMP/h" -o "$TMP/b" -w '%{http_code}' "$@" \
	    "http://$ADDR$_p"
}
hdr() { tr -d '\r' <"$TMP/h" | grep -qi "^$1\$"; }
val() { $PARSE value "$TMP/metrics" "$@"; }
# is NAME LABELS WANT: the sample's value is WANT.
is() {
	_v=$(val "$1" "$2")
	[ "$_v" = "$3" ] || { echo "$1 $2 = $_v, want $3"; return 1; }
}

PLAN=27
echo "1..$PLAN"
if [ ! -x "$PROBE" ]; then
	while [ $n -lt $PLAN ]; do nok "no $PROBE"; done
	exit 1
fi

"$PROBE" 127.0.0.1:0 >"$TMP/probe.out" 2>"$TMP/probe.err" &
PID=$!
tl_wait 10 grep -q '^listening ' "$TMP/probe.out"
ADDR=$(awk '/^listening /{print $2}' "$TMP/probe.out")
case "$ADDR" in
127.0.0.1:[1-9]*) ok "probe listening on $ADDR (port chosen by the kernel)" ;;
*)	nok "probe did not start"; tl_diag "$TMP/probe.err"
	while [ $n -lt $PLAN ]; do nok "no server"; done
	exit 1 ;;
esac

# --- /metrics
code=$(get /metrics); cp "$TMP/b" "$TMP/metrics"
t "GET /metrics: 200, Content-Type text/plain; version=0.0.4; charset=utf-8" \
    sh -c "[ '$code' = 200 ] && tr -d '\r' <'$TMP/h' | grep -qx 'Content-Type: text/plain; version=0.0.4; charset=utf-8'"
t "the exposition parses strictly (HELP/TYPE once, contiguous, escapes, histograms)" \
    $PARSE check "$TMP/metrics"

$PARSE types "$TMP/metrics" >"$TMP/types.out"
want_types() {
	_miss=0
	for _ft in "$@"; do
		grep -qx "$_ft" "$TMP/types.out" || { echo "missing: $_ft"; _miss=1; }
	done
	return $_miss
}
t "GitLab Runner's families with their types" want_types \
    "gitlab_runner_jobs gauge" "gitlab_runner_jobs_total counter" \
    "gitlab_runner_failed_jobs_total counter" \
    "gitlab_runner_job_duration_seconds histogram" \
    "gitlab_runner_concurrent gauge" "gitlab_runner_limit gauge" \
    "gitlab_runner_request_concurrency gauge" \
    "gitlab_runner_request_concurrency_exceeded_total counter" \
    "gitlab_runner_request_concurrency_hard_limit gauge" \
    "gitlab_runner_api_request_statuses_total counter" \
    "gitlab_runner_api_request_duration_seconds histogram" \
    "gitlab_runner_errors_total counter" "gitlab_runner_version_info gauge" \
    "gitlab_runner_process_state_info gauge" \
    "gitlab_runner_worker_slots_number gauge" \
    "gitlab_runner_worker_slot_operations_total counter"
t "fleeting_provisioner_* and fleeting_taskscaler_* families with their types" want_types \
    "fleeting_provisioner_instances gauge" \
    "fleeting_provisioner_max_instances gauge" \
    "fleeting_provisioner_missed_updates_total counter" \
    "fleeting_provisioner_instance_operations_total counter" \
    "fleeting_provisioner_internal_operations_total counter" \
    "fleeting_provisioner_instance_creation_time_seconds histogram" \
    "fleeting_provisioner_instance_is_running_time_seconds histogram" \
    "fleeting_provisioner_instance_deletion_time_seconds histogram" \
    "fleeting_provisioner_instance_life_duration_seconds histogram" \
    "fleeting_taskscaler_tasks gauge" \
    "fleeting_taskscaler_max_tasks_per_instance gauge" \
    "fleeting_taskscaler_max_use_count_per_instance gauge" \
    "fleeting_taskscaler_task_operations_total counter" \
    "fleeting_taskscaler_scale_operations_total counter" \
    "fleeting_taskscaler_desired_instances gauge" \
    "fleeting_taskscaler_task_instance_readiness_time_seconds histogram"

proc_ok() {
	want_types "process_cpu_seconds_total counter" "process_open_fds gauge" \
	    "process_max_fds gauge" "process_resident_memory_bytes gauge" \
	    "process_virtual_memory_bytes gauge" "process_start_time_seconds gauge" || return 1
	_now=$(date +%s)
	_st=$(val process_start_time_seconds); _rss=$(val process_resident_memory_bytes)
	_fds=$(val process_open_fds)
	"$TL_PYTHON" -c "import sys; st,rss,fds,now=map(float,sys.argv[1:]); sys.exit(0 if now-120<st<=now+1 and rss>1e5 and 3<=fds<1000 else 1)" \
	    "$_st" "$_rss" "$_fds" "$_now" || { echo "start=$_st now=$_now rss=$_rss fds=$_fds"; return 1; }
}
t "process_* from /proc/self (start time about now, RSS and fds plausible)" proc_ok

A='"runner": "t_aaaa1111", "runner_name": "alpha", "system_id": "s_000000000001"'
hist_ok() {
	# Observed 20, 120, 220, 320, 420 with GitLab Runner's buckets.
	_l='"runner": "t_aaaa1111", "runner_name": "alpha", "system_id": "s_000000000001", "mode": "traditional"'
	is gitlab_runner_job_duration_seconds_bucket "{$_l, \"le\": \"30\"}" 1 &&
	is gitlab_runner_job_duration_seconds_bucket "{$_l, \"le\": \"60\"}" 1 &&
	is gitlab_runner_job_duration_seconds_bucket "{$_l, \"le\": \"300\"}" 3 &&
	is gitlab_runner_job_duration_seconds_bucket "{$_l, \"le\": \"600\"}" 5 &&
	is gitlab_runner_job_duration_seconds_bucket "{$_l, \"le\": \"36000\"}" 5 &&
	is gitlab_runner_job_duration_seconds_bucket "{$_l, \"le\": \"+Inf\"}" 5 &&
	is gitlab_runner_job_duration_seconds_sum "{$_l}" 1100 &&
	is gitlab_runner_job_duration_seconds_count "{$_l}" 5 &&
	# A fleet histogram with its own buckets, cumulated.
	is fleeting_provisioner_instance_creation_time_seconds_bucket "{$A, \"le\": \"10\"}" 5 &&
	is fleeting_provisioner_instance_creation_time_seconds_bucket "{$A, \"le\": \"+Inf\"}" 7 &&
	is fleeting_provisioner_instance_creation_time_seconds_sum "{$A}" 123.5
}
t "histogram numbers (job durations, a fleet's creation times)" hist_ok

values_ok() {
	is gitlab_runner_concurrent '{}' 8 &&
	is gitlab_runner_jobs "{$A, \"state\": \"idle\", \"stage\": \"idle\", \"executor_stage\": \"idle\"}" 0 &&
	is gitlab_runner_jobs "{$A, \"state\": \"running\", \"stage\": \"step_script\", \"executor_stage\": \"running_script\"}" 1 &&
	is gitlab_runner_api_request_statuses_total '{"runner": "t_aaaa1111", "system_id": "s_000000000001", "endpoint": "request_job", "status": "204", "method": "post"}' 40 &&
	is gitlab_runner_errors_total '{"level": "warning"}' 1 &&
	is gitlab_runner_errors_total '{"level": "panic"}' 0 &&
	is fleeting_taskscaler_tasks "{$A, \"state\": \"acquired\"}" 2 &&
	is fleeting_taskscaler_scale_operations_total "{$A, \"operation\": \"down\"}" 2 &&
	is fleeting_provisioner_max_instances '{"runner": "t_bbbb2222", "runner_name": "we\"ird\\name\nline2 caf\u00e9", "system_id": "s_000000000002"}' 1
}
t "sample values, and two fleets merged in one family each" values_ok

escape_ok() {
	$PARSE labels "$TMP/metrics" gitlab_runner_jobs_total >"$TMP/labels.out"
	grep -qF '"runner_name": "we\"ird\\name\nline2 caf\u00e9"' "$TMP/labels.out" ||
	    { cat "$TMP/labels.out"; return 1; }
	grep -qF 'runner_name="we\"ird\\name\nline2 café"' "$TMP/metrics"
}
t "a runner name with quote, backslash, newline and UTF-8 survives escaping" escape_ok

s1=$(val probe_scrapes_total)
get /metrics >/dev/null; cp "$TMP/b" "$TMP/metrics2"
s2=$($PARSE value "$TMP/metrics2" probe_scrapes_total)
t "collectors run at every scrape ($s1 then $s2)" [ "$s2" -eq $((s1 + 1)) ]

# --- /debug/jobs/list
code=$(get /debug/jobs/list)
jobs_ok() {
	[ "$code" = 200 ] || { echo "status $code"; return 1; }
	hdr 'X-List-Version: 2' || { cat "$TMP/h"; return 1; }
	[ "$(wc -l <"$TMP/b")" -eq 2 ] || { cat "$TMP/b"; return 1; }
	grep -qx 'url=https://gitlab.example.com/group/project/-/jobs/101 state=running stage=step_script executor_stage=running_script duration=1m23.5s' "$TMP/b" &&
	grep -qx 'url=https://gitlab.example.com/group/project/-/jobs/102 state=running stage=prepare_executor executor_stage=preparing duration=1.5s' "$TMP/b"
}
t "/debug/jobs/list: X-List-Version 2, GitLab Runner's line format" jobs_ok

# --- readiness across states (SIGUSR1 steps the state)
ready_is() {	# CODE BODY STATE
	_c=$(get /health/ready)
	[ "$_c" = "$1" ] && [ "$(cat "$TMP/b")" = "$2" ] ||
	    { echo "/health/ready: $_c $(cat "$TMP/b")"; return 1; }
	_c=$(get /debug/process/state)
	[ "$_c" = 200 ] && [ "$(cat "$TMP/b")" = "$3" ] ||
	    { echo "/debug/process/state: $_c $(cat "$TMP/b")"; return 1; }
}
step() {
	kill -USR1 "$PID"
	tl_wait 5 grep -qx "state $1" "$TMP/probe.out"
}
t "starting: /health/ready 503, /debug/process/state starting" ready_is 503 starting starting
step running
running_ok() {
	ready_is 200 ready running || return 1
	get /metrics >/dev/null
	$PARSE value "$TMP/b" gitlab_runner_process_state_info '{"state": "running"}' | grep -qx 1 &&
	[ "$($PARSE labels "$TMP/b" gitlab_runner_process_state_info | wc -l)" -eq 1 ]
}
t "running: /health/ready 200 ready, gitlab_runner_process_state_info{state=running} 1" running_ok
step graceful-shutdown
t "graceful shutdown: /health/ready 503 again" ready_is 503 graceful-shutdown graceful-shutdown

code=$(get /healthz)
t "/healthz 200 ok" sh -c "[ '$code' = 200 ] && [ \"\$(cat '$TMP/b')\" = ok ]"

# --- methods and paths
code=$(get /debug/pprof/)
t "unknown path (pprof is not served): 404" [ "$code" = 404 ]
m405() {
	_c=$(get /metrics -X POST -d x=1)
	[ "$_c" = 405 ] && hdr 'Allow: GET, HEAD' || { echo "POST /metrics: $_c"; return 1; }
	_c=$(get /health/ready -X DELETE)
	[ "$_c" = 405 ] || { echo "DELETE /health/ready: $_c"; return 1; }
}
t "POST /metrics and DELETE /health/ready: 405 with Allow: GET, HEAD" m405
head_ok() {
	# HEAD then GET on one keep-alive connection: the HEAD answer has
	# headers only, so the next answer follows at once.
	"$TL_PYTHON" - "$ADDR" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(':', 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b'HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n'
          b'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, sep, rest = data.partition(b'\r\n\r\n')
lines = head.decode().split('\r\n')
head2, sep2, body2 = rest.partition(b'\r\n\r\n')
ok = (lines[0] == 'HTTP/1.1 200 OK' and sep and
      'Content-Type: text/plain; version=0.0.4; charset=utf-8' in lines and
      any(l.startswith('Content-Length: ') and int(l[16:]) > 1000
          for l in lines) and
      head2.startswith(b'HTTP/1.1 200 OK') and body2 == b'ok\n')
if not ok:
    print(repr(data[:400]))
sys.exit(0 if ok else 1)
EOF
}
t "HEAD /metrics: 200, content type and length, no body (keep-alive GET follows)" head_ok

# --- robustness
parallel_ok() {
	_i=0; _pids=
	while [ $_i -lt 20 ]; do
		curl -sS --max-time 10 -o "$TMP/metrics.p$_i" "http://$ADDR/metrics" &
		_pids="$_pids $!"
		_i=$((_i + 1))
	done
	wait $_pids	# not a bare wait: the probe is our child too
	_i=0
	while [ $_i -lt 20 ]; do
		$PARSE check "$TMP/metrics.p$_i" >/dev/null || { echo "scrape $_i"; return 1; }
		_i=$((_i + 1))
	done
}
t "20 parallel scrapes all parse" parallel_ok

stall_ok() {
	# Half a request held open must not block anyone else.
	"$TL_PYTHON" - "$ADDR" <<'EOF'
import socket, subprocess, sys, time
host, port = sys.argv[1].rsplit(':', 1)
s = socket.create_connection((host, int(port)))
s.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\n')
t0 = time.time()
r = subprocess.run(['curl', '-sS', '--max-time', '5', '-o', '/dev/null',
                    '-w', '%{http_code}', 'http://%s/healthz' % sys.argv[1]],
                   capture_output=True, text=True)
ok = r.stdout == '200' and time.time() - t0 < 3
s.close()
sys.exit(0 if ok else 1)
EOF
}
t "a stalled client does not block the server" stall_ok

big_ok() {
	_big=$("$TL_PYTHON" -c "print('a' * 20000)")
	_c=$(get /metrics -H "X-Big: $_big")
	case "$_c" in 4??|000) ;; *) echo "oversized headers answered $_c"; return 1 ;; esac
	_c=$(get /healthz)
	[ "$_c" = 200 ] || { echo "after: $_c"; return 1; }
}
t "oversized request headers refused, server still serving" big_ok

# --- bind failures
"$PROBE" "$ADDR" >"$TMP/second.out" 2>"$TMP/second.err"
rc=$?
t "second server on $ADDR: exit 1, 'listen $ADDR: Address already in use'" \
    sh -c "[ $rc -eq 1 ] && grep -qx 'error: listen $ADDR: Address already in use' '$TMP/second.err'"
code=$(get /healthz)
t "the first server still serves" [ "$code" = 200 ]
"$PROBE" 127.0.0.1:99999 >"$TMP/bad.out" 2>"$TMP/bad.err"
rc=$?
t "malformed address 127.0.0.1:99999: exit 1, invalid address" \
    sh -c "[ $rc -eq 1 ] && grep -q '^error: listen 127.0.0.1:99999: invalid address' '$TMP/bad.err'"
"$PROBE" 192.0.2.1:9252 >"$TMP/na.out" 2>"$TMP/na.err"
rc=$?
t "an address not on this host: exit 1, Cannot assign requested address" \
    sh -c "[ $rc -eq 1 ] && grep -qx 'error: listen 192.0.2.1:9252: Cannot assign requested address' '$TMP/na.err'"

# --- stop
kill -TERM "$PID"
tl_wait 5 tl_dead "$PID"
wait "$PID"
rc=$?
t "SIGTERM: exit 0 after freeing everything" sh -c "[ $rc -eq 0 ] && grep -qx stopped '$TMP/probe.out'"
PID=
if [ -s "$TMP/probe.err" ]; then
	nok "probe wrote to stderr"; tl_diag "$TMP/probe.err"
else
	ok "probe stderr empty (no sanitizer reports)"
fi
