#!/bin/sh
# The GitLab client (manager/gitlab.c, gitlab_job.c, gitlab_trace.c) driven
# by build/tests/gitlab_probe against the strict fake coordinator
# tests/fakes/fake_gitlab.py on 127.0.0.1:<free port>: verify (URL
# normalisation, $VAR expansion, bad token), unregistering a manager, job
# requests (204, a full job parsed, malformed payloads, long polling),
# retries (Retry-After, RateLimit-ResetTime, exhaustion), traces (several
# patches, > 1 MiB split in 1 MiB patches, a forced 416, a 5 s 502 outage
# in the middle and another across the final update, with the fake's
# checksum equal to ours), cancel, aborts (403 on a patch, on the
# keep-alive PUT, on the ack), TLS with a private CA, the fake's artifact
# endpoints, no token in any output or URL, and the fake's protocol
# checks.  The probe comes from $BUILD (BUILD=$TOP/build/asan for the
# sanitizer build).
set -u
. "$TOP/tests/lib/common.sh"

PROBE=$BUILD/tests/gitlab_probe
FAKE=$TOP/tests/fakes/fake_gitlab.py
TMP=$(mktemp -d /tmp/flgl.XXXXXX)
RTOKEN=glrt-t1_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export FAKE_GITLAB_TOKENS=$RTOKEN
export GITLAB_PROBE_TOKEN=$RTOKEN
FAKEPID=
TLSPID=
T0=$(date +%s%N)

cleanup() {
	trap - EXIT INT TERM HUP
	[ -n "$FAKEPID" ] && tl_stop 5 "$FAKEPID" >/dev/null
	[ -n "$TLSPID" ] && tl_stop 5 "$TLSPID" >/dev/null
	if [ -n "${LOGDIR:-}" ]; then
		mkdir -p "$LOGDIR/gitlab_client"
		cp "$TMP"/*.out "$TMP"/*.err "$TMP"/*/requests.jsonl \
		    "$LOGDIR/gitlab_client/" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }
mark() { echo "# $(( ($(date +%s%N) - T0) / 1000000 )) ms: $*"; }
show() { sed 's/^/#   /' "$1" | tail -n "${2:-15}"; }

# start_fake DIR [ARGS...]: the fake in the background; sets PORT.
start_fake() {
	_d=$1
	shift
	mkdir -p "$_d"
	"$TL_PYTHON" "$FAKE" --port-file "$_d/port" --log "$_d/requests.jsonl" \
	    "$@" >"$_d/fake.log" 2>&1 &
	_pid=$!
	if ! tl_wait 10 test -s "$_d/port"; then
		echo "# fake did not start"; tl_diag "$_d/fake.log"; return 1
	fi
	PORT=$(cat "$_d/port")
	LASTPID=$_pid
}

