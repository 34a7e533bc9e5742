#!/bin/sh
# The Docker executor (manager/executor.c) end to end: build/tests/
# exec_probe requests jobs from the strict fake GitLab (tests/fakes/
# fake_gitlab.py) with the real GitLab client, runs each with the executor
# on a private dockerd (tests/lib/dockerd.sh, network_mode "host"), with
# the helper image loaded from build/helper/flotilla-helper-VERSION.tar,
# and finishes the trace with the result.  Each case checks what the fake
# recorded: state, failure reason, exit code, trace.
#
# Cases: git clone over HTTP with the job token (tests/fakes/
# fake_git_http.py), a multi-line script, a file variable, a masked
# variable (also split over two writes), after_script, artifacts uploaded
# then downloaded by a dependent job, a cache saved then restored, a
# service reached by its alias (health-checked), exit 3, the job timeout,
# a cache volume written by a build container that is not root,
# a cancel from GitLab and one from the runner in the middle of a script,
# the Docker engine reached through the SSH tunnel, and 100 jobs (10 at a
# time) leaving no container, volume or network behind.
#
# The probe comes from $BUILD (BUILD=$TOP/build/asan for the sanitizer
# build); the helper image tar from $TOP/build/helper (make helper-image).
set -u
. "$TOP/tests/lib/dockerd.sh"
. "$TOP/tests/lib/sshd.sh"

PROBE=$BUILD/tests/exec_probe
FAKE=$TOP/tests/fakes/fake_gitlab.py
GITFAKE=$TOP/tests/fakes/fake_git_http.py
MKJOB=$TOP/tests/integration/executor_job.py
VERSION=$(cat "$TOP/VERSION")
HELPER_TAR=
for _t in "$BUILD/helper/flotilla-helper-$VERSION.tar" \
    "$TOP/build/helper/flotilla-helper-$VERSION.tar"; do
	[ -f "$_t" ] && { HELPER_TAR=$_t; break; }
done
TMP=$(mktemp -d /tmp/flex.XXXXXX)
LOGS=${LOGDIR:-$TMP/logs}/executor
mkdir -p "$LOGS" "$TMP/docker" "$TMP/ssh"
RTOKEN=glrt-t1_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export FAKE_GITLAB_TOKENS=$RTOKEN
FAKEPID=
GITPID=
SSH_UP=
T0=$(date +%s)

