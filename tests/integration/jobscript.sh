#!/bin/sh
# The stage scripts of manager/jobscript.c run for real with busybox sh
# (build/tests/jobscript_gen prints them): get_sources clones a repository
# (with a submodule given by a relative URL) served over HTTP by git
# http-backend behind tests/fakes/fake_git_http.py on 127.0.0.1 that
# demands the job token (basic auth gitlab-ci-token:<token>); the token must never
# land in .git/config, a wrong token must fail the stage; fetch re-uses
# the clone; a cache written by archive_cache and read back by
# restore_cache with the real flotilla-helper (when built); step_script
# over several lines, exit 3; a file variable; GITLAB_ENV between stages;
# after_script sees CI_JOB_STATUS; cleanup removes the token file.
set -u
. "$TOP/tests/lib/common.sh"

GEN=$BUILD/tests/jobscript_gen
HELPER=$BUILD/bin/flotilla-helper
[ -x "$HELPER" ] || HELPER=$TOP/build/bin/flotilla-helper
BB=/bin/busybox
TMP=$(mktemp -d /tmp/fljs.XXXXXX)
TOKEN=glcbt-64_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
SRVPID=

cleanup() {
	trap - EXIT INT TERM HUP
	[ -n "$SRVPID" ] && tl_stop 5 "$SRVPID" >/dev/null
	if [ -n "${LOGDIR:-}" ]; then
		mkdir -p "$LOGDIR/jobscript"
		cp "$TMP"/*.out "$TMP"/*.log "$LOGDIR/jobscript/" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }
show() { sed 's/^/#   /' "$1" | tail -n "${2:-15}"; }

echo "1..16"

export HOME=$TMP/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C
mkdir -p "$HOME" "$TMP/srv/grp"

# Two repositories: grp/sub.git and grp/proj.git with sub as "../sub.git".
(
	set -e
	cd "$TMP"
	git init -q -b main work-sub
	cd work-sub
	git config user.email t@t; git config user.name t
	echo sub-content > s.txt; git add s.txt; git commit -q -m sub
	cd ..
	git clone -q --bare work-sub srv/grp/sub.git
	git init -q -b main work
	cd work
	git config user.email t@t; git config user.name t
	echo v1 > f.txt; git add f.txt; git commit -q -m one
	git -c protocol.file.allow=always submodule add -q "$TMP/srv/grp/sub.git" sub
	git config -f .gitmodules submodule.sub.url ../sub.git
	git add .gitmodules; git commit -q -m "sub"
	git rev-parse HEAD > ../sha1
	echo v2 > f.txt; git commit -q -am two
	cd ..
	git clone -q --bare work srv/grp/proj.git
) >"$TMP/setup.log" 2>&1 || { echo "# setup failed"; show "$TMP/setup.log"; exit 1; }
SHA1=$(cat "$TMP/sha1")

# git http-backend behind the fake that wants the job token.
echo "$TOKEN" >"$TMP/tokens"
"$TL_PYTHON" "$TOP/tests/fakes/fake_git_http.py" --root "$TMP/srv" \
    --tokens "$TMP/tokens" --port-file "$TMP/port" --log "$TMP/http.log" \
    >"$TMP/server.log" 2>&1 &
SRVPID=$!
if ! tl_wait 10 test -s "$TMP/port"; then
	echo "# git server did not start"; show "$TMP/server.log"; exit 1
fi
PORT=$(cat "$TMP/port")
URL="http://127.0.0.1:$PORT"

# job JSON_FILE TOKEN STRATEGY: a job for grp/proj at SHA1.
job() {
	cat >"$1" <<EOF
{"id": 77, "token": "$2", "allow_git_fetch": false,
 "job_info": {"name": "build", "project_id": 5, "project_full_path": "grp/proj"},
 "git_info": {"repo_url": "http://gitlab-ci-token:$2@127.0.0.1:$PORT/grp/proj.git",
   "ref": "main", "sha": "$SHA1", "ref_type": "branch",
   "refspecs": ["+refs/heads/*:refs/remotes/origin/*"], "depth": 0},
 "variables": [
   {"key": "GIT_STRATEGY", "value": "$3"},
   {"key": "GIT_SUBMODULE_STRATEGY", "value": "normal"},
   {"key": "CI_JOB_TOKEN", "value": "$2", "masked": true},
   {"key": "CFG", "value": "line1\\nit's \$HOME \\\\ \\"q\\"\\n", "file": true, "raw": true}],
 "steps": [
   {"name": "script", "script": ["echo first", "for i in a b; do\\n  echo item-\$i\\ndone",
     "cat \\"\$CFG\\" > cfg.copy", "echo 'FROM_STEP=hello there' >> \\"\$GITLAB_ENV\\"",
     "mkdir -p vendor && echo cached-data > vendor/v.txt", "exit 3", "echo not-reached"]},
   {"name": "after_script", "script": ["echo \\"status=\$CI_JOB_STATUS step=\$FROM_STEP\\""]}],
 "cache": [{"key": "deps", "paths": ["vendor/"], "policy": "pull-push"}]}
EOF
}

# stage NAME JOB [gen options]: generate and run; the output in $TMP/NAME.out.
stage() {
	_s=$1 _j=$2
	shift 2
	"$GEN" "$_j" "$_s" --builds-dir "$TMP/builds" --cache-dir "$TMP/cache" \
	    --url "$URL/" --helper "$HELPER" "$@" >"$TMP/$_s.sh" || return 100
	"$BB" sh <"$TMP/$_s.sh" >"$TMP/$_s.out" 2>&1
}

PROJ=$TMP/builds/grp/proj
job "$TMP/job.json" "$TOKEN" clone

stage prepare_script "$TMP/job.json"
check $? "prepare_script runs"

stage get_sources "$TMP/job.json"
rc=$?
check $rc "get_sources clones over HTTP with the job token"
[ $rc -eq 0 ] || show "$TMP/get_sources.out" 30
[ "$(cat "$PROJ/f.txt" 2>/dev/null)" = v1 ] && \
    [ "$(git -C "$PROJ" rev-parse HEAD 2>/dev/null)" = "$SHA1" ]
check $? "the job's sha is checked out (not the branch head)"
[ "$(cat "$PROJ/sub/s.txt" 2>/dev/null)" = sub-content ]
check $? "the submodule (relative URL) is cloned through the insteadOf rules"
! grep -rq "$TOKEN" "$PROJ/.git/config" "$PROJ/.git/modules" 2>/dev/null
check $? "no token in .git/config or the submodules' configs"
grep -q "Checking out $(echo "$SHA1" | cut -c1-8) as detached HEAD (ref is main)..." \
    "$TMP/get_sources.out" && grep -q "Updating/initializing submodules..." \
    "$TMP/get_sources.out" && grep -q "Initialized empty Git repository" \
    "$TMP/get_sources.out"
check $? "GitLab's messages in the output"
! grep -q "$TOKEN" "$TMP/get_sources.out"
check $? "the token is not in the output"

job "$TMP/job-fetch.json" "$TOKEN" fetch
echo local > "$PROJ/untracked.txt"
stage get_sources "$TMP/job-fetch.json"
rc=$?
[ $rc -eq 0 ] && grep -q "Reinitialized existing Git repository" \
    "$TMP/get_sources.out" && [ ! -e "$PROJ/untracked.txt" ] && \
    [ "$(cat "$PROJ/f.txt")" = v1 ]
check $? "fetch re-uses the repository and cleans it"

job "$TMP/job-bad.json" "glcbt-64_wrongtoken" clone
stage get_sources "$TMP/job-bad.json"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 100 ]
check $? "a wrong token fails get_sources (exit $rc)"

# the good clone again for the rest
stage get_sources "$TMP/job.json" >/dev/null 2>&1

stage step_script "$TMP/job.json"
rc=$?
[ $rc -eq 3 ]
check $? "step_script: exit 3 gives 3 (got $rc)"
grep -q "item-a" "$TMP/step_script.out" && grep -q "item-b" "$TMP/step_script.out" \
    && grep -q 'for i in a b; do # collapsed multi-line command' "$TMP/step_script.out" \
    && ! grep -q not-reached "$TMP/step_script.out"
check $? "scripts over several lines; nothing after the failure"
printf 'line1\nit'\''s $HOME \\ "q"\n' | cmp -s - "$PROJ/cfg.copy"
check $? "the file variable's content is byte-exact"

stage after_script "$TMP/job.json" --status failed
rc=$?
[ $rc -eq 0 ] && grep -q "status=failed step=hello there" "$TMP/after_script.out"
check $? "after_script sees CI_JOB_STATUS and GITLAB_ENV from the step"

if [ -x "$HELPER" ]; then
	stage archive_cache_on_failure "$TMP/job.json"
	rc1=$?
	# on_success is the default: nothing on failure
	stage archive_cache "$TMP/job.json"
	rc2=$?
	rm -rf "$PROJ/vendor"
	stage restore_cache "$TMP/job.json"
	rc3=$?
	[ $rc1 -eq 100 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] && \
	    [ -f "$TMP/cache/grp/proj/deps/cache.zip" ] && \
	    [ "$(cat "$PROJ/vendor/v.txt" 2>/dev/null)" = cached-data ] && \
	    grep -q "Successfully extracted cache" "$TMP/restore_cache.out"
	check $? "cache written and restored with the real flotilla-helper ($rc1 $rc2 $rc3)"
	[ $rc3 -eq 0 ] || show "$TMP/restore_cache.out"
else
	ok "# SKIP flotilla-helper not built"
fi

stage cleanup_file_variables "$TMP/job.json"
rc=$?
[ $rc -eq 0 ] && [ ! -e "$PROJ.tmp/CFG" ] && \
    [ ! -e "$PROJ.tmp/.gitlab-runner.ext.conf" ] && \
    [ ! -e "$PROJ.tmp/gitlab_runner_env" ]
check $? "cleanup removes the file variable, GITLAB_ENV and the token file"
! grep -rq "$TOKEN" "$TMP/builds" 2>/dev/null
check $? "no token left anywhere under the builds dir"