# ctl METHOD PATH [JSON]: the fake's control API; prints the answer.
ctl() {
	if [ $# -ge 3 ]; then
		curl -sS -X "$1" -H 'Content-Type: application/json' \
		    --data-binary "$3" "http://127.0.0.1:$PORT/__fake/$2"
	else
		curl -sS -X "$1" "http://127.0.0.1:$PORT/__fake/$2"
	fi
}

# jv JSON EXPR: evaluate EXPR on the JSON document d.
jv() {
	"$TL_PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# probe NAME ARGS...: run the probe, output in $TMP/NAME.out/.err.
probe() {
	_name=$1
	shift
	"$PROBE" --url "http://127.0.0.1:$PORT/" "$@" >"$TMP/$_name.out" \
	    2>"$TMP/$_name.err"
}
has() { grep -q -- "$2" "$TMP/$1.out"; }
# val NAME PREFIX KEY: KEY=value on the first line of NAME.out starting PREFIX.
val() { grep -- "$2" "$TMP/$1.out" | head -1 | tr ' ' '\n' | sed -n "s/^$3=//p"; }

# add_job JSON: queue a job; prints its id and remembers its token.
add_job() {
	_r=$(ctl POST jobs "$1")
	echo "$_r" | "$TL_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["token"])' \
	    >>"$TMP/job-tokens"
	jv "$_r" 'd["id"]'
}

echo "1..48"
[ -x "$PROBE" ] || { echo "# no $PROBE"; exit 1; }
: >"$TMP/job-tokens"
start_fake "$TMP/main" --update-interval 1 || exit 1
FAKEPID=$LASTPID
mark "fake on port $PORT"

# --- runners ---
probe verify verify
check $? "verify: probe exits 0"
has verify '^verify outcome=ok status=200' && has verify '^base_url http://127.0.0.1:'"$PORT"'/api/v4/$'
check $? "verify: 200 from runners/verify, base URL ends in /api/v4/"

"$PROBE" --url "http://127.0.0.1:$PORT/ci//" verify >"$TMP/verify-ci.out" 2>"$TMP/verify-ci.err"
has verify-ci '^base_url http://127.0.0.1:'"$PORT"'/api/v4/$' && has verify-ci '^verify outcome=ok'
check $? "verify: trailing / and /ci stripped from the URL"

GL_TEST_HOST=127.0.0.1:$PORT GL_TEST_TOK=$RTOKEN GITLAB_PROBE_TOKEN='${GL_TEST_TOK}' \
    "$PROBE" --url 'http://$GL_TEST_HOST/' verify >"$TMP/verify-env.out" 2>"$TMP/verify-env.err"
has verify-env '^verify outcome=ok status=200'
check $? "verify: \$VAR and \${VAR} expanded in url and token"

GITLAB_PROBE_TOKEN=glrt-wrongtoken000 probe verify-bad verify
has verify-bad '^verify outcome=forbidden status=403'
check $? "verify: an unknown token is 403 forbidden"

probe unreg unregister
has unreg '^unregister outcome=ok status=204'
check $? "unregister: DELETE runners/managers 204 for the verified system_id"
probe unreg2 unregister
has unreg2 '^unregister outcome=not_found status=404'
check $? "unregister: a second time 404 not found"

# --- job requests ---
probe none request
has none '^request outcome=no_job status=204 err=0 attempts=1 healthy=1' &&
    [ -n "$(sed -n 's/^last_update //p' "$TMP/none.out")" ]
check $? "request: 204 no job, healthy, X-GitLab-Last-Update stored"

add_job "$(cat "$TOP/tests/data/gitlab/job-full.json")" >/dev/null
echo "glcbt-64_fixturedeptoken4241" >>"$TMP/job-tokens"
probe full request
has full '^request outcome=ok status=201' && has full '^job id=4242$' &&
    has full '^job image=debian:12$' && has full '^job image_entrypoint=2$' &&
    has full '^job image_pull_policy=if-not-present$' &&
    has full '^job steps=2$' && has full '^job step script lines=2 timeout=3600 when=on_success$' &&
    has full '^job step after_script lines=1 timeout=300 when=always$' &&
    has full '^job variables=3$' && has full '^job var SECRET public=0 masked=1 file=0 raw=1$' &&
    has full '^job var KUBECONFIG public=0 masked=0 file=1 raw=0$' &&
    has full '^job services=2$' && has full '^job service postgres:16 aliases=2$' &&
    has full '^job service redis:7 aliases=0$' &&
    has full '^job artifacts=1$' && has full '^job caches=1$' &&
    has full '^job dependencies=1$' &&
    has full '^job git_ref=main git_sha=0123456789abcdef0123456789abcdef01234567 depth=20$' &&
    has full '^job timeout=3600$' && has full '^job trace_sections=1$' &&
    has full '^job unsupported=$'
check $? "request: 201 with a full job, every field parsed"
[ $? -eq 0 ] || show "$TMP/full.out" 40

ctl POST inject '{"method":"POST","path":"/api/v4/jobs/request","status":201,"body":{"id":"x","token":"t"}}' >/dev/null
probe malformed request
has malformed '^request outcome=failed status=201 err=-3 attempts=1 healthy=0' &&
    has malformed 'id: missing or not an integer'
check $? "request: 201 with a malformed job is a clear parse error, unhealthy"

ctl POST inject '{"method":"POST","path":"/api/v4/jobs/request","status":201,"body":"not json"}' >/dev/null
probe notjson request
has notjson '^request outcome=failed status=201 err=-9 attempts=1 healthy=0' &&
    has notjson 'not application/json'
check $? "request: 201 without application/json is a protocol error, unhealthy"

# Long polling: Workhorse holds a request that carries last_update.
ctl POST config '{"hold": 2}' >/dev/null
probe poll-idle poll --wait 2
t2=$(val poll-idle '^poll 2 took_ms' took_ms)
has poll-idle '^poll 1 outcome=no_job' && has poll-idle '^poll 2 outcome=no_job' &&
    [ "$t2" -ge 1800 ] && [ "$t2" -le 3500 ]
check $? "long poll: the second request (with last_update) held ~2 s (${t2} ms)"

( sleep 1; ctl POST jobs '{"image":{"name":"alpine"}}' >"$TMP/poll-job.json" ) &
adder=$!
probe poll-wake poll --wait 3
wait $adder
cat "$TMP/poll-job.json" | "$TL_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["token"])' >>"$TMP/job-tokens"
t2=$(val poll-wake '^poll 2 took_ms' took_ms)
has poll-wake '^poll 3 outcome=ok status=201' && [ "$t2" -ge 700 ] && [ "$t2" -le 1800 ]
check $? "long poll: a new job ends the hold early (204 after ${t2} ms), then 201"
ctl POST config '{"hold": 0}' >/dev/null

# --- retries ---
ctl POST inject '{"method":"POST","path":"/api/v4/jobs/request","status":429,"headers":{"Retry-After":"2"}}' >/dev/null
probe retry-after request
el=$(val retry-after '^request outcome' elapsed_ms)
has retry-after 'attempt POST jobs/request status=429 n=1 retry_in_ms=2000' &&
    has retry-after '^request outcome=no_job status=204 err=0 attempts=2' &&
    [ "$el" -ge 2000 ] && [ "$el" -lt 3500 ]
check $? "retry: 429 with Retry-After: 2 waited 2 s (${el} ms), then 204"

RESET=$("$TL_PYTHON" -c 'import time,email.utils; print(email.utils.formatdate(time.time()+3, usegmt=True))')
ctl POST inject "{\"method\":\"POST\",\"path\":\"/api/v4/jobs/request\",\"status\":503,\"headers\":{\"RateLimit-ResetTime\":\"$RESET\",\"Retry-After\":\"30\"}}" >/dev/null
probe reset-time request
rt=$(grep 'status=503 n=1' "$TMP/reset-time.out" | tr ' ' '\n' | sed -n 's/^retry_in_ms=//p')
has reset-time '^request outcome=no_job status=204 err=0 attempts=2' &&
    [ "${rt:-0}" -ge 1500 ] && [ "${rt:-0}" -le 3000 ]
check $? "retry: RateLimit-ResetTime (now + 3 s) preferred over Retry-After (${rt} ms)"

ctl POST inject '{"method":"POST","path":"/api/v4/jobs/request","status":500,"count":5}' >/dev/null
probe exhaust request --backoff-min 20
has exhaust '^request outcome=failed status=500 err=0 attempts=5 healthy=1' &&
    [ "$(grep -c 'attempt POST jobs/request status=500' "$TMP/exhaust.out")" -eq 5 ]
check $? "retry: 5 attempts at most, then the 500 is reported"

# --- traces ---
# fake_state ID: the job's state JSON; fake_ok NAME ID: done ok and the
# fake's checksum, size and crc32 equal ours.
fake_ok() {
	_st=$(ctl GET "jobs/$2")
	_crc=$(val "$1" '^done' crc32)
	_size=$(val "$1" '^done' size)
	has "$1" '^done outcome=ok' &&
	    [ "$(jv "$_st" 'd["checksum_ok"]')" = True ] &&
	    [ "$(jv "$_st" 'd["trace_crc32"]')" = "$_crc" ] &&
	    [ "$(jv "$_st" 'd["trace_len"]')" = "$_size" ] &&
	    [ "$(jv "$_st" 'd["checksum"]')" = "crc32:$_crc" ]
}

id=$(add_job '{"image":{"name":"alpine"}}')
probe big run --bytes 2500000 --chunk 2500000
st=$(ctl GET "jobs/$id")
fake_ok big "$id" && [ "$(jv "$st" 'len(d["patches"])')" -eq 3 ] &&
    [ "$(jv "$st" 'max(p["len"] for p in d["patches"])')" -eq 1048576 ] &&
    [ "$(jv "$st" 'd["status"]')" = success ]
check $? "trace: 2.5 MB sent as 1 MiB + 1 MiB + rest, checksum and size match"
[ $? -eq 0 ] || show "$TMP/big.out"

id=$(add_job '{"image":{"name":"alpine"}}')
probe several run --bytes 40000 --chunk 5000 --every 300 --interval 500 --state failed --reason script_failure --exit 3
st=$(ctl GET "jobs/$id")
fake_ok several "$id" && [ "$(jv "$st" 'len(d["patches"])')" -ge 3 ] &&
    [ "$(jv "$st" 'd["status"]')" = failed ] &&
    [ "$(jv "$st" 'd["failure_reason"]')" = script_failure ] &&
    [ "$(jv "$st" 'd["exit_code"]')" = 3 ] &&
    [ "$(jv "$st" 'd["updates"][0]["state"]')" = running ]
check $? "trace: incremental patches while running, final failed/script_failure/exit 3"
reqs=$(grep -c '^attempt ' "$TMP/several.out")
newc=$(grep -c '^attempt .*newconn=1' "$TMP/several.out")
[ "$reqs" -ge 5 ] && [ "$newc" -eq 1 ]
check $? "transport: one connection reused for all $reqs requests of a job ($newc opened)"

probe_bg() {
	_name=$1
	shift
	"$PROBE" --url "http://127.0.0.1:$PORT/" "$@" >"$TMP/$_name.out" \
	    2>"$TMP/$_name.err" &
	BGPID=$!
}

id=$(add_job '{"image":{"name":"alpine"}}')
probe_bg r416 run --bytes 200000 --chunk 10000 --every 150 --interval 1000
sleep 2.2
ctl POST "jobs/$id/truncate?len=1000" >/dev/null
wait $BGPID
st=$(ctl GET "jobs/$id")
fake_ok r416 "$id" && has r416 'PATCH.*status=416' &&
    [ "$(jv "$st" 'sum(1 for p in d["patches"] if p["start"] != p["stored"])')" -ge 1 ]
check $? "trace: a 416 resumes from GitLab's Range offset, nothing lost"
[ $? -eq 0 ] || show "$TMP/r416.out"

id=$(add_job '{"image":{"name":"alpine"}}')
probe_bg r502 run --bytes 300000 --chunk 10000 --every 200 --interval 1000
sleep 1.5
ctl POST "fail?status=502&seconds=5" >/dev/null
mark "502 for 5 s"
wait $BGPID
st=$(ctl GET "jobs/$id")
fake_ok r502 "$id" && [ "$(jv "$st" 'd["trace_len"]')" -eq 300000 ] &&
    [ "$(grep -c 'status=502' "$TMP/r502.out")" -ge 5 ] &&
    [ "$(jv "$st" 'd["status"]')" = success ]
check $? "trace: 502 for 5 s mid-job: no byte lost, final state delivered, checksums equal"
[ $? -eq 0 ] || show "$TMP/r502.out"

id=$(add_job '{"image":{"name":"alpine"}}')
probe_bg rfinal run --bytes 30000 --chunk 5000 --every 300 --interval 1000
sleep 0.5
ctl POST "fail?status=503&seconds=4" >/dev/null
wait $BGPID
st=$(ctl GET "jobs/$id")
fin=$(val rfinal '^finish' at_ms)
fake_ok rfinal "$id" && [ "$(jv "$st" 'd["status"]')" = success ] &&
    [ "$(grep -c 'status=503 n=5' "$TMP/rfinal.out")" -ge 2 ] && [ "${fin:-0}" -ge 1000 ]
sleep 1	# the outage is over for the next tests
check $? "trace: the final update survives a 4 s outage (retried rounds with backoff)"
[ $? -eq 0 ] || show "$TMP/rfinal.out"

id=$(add_job '{"image":{"name":"alpine"}}')
probe_bg accepted run --bytes 12000 --chunk 2000 --every 200 --interval 1000
sleep 0.5
ctl POST "jobs/$id/accept_pending?n=2" >/dev/null
wait $BGPID
st=$(ctl GET "jobs/$id")
finals=$(jv "$st" 'sum(1 for u in d["updates"] if u["state"] == "success")')
d202=$(( $(val accepted '^event done' elapsed_ms) - $(val accepted '^finish' at_ms) ))
fake_ok accepted "$id" && [ "$finals" -eq 3 ] &&
    [ "$(grep -c 'PUT jobs/'"$id"' status=202' "$TMP/accepted.out")" -eq 2 ] &&
    [ "$d202" -ge 1900 ] && [ "$d202" -lt 4000 ]
check $? "final update: 202 twice, waited the interval each time (${d202} ms), then 200"

id=$(add_job '{"image":{"name":"alpine"}}')
probe_bg reset412 run --bytes 12000 --chunk 2000 --every 200 --interval 1000
sleep 0.5
ctl POST inject '{"method":"PUT","path":"/api/v4/jobs/","status":412}' >/dev/null
wait $BGPID
st=$(ctl GET "jobs/$id")
fake_ok reset412 "$id" && has reset412 'PUT jobs/'"$id"' status=412' &&
    has reset412 'PATCH jobs/'"$id"'/trace.*status=416' &&
    [ "$(jv "$st" 'd["status"]')" = success ]
check $? "final update: 412 resends the log from 0 (GitLab answers 416, resumed), then 200"

id=$(add_job '{"image":{"name":"alpine"},"features":{"failure_reasons":["script_failure","job_canceled"]}}')
probe_bg cancel run --bytes 10000000 --chunk 1000 --every 100 --interval 500
sleep 1.5
ctl POST "jobs/$id/cancel" >/dev/null
wait $BGPID
st=$(ctl GET "jobs/$id")
has cancel '^event cancel .*cancel=1' && has cancel '^finish state=2 reason=job_canceled' &&
    [ "$(jv "$st" 'd["status"]')" = canceled ] &&
    [ "$(jv "$st" 'd["failure_reason"]')" = job_canceled ] &&
    [ "$(jv "$st" 'd["checksum_ok"]')" = True ]
check $? "cancel: Job-Status canceling seen, job finished failed/job_canceled, now canceled"

id=$(add_job '{"image":{"name":"alpine"}}')
probe_bg forbid run --bytes 10000000 --chunk 1000 --every 100 --interval 500
sleep 1.5
ctl POST "jobs/$id/forbid" >/dev/null
wait $BGPID
rc=$?
has forbid '^event abort outcome=abort status=403' && has forbid '^done outcome=abort' &&
    [ $rc -eq 2 ]
check $? "abort: 403 on a trace patch aborts; the final PUT answers 403 too"

id=$(add_job '{"image":{"name":"alpine"}}')
probe_bg touch run --bytes 2000 --chunk 1000 --every 4000 --interval 300 --force-send 1000
sleep 0.8
ctl POST "jobs/$id/forbid" >/dev/null
wait $BGPID
at=$(val touch '^event abort' elapsed_ms)
has touch 'attempt PUT jobs/'"$id"' status=403' && has touch '^event abort outcome=abort status=403' &&
    [ "${at:-9999}" -lt 3000 ]
check $? "abort: 403 on the keep-alive PUT (no output for the force-send interval)"

id=$(add_job '{"image":{"name":"alpine"}}')
ctl POST inject '{"method":"PUT","path":"/api/v4/jobs/","status":403}' >/dev/null
probe ack403 run --bytes 1000
puts=$(grep -c "\"PUT\", \"path\": \"/api/v4/jobs/$id\"" "$TMP/main/requests.jsonl")
has ack403 '^event ack outcome=abort status=403' && has ack403 '^done outcome=abort' &&
    [ "$puts" -eq 1 ]
check $? "abort: 403 on the acknowledging PUT: no job, no final update ($puts PUT)"

id=$(add_job '{"image":{"name":"alpine"}}')
ctl POST inject '{"method":"PUT","path":"/api/v4/jobs/","status":200,"headers":{"Job-Status":"canceled"}}' >/dev/null
probe ackcanceled run --bytes 1000
has ackcanceled '^event ack outcome=abort status=200 .*job_status=4'
check $? "abort: Job-Status canceled on a 200 is an abort too"

id=$(add_job '{"image":{"name":"alpine"}}')
probe limit run --bytes 100000 --chunk 30000 --output-limit 50000
ctl GET "jobs/$id/trace" >"$TMP/limit.trace"
notices=$(grep -c "Job's log exceeded limit of 50000 bytes" "$TMP/limit.trace")
size=$(val limit '^done' size)
fake_ok limit "$id" && [ "$notices" -eq 1 ] && [ "$size" -gt 50000 ] && [ "$size" -lt 50200 ]
check $? "trace: output_limit caps the log (size $size) and appends GitLab Runner's notice once"

# --- the fake's artifact endpoints (used by the helper binary) ---
printf 'JOB-TOKEN: %s\n' "glcbt-64_fixturejobtoken4242" >"$TMP/jobtok.hdr"
printf '{"token":"%s","state":"running"}' "glcbt-64_fixturejobtoken4242" >"$TMP/ack.json"
curl -sS -o /dev/null -w '%{http_code}' -X PUT -H @"$TMP/jobtok.hdr" \
    -H 'Content-Type: application/json' --data-binary @"$TMP/ack.json" \
    "http://127.0.0.1:$PORT/api/v4/jobs/4242" >"$TMP/art-ack.code"
head -c 3000 /dev/urandom >"$TMP/art.zip"
up=$(curl -sS -o /dev/null -w '%{http_code}' -H @"$TMP/jobtok.hdr" \
    -H 'Transfer-Encoding: chunked' -F "file=@$TMP/art.zip;filename=artifacts.zip" \
    "http://127.0.0.1:$PORT/api/v4/jobs/4242/artifacts?artifact_format=zip&artifact_type=archive")
down=$(curl -sS -o "$TMP/art.back" -w '%{http_code}' -H @"$TMP/jobtok.hdr" \
    "http://127.0.0.1:$PORT/api/v4/jobs/4242/artifacts")
bad=$(curl -sS -o /dev/null -w '%{http_code}' -H 'JOB-TOKEN: glcbt-nope' \
    "http://127.0.0.1:$PORT/api/v4/jobs/4242/artifacts")
[ "$(cat "$TMP/art-ack.code")" = 200 ] && [ "$up" = 201 ] && [ "$down" = 200 ] &&
    [ "$bad" = 403 ] && cmp -s "$TMP/art.zip" "$TMP/art.back"
check $? "fake: artifacts upload (multipart, chunked) 201, download 200 same bytes, bad token 403"

code=$(curl -sS -o /dev/null -w '%{http_code}' -X PATCH -H @"$TMP/jobtok.hdr" \
    --data-binary 'x' -H 'Content-Type: text/plain' \
    "http://127.0.0.1:$PORT/api/v4/jobs/4242/trace?debug_trace=false")
code2=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H @"$TMP/jobtok.hdr" \
    -H 'Content-Type: application/json' --data-binary '{"state":"running"}' \
    "http://127.0.0.1:$PORT/api/v4/jobs/4242")
code3=$(curl -sS -o /dev/null -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data-binary '{}' \
    "http://127.0.0.1:$PORT/api/v4/jobs/request")
[ "$code" = 400 ] && [ "$code2" = 400 ] && [ "$code3" = 400 ]
check $? "fake: PATCH without Content-Range 400, PUT without body token 400, request without token 400"

code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/v4/jobs/4242/artifacts?token=glcbt-64_fixturejobtoken4242")
v=$(ctl GET violations)
[ "$code" = 400 ] && [ "$(jv "$v" 'sum(1 for x in d if x.startswith("token in URL"))')" -ge 1 ]
check $? "fake: a token in a URL is refused and recorded"
# That violation was ours on purpose: the rest must be clean.
v=$(ctl GET violations)
other=$(jv "$v" '[x for x in d if not x.startswith("token in URL") and "4242" not in x]')
[ "$other" = "[]" ]
check $? "fake: the client broke none of the protocol rules"
[ "$other" = "[]" ] || echo "# $other"

# --- headers ---
"$TL_PYTHON" - "$TMP/main/requests.jsonl" <<'EOF'
import json, re, sys
bad = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if not e["path"].startswith("/api/v4/") or "curl" in e.get("User-Agent", ""):
        continue
    ua = e.get("User-Agent", "")
    rid = e.get("X-Request-Id", "")
    if not re.fullmatch(r"flotilla \S+ \(\S+; C; linux/\S+\)", ua):
        bad += 1; print("# bad UA", ua)
    if not re.fullmatch(r"[0-9a-f]{32}", rid):
        bad += 1; print("# bad request id", rid)
    runner_ep = e["path"].startswith(("/api/v4/runners", "/api/v4/jobs/request"))
    if runner_ep and not e["has_runner_token"]:
        bad += 1; print("# no RUNNER-TOKEN", e["path"])
    if not runner_ep and not e["has_job_token"]:
        bad += 1; print("# no JOB-TOKEN", e["path"])
    if e["method"] == "PATCH" and e.get("Content-Type") != "text/plain":
        bad += 1
    if e["method"] in ("POST", "PUT", "DELETE") and e.get("Content-Type") != "application/json":
        bad += 1; print("# ctype", e)
sys.exit(1 if bad else 0)
EOF
check $? "headers: User-Agent shape, fresh 32-hex X-Request-Id, RUNNER-TOKEN / JOB-TOKEN, Content-Type"

ids=$(sed -n 's/.*"X-Request-Id": "\([0-9a-f]*\)".*/\1/p' "$TMP/main/requests.jsonl" | sort | uniq -d | wc -l)
[ "$ids" -eq 0 ]
check $? "headers: no X-Request-Id reused across requests and retries"

# --- TLS ---
T=$TMP/tls
mkdir -p "$T"
tl_make_pki "$T"
check $? "tls: a private CA and a server certificate for 127.0.0.1 made with openssl"
MAINPORT=$PORT
start_fake "$T" --tls-cert "$T/srv.pem" --tls-key "$T/srv.key" || exit 1
TLSPID=$LASTPID
"$PROBE" --url "https://127.0.0.1:$PORT/" --ca "$T/ca.pem" verify >"$TMP/tls-ok.out" 2>"$TMP/tls-ok.err"
has tls-ok '^verify outcome=ok status=200' && has tls-ok '^base_url https://'
check $? "tls: verify over HTTPS with tls-ca-file trusting the private CA"
"$PROBE" --url "https://127.0.0.1:$PORT/" verify >"$TMP/tls-bad.out" 2>"$TMP/tls-bad.err"
has tls-bad '^verify outcome=failed status=0 err=-5 attempts=1' && has tls-bad 'certificate'
check $? "tls: without tls-ca-file the certificate is refused, not retried"
has tls-bad 'POST runners/verify: ' && ! grep -q "$RTOKEN" "$TMP/tls-bad.out"
check $? "tls: the error message names the call, not the token"
# GitLab Runner's certs/ folder beside config.toml: <host>.crt is the
# tls-ca-file of a runner that sets none (flotilla verify, the real
# command, with nothing but url and token in the file).
mkdir -p "$T/etc/certs"
(umask 077; cat >"$T/etc/config.toml" <<EOF
[[runners]]
  name = "tls"
  url = "https://127.0.0.1:$PORT/"
  token = "$RTOKEN"
  executor = "docker-autoscaler"
  [runners.autoscaler]
    plugin = "aws"
EOF
)
"$BUILD/bin/flotilla" verify -c "$T/etc/config.toml" >"$TMP/tls-nodir.out" 2>&1
grep -q 'certificate' "$TMP/tls-nodir.out"
check $? "tls: flotilla verify without certs/127.0.0.1.crt refuses the certificate"
cp "$T/ca.pem" "$T/etc/certs/127.0.0.1.crt"
"$BUILD/bin/flotilla" verify -c "$T/etc/config.toml" >"$TMP/tls-dir.out" 2>&1 &&
    grep -q 'is valid' "$TMP/tls-dir.out" &&
    grep -q "using $T/etc/certs/127.0.0.1.crt" "$TMP/tls-dir.out"
check $? "tls: with certs/127.0.0.1.crt beside config.toml, verify trusts it"
v=$(curl -sS --cacert "$T/ca.pem" "https://127.0.0.1:$PORT/__fake/violations")
[ "$v" = "[]" ]
check $? "tls: the fake saw no protocol violation over TLS"
PORT=$MAINPORT

# --- secrets ---
leaks=0
for tok in "$RTOKEN" $(cat "$TMP/job-tokens"); do
	[ -n "$tok" ] || continue
	if grep -rqF -- "$tok" "$TMP"/*.out "$TMP"/*.err; then
		leaks=$((leaks + 1)); echo "# a token appears in probe output"
	fi
done
[ $leaks -eq 0 ]
check $? "secrets: no runner or job token in any probe output or log line"

! grep -qF -- "$RTOKEN" "$TMP/main/requests.jsonl" &&
    ! grep -qF -- "glcbt-64_fixturejobtoken4242" "$TMP/main/requests.jsonl"
check $? "secrets: the fake's request log is masked too"

grep -q 'POST jobs/request' "$TMP/none.err" && grep -q 'request_id=' "$TMP/none.err"
check $? "logs: the probe's log lines (observer) exist, so the grep above means something"

# The probe logs at debug level: every attempt line is there.
lines=$(cat "$TMP"/*.err | grep -c 'attempt=')
[ "$lines" -ge 50 ]
check $? "logs: $lines attempt lines examined"

kill -0 "$FAKEPID" 2>/dev/null
check $? "fake: still alive at the end"
mark done