cleanup() {
	trap - EXIT INT TERM HUP
	[ -n "$FAKEPID" ] && tl_stop 5 "$FAKEPID" >/dev/null
	[ -n "$GITPID" ] && tl_stop 5 "$GITPID" >/dev/null
	[ -n "$SSH_UP" ] && sshd_stop "$TMP/ssh" >/dev/null 2>&1
	dockerd_stop "$TMP/docker" >/dev/null
	cp "$TMP"/docker/dockerd.log "$LOGS/" 2>/dev/null
	cp "$TMP"/*.out "$TMP"/*.err "$TMP"/*.trace "$TMP"/*.log "$LOGS/" \
	    2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n - $* # SKIP no helper image (make helper-image)"; }
mark() { echo "# $(( $(date +%s) - T0 )) s: $*"; }

echo "1..21"

# ---- infrastructure ----
dockerd_start "$TMP/docker" || { echo "Bail out! dockerd"; exit 1; }
SOCK=$TMP/docker/docker.sock
docker_test_image flotilla-test-busybox || { echo "Bail out! image"; exit 1; }
mark "dockerd up ($DOCKERD_STORAGE_DRIVER)"

"$TL_PYTHON" "$FAKE" --port-file "$TMP/port" --log "$TMP/requests.log" \
    >"$TMP/fake.log" 2>&1 &
FAKEPID=$!
tl_wait 10 test -s "$TMP/port" || { echo "Bail out! fake"; exit 1; }
PORT=$(cat "$TMP/port")

# A repository, served by git http-backend behind job-token auth.
mkdir -p "$TMP/git/group" "$TMP/src"
: >"$TMP/tokens"
(
	cd "$TMP/src" && git init -q -b main . &&
	printf 'hello from the repository\n' >README &&
	git add README && git -c user.name=t -c user.email=t@t \
	    commit -q -m first &&
	git clone -q --bare . "$TMP/git/group/proj.git"
) || { echo "Bail out! git repo"; exit 1; }
SHA=$(git -C "$TMP/src" rev-parse HEAD)
"$TL_PYTHON" "$GITFAKE" --root "$TMP/git" --tokens "$TMP/tokens" \
    --port-file "$TMP/gitport" --log "$TMP/git.log" >"$TMP/gitfake.log" 2>&1 &
GITPID=$!
tl_wait 10 test -s "$TMP/gitport" || { echo "Bail out! git server"; exit 1; }
GITURL=http://127.0.0.1:$(cat "$TMP/gitport")/group/proj.git

# config FILE POLICY [EXTRA DOCKER LINES]: the runner's config.toml.
config() {
	cat >"$1" <<EOF
concurrent = 10
[[runners]]
  name = "exec-test"
  url = "http://127.0.0.1:$PORT/"
  token = "$RTOKEN"
  executor = "docker-autoscaler"
  [runners.docker]
    image = "flotilla-test-busybox"
    network_mode = "host"
    pull_policy = ["$2"]
    wait_for_services_timeout = 20
$3
  [runners.autoscaler]
    plugin = "fleeting-plugin-local"
EOF
}
config "$TMP/config.toml" if-not-present ""
config "$TMP/config-nocache.toml" if-not-present "    disable_cache = true"

# ctl METHOD PATH [JSON]: the fake's control API.
ctl() {
	if [ $# -ge 3 ]; then
		curl -sS -X "$1" -H 'Content-Type: application/json' \
		    --data-binary "$3" "http://127.0.0.1:$PORT/__fake/$2"
	else
		curl -sS -X "$1" "http://127.0.0.1:$PORT/__fake/$2"
	fi
}
jv() {
	"$TL_PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# queue NAME ARGS...: queue a job made by executor_job.py; sets JOBID and
# JOBTOKEN.  The token is given to the git server too.
queue() {
	_name=$1
	shift
	JOBTOKEN=glcbt-$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n')
	echo "$JOBTOKEN" >>"$TMP/tokens"
	"$TL_PYTHON" "$MKJOB" --token "$JOBTOKEN" --git-url "$GITURL" \
	    --sha "$SHA" "$@" >"$TMP/$_name.json" || return 1
	_r=$(ctl POST jobs "$(cat "$TMP/$_name.json")") || return 1
	JOBID=$(jv "$_r" 'd["id"]')
}

# run NAME [PROBE ARGS...]: run the probe for the queued job(s); then
# STATE, REASON, EXIT from the fake and the trace in $TMP/NAME.trace.
run() {
	_name=$1
	shift
	"$PROBE" --config "${RUNCFG:-$TMP/config.toml}" --socket "$SOCK" --wait 5 \
	    --interval 300 ${HELPER_TAR:+--helper-tar "$HELPER_TAR"} "$@" \
	    >"$TMP/$_name.out" 2>"$TMP/$_name.err"
	PRC=$?
	fetch "$_name" "$JOBID"
}

# fetch NAME ID: the job's record and trace from the fake.
fetch() {
	_j=$(ctl GET "jobs/$2")
	STATE=$(jv "$_j" 'd["status"]')
	REASON=$(jv "$_j" 'd["failure_reason"]')
	EXIT=$(jv "$_j" 'd["exit_code"]')
	CKOK=$(jv "$_j" 'd["checksum_ok"]')
	ctl GET "jobs/$2/trace" >"$TMP/$1.trace"
}

# has NAME TEXT / hasnt NAME TEXT: the trace contains / lacks TEXT.
has() { grep -qF -- "$2" "$TMP/$1.trace"; }
hasnt() { ! grep -qF -- "$2" "$TMP/$1.trace"; }
diag() {
	echo "#   state=$STATE reason=$REASON exit=$EXIT checksum_ok=$CKOK probe_rc=$PRC"
	tail -n "${2:-25}" "$TMP/$1.trace" | sed 's/^/#   /'
	tail -n 5 "$TMP/$1.err" | sed 's/^/#   err: /'
}
# expect NAME STATE REASON EXIT DESCRIPTION [CHECKS...]: the result and,
# for each extra argument "+TEXT" / "-TEXT", the trace has / lacks TEXT.
expect() {
	_name=$1 _st=$2 _re=$3 _ex=$4 _desc=$5
	shift 5
	_ok=1
	[ "$STATE" = "$_st" ] && [ "$REASON" = "$_re" ] &&
	    [ "$EXIT" = "$_ex" ] && [ "$CKOK" = True ] && [ "$PRC" = 0 ] ||
	    _ok=0
	for _c in "$@"; do
		case "$_c" in
		+*) has "$_name" "${_c#+}" || { _ok=0; echo "# missing: ${_c#+}"; } ;;
		-*) hasnt "$_name" "${_c#-}" || { _ok=0; echo "# present: ${_c#-}"; } ;;
		esac
	done
	hasnt "$_name" "$RTOKEN" || { _ok=0; echo "# runner token in trace"; }
	if [ $_ok = 1 ]; then ok "$_desc"; else nok "$_desc"; diag "$_name"; fi
}

H=${HELPER_TAR:+yes}
[ -n "$H" ] || echo "# no helper image tar: helper-dependent cases skipped"

# 1. git clone with the job token; the helper image loaded from its tar.
if [ -n "$H" ]; then
	queue clone --strategy clone --script 'cat README' --script 'pwd'
	run clone
	expect clone success None None "git clone over HTTP with the job token" \
	    "+Loading helper image" "+hello from the repository" \
	    "+/builds/group/proj" "+Job succeeded" "-$JOBTOKEN"
	grep -q "GET /group/proj.git/info/refs 200 user=gitlab-ci-token" \
	    "$TMP/git.log" || echo "# git server saw no authenticated clone"
else
	skip "git clone over HTTP with the job token"
fi
mark clone

# 2. multi-line script, file variable, masked variable (also split).
queue vars --var PLAIN=visible-plain --file MYFILE='file content here' \
    --masked SECRET=abcdef123456 \
    --script 'for i in 1 2; do
  echo "line $i"
done' \
    --script 'cat "$MYFILE"; echo; echo "path=$MYFILE"' \
    --script 'echo "$SECRET"' \
    --script "printf 'abcdef'; printf '123456\\n'" \
    --script 'echo "plain=$PLAIN"'
run vars
expect vars success None None "multi-line script, file and masked variables" \
    "+line 1" "+line 2" "+file content here" "+path=/builds/group/proj.tmp/MYFILE" \
    "+[MASKED]" "-abcdef123456" "+plain=visible-plain"

# 3. exit 3: script_failure with exit code 3; after_script still runs.
queue exit3 --script 'echo before' --script 'exit 3' --script 'echo never' \
    --after 'echo "after-ran $CI_JOB_STATUS"'
run exit3
expect exit3 failed script_failure 3 "exit 3 gives script_failure, exit code 3, after_script ran" \
    "+before" "-never" "+after-ran failed" "+ERROR: Job failed: exit code 3"

# 4. after_script on success, and its own failure only warns.
queue after --script 'echo main' --after 'echo "after-ran $CI_JOB_STATUS"' \
    --after 'exit 7'
run after
expect after success None None "after_script runs (CI_JOB_STATUS=success), its failure only warns" \
    "+after-ran success" "+after_script failed, but job will continue" "+Job succeeded"

# 4b. a build container that is not root writes the cache volume: the
# helper's cache-init made the new volume world-writable, as GitLab's does.
config "$TMP/config-user.toml" if-not-present '    user = "65534:65534"'
if [ -n "$H" ]; then
	queue user --script 'echo "uid=$(id -u)"' \
	    --script 'touch /cache/by-nobody && echo cache-writable'
	RUNCFG=$TMP/config-user.toml run user
	expect user success None None "a build container running as uid 65534 writes the new cache volume (cache-init)" \
	    "+uid=65534" "+cache-writable"
else
	skip "cache-init"
fi

# 4c. security_opt with a seccomp profile file: inlined for the engine
# (as the docker CLI does); the profile denies chroot(2), which the
# default profile allows to root.
cat >"$TMP/seccomp.json" <<'EOF'
{ "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [ { "names": ["chroot"], "action": "SCMP_ACT_ERRNO" } ] }
EOF
config "$TMP/config-seccomp.toml" if-not-present \
    "    security_opt = [\"seccomp=$TMP/seccomp.json\"]"
queue chroot1 --script 'if chroot / true; then echo chroot-allowed; else echo chroot-denied; fi'
run chroot1
_c1=$(grep -c 'chroot-allowed$' "$TMP/chroot1.trace")
queue chroot2 --script 'if chroot / true; then echo chroot-allowed; else echo chroot-denied; fi'
RUNCFG=$TMP/config-seccomp.toml run chroot2
expect chroot2 success None None "security_opt seccomp=FILE: the profile reaches the engine (chroot denied; allowed without it: $_c1)" \
    "+01O chroot-denied" "-01O chroot-allowed"
[ "$_c1" -ge 1 ] || echo "# without the profile chroot was not allowed: the check above means little"

# 5-6. artifacts: uploaded by one job, downloaded by a dependent job.
if [ -n "$H" ]; then
	queue producer --script 'mkdir -p out && echo artifact-payload-42 >out/a.txt' \
	    --artifact out/
	PRODUCER=$JOBID
	run producer
	_art=$(ctl GET "jobs/$PRODUCER")
	_meta=$(jv "$_art" 'd["artifacts"] and d["artifacts"]["filename"]')
	expect producer success None None "artifacts uploaded (fake got $_meta)" \
	    "+Uploading artifacts"
	queue consumer --dep "$PRODUCER" --script 'cat out/a.txt'
	run consumer
	expect consumer success None None "artifacts downloaded by a dependent job" \
	    "+artifact-payload-42"
else
	skip "artifacts uploaded"
	skip "artifacts downloaded by a dependent job"
fi
mark artifacts

# 7-8. cache written by one job, restored by the next.
if [ -n "$H" ]; then
	CVAL=cache-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	queue cache1 --cache "k1:cdir" --script "mkdir -p cdir && echo $CVAL >cdir/c.txt"
	run cache1
	expect cache1 success None None "cache saved" "+Saving cache"
	queue cache2 --cache "k1:cdir" --script 'cat cdir/c.txt'
	run cache2
	expect cache2 success None None "cache restored by the next job" \
	    "+Restoring cache" "+$CVAL"
else
	skip "cache saved"
	skip "cache restored by the next job"
fi
mark cache

# 9. a service reached by its alias (host network: ExtraHosts).
SPORT=$(tl_free_port 127.0.0.1)
queue svc --service "flotilla-test-busybox|web db|httpd -f -p $SPORT -h /etc|$SPORT" \
    --script "wget -qO- http://web:$SPORT/passwd" \
    --script "wget -qO- http://db:$SPORT/group"
run svc
if [ -n "$H" ]; then
	expect svc success None None "service reachable by its aliases, health-checked" \
	    "+root:x:0:0" "+root:x:0:" "-probably didn't start properly"
else
	expect svc success None None "service reachable by its aliases" \
	    "+root:x:0:0" "+root:x:0:"
fi

# 10. the job's timeout.
queue tmo --timeout 3 --script 'echo started' --script 'sleep 60' \
    --script 'echo never' --after 'echo "after-ran $CI_JOB_STATUS"'
run tmo
expect tmo failed job_execution_timeout None "job timeout gives job_execution_timeout" \
    "+started" "-never" "+after-ran failed" \
    "+execution took longer than 3s seconds"

# 11. a cancel from GitLab (Job-Status: canceling) in the middle.
queue cancel --script 'echo started' --script 'sleep 60' --script 'echo never' \
    --after 'echo "after-ran $CI_JOB_STATUS"'
CID=$JOBID
( sleep 3; ctl POST "jobs/$CID/cancel" >/dev/null ) &
_cpid=$!
_t=$(date +%s)
run cancel
wait $_cpid
_el=$(( $(date +%s) - _t ))
expect cancel canceled job_canceled None "cancel from GitLab mid-script: after_script ran (${_el}s)" \
    "+started" "-never" "+after-ran canceled"

# 12. exec_cancel from the runner side (--cancel-after).
queue cancel2 --script 'sleep 60' --after 'echo "after-ran $CI_JOB_STATUS"'
run cancel2 --cancel-after 2
expect cancel2 failed job_canceled None "runner-side cancel: failed/job_canceled, after_script ran" \
    "+after-ran canceled"

# 13. an image that cannot be pulled (no registry): image_pull_failure,
# mapped to runner_system_failure as GitLab does for reasons it lists.
queue nopull --image flotilla-no-such-image:1 --script 'true'
config "$TMP/config.toml" never ""
run nopull
config "$TMP/config.toml" if-not-present ""
expect nopull failed image_pull_failure None "missing image with pull_policy never: image_pull_failure" \
    "+not found locally"

# 14. through the SSH tunnel (sshd on 127.0.0.2, streamlocal to the socket).
if sshd_start "$TMP/ssh" 127.0.0.2 >"$TMP/sshd.log" 2>&1; then
	SSH_UP=yes
	queue ssh --script 'echo through-ssh'
	"$PROBE" --config "$TMP/config.toml" --ssh "127.0.0.2:$SSHD_PORT" \
	    --ssh-key "$TMP/ssh/id_ed25519" --ssh-socket "$SOCK" --wait 5 \
	    --interval 300 ${HELPER_TAR:+--helper-tar "$HELPER_TAR"} \
	    >"$TMP/ssh.out" 2>"$TMP/ssh.err"
	PRC=$?
	fetch ssh "$JOBID"
	expect ssh success None None "job run on the engine through the SSH tunnel" \
	    "+through-ssh" "+Instance 127.0.0.2"
else
	nok "sshd did not start"; sed "s/^/#   /" "$TMP/sshd.log"
fi
mark ssh

# 15. FF_NETWORK_PER_BUILD without network_mode: a bridge network per
# job, the service reached through its network alias.
config "$TMP/config-net.toml" if-not-present ""
sed -i '/network_mode = "host"/d' "$TMP/config-net.toml"
printf '  [runners.feature_flags]\n    FF_NETWORK_PER_BUILD = true\n' \
    >>"$TMP/config-net.toml"
queue net --service "flotilla-test-busybox|web|httpd -f -p 8080 -h /etc|8080" \
    --script 'wget -qO- http://web:8080/passwd'
"$PROBE" --config "$TMP/config-net.toml" --socket "$SOCK" --wait 5 \
    --interval 300 ${HELPER_TAR:+--helper-tar "$HELPER_TAR"} \
    >"$TMP/net.out" 2>"$TMP/net.err"
PRC=$?
fetch net "$JOBID"
_nets=$("$DOCKER" -H "unix://$SOCK" network ls -q --filter \
    label=com.gitlab.gitlab-runner.managed=true | wc -l)
expect net success None None "per-build network: service reached by its network alias, network removed ($_nets left)" \
    "+root:x:0:0"
[ "$_nets" -eq 0 ] || echo "# networks left: $_nets"

# 16. exec_abort in the middle of a script: failed with the reason at
# once, every container removed.
queue abort --script 'echo started' --script 'sleep 60' \
    --after 'echo after-should-not-run'
_t=$(date +%s)
run abort --abort-after 3
_el=$(( $(date +%s) - _t ))
_left=$("$DOCKER" -H "unix://$SOCK" ps -aq --filter \
    label=com.gitlab.gitlab-runner.managed=true | wc -l)
if [ "$_left" -eq 0 ] && [ "$_el" -lt 15 ]; then
	expect abort failed runner_system_failure None "exec_abort mid-script: runner_system_failure in ${_el}s, no container left" \
	    "+started" "-after-should-not-run" "+aborted"
else
	nok "exec_abort: $_left containers left, ${_el}s"
fi

# 17-19. 100 jobs, 10 at a time: nothing left behind.
count() {
	_c=$("$DOCKER" -H "unix://$SOCK" ps -aq --filter \
	    label=com.gitlab.gitlab-runner.managed=true | wc -l)
	_v=$("$DOCKER" -H "unix://$SOCK" volume ls -q --filter \
	    label=com.gitlab.gitlab-runner.managed=true | wc -l)
	_n=$("$DOCKER" -H "unix://$SOCK" network ls -q --filter \
	    label=com.gitlab.gitlab-runner.managed=true | wc -l)
	echo "$_c $_v $_n"
}
BEFORE=$(count)
_i=0
_fails=0
while [ $_i -lt 100 ]; do
	_i=$((_i + 1))
	if [ $((_i % 10)) -eq 0 ]; then
		queue "many$_i" --script "echo job $_i" --script 'exit 1' >/dev/null
		_fails=$((_fails + 1))
	else
		queue "many$_i" --script "echo job $_i" >/dev/null
	fi
	[ $_i -eq 1 ] && FIRST=$JOBID
done
_t=$(date +%s)
"$PROBE" --config "$TMP/config-nocache.toml" --socket "$SOCK" --jobs 100 \
    --parallel 10 --wait 10 --interval 1000 \
    ${HELPER_TAR:+--helper-tar "$HELPER_TAR"} >"$TMP/many.out" 2>"$TMP/many.err"
PRC=$?
_el=$(( $(date +%s) - _t ))
AFTER=$(count)
_ok=$(grep -c '^result .*state=success' "$TMP/many.out")
_bad=$(grep -c '^result .*state=failed reason=script_failure exit=1 trace=ok' "$TMP/many.out")
if [ $PRC -eq 0 ] && [ "$_ok" -eq 90 ] && [ "$_bad" -eq 10 ]; then
	ok "100 jobs (10 at a time) ran: 90 succeeded, 10 exit 1 (${_el}s)"
else
	nok "100 jobs ran: rc=$PRC success=$_ok failed=$_bad (${_el}s)"
	tail -n 5 "$TMP/many.out" | sed 's/^/#   /'
	tail -n 5 "$TMP/many.err" | sed 's/^/#   /'
fi
_all=1
_j=$FIRST
while [ "$_j" -lt $((FIRST + 100)) ]; do
	_s=$(jv "$(ctl GET "jobs/$_j")" 'str(d["status"]) + str(d["checksum_ok"])')
	case "$_s" in successTrue|failedTrue) ;; *) _all=0; echo "# job $_j: $_s" ;; esac
	_j=$((_j + 1))
done
[ $_all = 1 ] && ok "all 100 final updates recorded with matching checksums" ||
    nok "some of the 100 jobs have no final state or a bad checksum"
if [ "$BEFORE" = "$AFTER" ]; then
	ok "no container, volume or network left after 100 jobs (before=after: $AFTER)"
else
	nok "leftovers after 100 jobs: before '$BEFORE' after '$AFTER' (containers volumes networks)"
	"$DOCKER" -H "unix://$SOCK" ps -a | sed 's/^/#   /' | head
fi
_viol=$(ctl GET violations)
[ "$_viol" = "[]" ] || echo "# fake GitLab violations: $_viol"
mark done
