#!/bin/sh
# The helper image (build/helper/flotilla-helper-VERSION.tar, made by
# `make helper-image`) in a real, private dockerd: it loads with
# `docker load`, and containers of it (host network) run flotilla-helper
# --version; clone a repository over HTTP with the job token (git
# http-backend behind tests/fakes/fake_git_http.py, GitLab's basic auth);
# upload artifacts to tests/fakes/fake_gitlab.py and download them in
# another container, byte for byte; the upload's retry rules (403 final,
# 503 retried, a second archive refused); cache-archiver then
# cache-extractor through a volume; cache-init; health-check against a
# listening port and, bounded, against a closed one.  Nothing is left
# behind: containers --rm, the volume removed, dockerd stopped.
set -u
. "$TOP/tests/lib/dockerd.sh"

VERSION=$(cat "$TOP/VERSION")
TAR=${HELPER_TAR:-$BUILD/helper/flotilla-helper-$VERSION.tar}
IMG=flotilla-helper:$VERSION
FAKE=$TOP/tests/fakes/fake_gitlab.py
GITHTTP=$TOP/tests/fakes/fake_git_http.py
TMP=$(mktemp -d)
DK=$TMP/docker
mkdir -p "$DK" "$TMP/fake" "$TMP/git"
PIDS=
VOL=

cleanup() {
	trap - EXIT INT TERM HUP
	[ -d "$TMP" ] || return 0
	if [ -n "$VOL" ]; then
		"$DOCKER" volume rm -f "$VOL" >/dev/null 2>&1
	fi
	# shellcheck disable=SC2086
	[ -n "$PIDS" ] && tl_stop 5 $PIDS
	dockerd_stop "$DK" >/dev/null
	if [ -n "${LOGDIR:-}" ]; then
		mkdir -p "$LOGDIR/helper_image"
		cp "$DK/dockerd.log" "$TMP"/fake/*.log "$TMP"/fake/*.jsonl \
		    "$TMP"/git/*.log "$TMP"/out.* "$LOGDIR/helper_image/" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
step=0
# t NAME CMD...: a TAP line from CMD's status; the last output as comments
# when it fails.
t() {
	_name=$1; shift
	if "$@"; then ok "$_name"; else nok "$_name"; sed 's/^/#   /' "$TMP/out" | tail -n 25; fi
}
# run ARGS...: docker run --rm --network host ARGS into $TMP/out (120 s).
run() {
	step=$((step + 1))
	timeout 120 "$DOCKER" run --rm --network host "$@" >"$TMP/out" 2>&1
	_rc=$?
	cp "$TMP/out" "$TMP/out.$step"
	return $_rc
}
has() { grep -qF -- "$1" "$TMP/out"; }
ctl() {
	if [ $# -ge 3 ]; then
		curl -sS -X "$1" -H 'Content-Type: application/json' \
		    --data-binary "$3" "http://127.0.0.1:$FPORT/__fake/$2"
	else
		curl -sS -X "$1" "http://127.0.0.1:$FPORT/__fake/$2"
	fi
}
jv() { "$TL_PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
rand() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

PLAN=27
echo "1..$PLAN"
bail() {
	while [ $n -lt $PLAN ]; do nok "$1"; done
	exit 1
}
[ -r "$TAR" ] || bail "no $TAR (make helper-image)"

dockerd_start "$DK" || bail "dockerd did not start"
ok "private dockerd ($DOCKERD_STORAGE_DRIVER)"

# ---- the image ----
"$DOCKER" load -i "$TAR" >"$TMP/out" 2>&1
t "docker load of $(basename "$TAR")" has "Loaded image: $IMG"
"$DOCKER" image inspect -f '{{json .Config.Cmd}} {{.Architecture}} {{.Os}} {{index .Config.Env 0}}' \
    "$IMG" >"$TMP/out" 2>&1
t "image config: Cmd [\"sh\"], architecture $(dpkg --print-architecture), PATH" \
    grep -qx "\[\"sh\"\] $(dpkg --print-architecture) linux PATH=.*/usr/bin:.*" "$TMP/out"
echo "# image size: $("$DOCKER" image inspect -f '{{.Size}}' "$IMG") bytes; tar $(wc -c <"$TAR") bytes"

run "$IMG" flotilla-helper --version
t "flotilla-helper --version in a container" has "Version:      $VERSION"

run "$IMG" sh -c 'set -e; id -un; stat -c %a /tmp; test -s /etc/ssl/certs/ca-certificates.crt;
    ls /usr/lib/git-core/git-remote-https >/dev/null; for a in tar gzip sed awk find wc; do command -v $a; done;
    ! command -v perl; git --version'
t "busybox applets, root, /tmp 1777, CA bundle, git-remote-https, no perl" \
    sh -c "grep -qx root '$TMP/out' && grep -qx 1777 '$TMP/out' && grep -q '^git version' '$TMP/out'"

# ---- git over http with the job token ----
JOB_TOKEN=glcbt-$(rand)
export JOB_TOKEN
(
	set -e
	cd "$TMP/git"
	git init -q -b main src
	cd src
	printf 'hello from the test\n' >README
	mkdir -p sub && printf 'x\n' >sub/x.txt
	git add . && git -c user.name=t -c user.email=t@t commit -qm one
	cd ..
	mkdir -p repos/group
	git clone -q --bare src repos/group/project.git
) >"$TMP/out" 2>&1 || bail "making the test repository failed"
SHA=$(git -C "$TMP/git/src" rev-parse HEAD)
echo "$JOB_TOKEN" >"$TMP/git/tokens"
"$TL_PYTHON" "$GITHTTP" --root "$TMP/git/repos" --tokens "$TMP/git/tokens" \
    --port-file "$TMP/git/port" --log "$TMP/git/git_http.log" >"$TMP/git/server.log" 2>&1 &
PIDS="$PIDS $!"
tl_wait 10 test -s "$TMP/git/port" || bail "git_http did not start"
GPORT=$(cat "$TMP/git/port")
# The token reaches git through a credential helper reading the
# environment (GitLab's FF_GIT_URLS_WITHOUT_TOKENS way): never in argv.
CRED='!f() { echo username=gitlab-ci-token; echo "password=${CI_JOB_TOKEN}"; }; f'
run -e CI_JOB_TOKEN="$JOB_TOKEN" "$IMG" sh -c "set -e; git -c credential.helper='$CRED' \
    clone -q http://127.0.0.1:$GPORT/group/project.git /tmp/w; cd /tmp/w;
    git -c advice.detachedHead=false checkout -q $SHA; git rev-parse HEAD; cat README"
t "git clone over http with the job token, checkout of the sha" \
    sh -c "grep -qx '$SHA' '$TMP/out' && grep -qx 'hello from the test' '$TMP/out'"
run -e CI_JOB_TOKEN=wrong "$IMG" sh -c "GIT_TERMINAL_PROMPT=0 git -c credential.helper='$CRED' \
    clone -q http://127.0.0.1:$GPORT/group/project.git /tmp/w"
t "a wrong token: the clone fails (401)" \
    sh -c "[ $? -ne 0 ] && grep -qi 'authentication failed' '$TMP/out'"

# ---- artifacts through the fake GitLab ----
RUNNER_TOKEN=glrt-$(rand)
FAKE_GITLAB_TOKENS=$RUNNER_TOKEN "$TL_PYTHON" "$FAKE" --port-file "$TMP/fake/port" \
    --log "$TMP/fake/requests.jsonl" >"$TMP/fake/fake.log" 2>&1 &
PIDS="$PIDS $!"
tl_wait 10 test -s "$TMP/fake/port" || bail "fake GitLab did not start"
FPORT=$(cat "$TMP/fake/port")
URL=http://127.0.0.1:$FPORT/
# new_job: queue a job and take it as the runner (running); prints "id token".
new_job() {
	_j=$(ctl POST jobs '{}')
	curl -sS -X POST -H 'Content-Type: application/json' -H "RUNNER-TOKEN: $RUNNER_TOKEN" \
	    --data-binary "{\"token\":\"$RUNNER_TOKEN\",\"info\":{\"features\":{}}}" \
	    "${URL}api/v4/jobs/request" >/dev/null
	jv "$_j" 'str(d["id"]) + " " + d["token"]'
}
# shellcheck disable=SC2046
set -- $(new_job); A_ID=$1; A_TOKEN=$2
# shellcheck disable=SC2046
set -- $(new_job); B_ID=$1; B_TOKEN=$2
export A_TOKEN B_TOKEN

P=$TMP/project
mkdir -p "$P/out/sub" "$P/out/deep/er" "$P/logs"
printf 'artifact one\n' >"$P/out/one.txt"
head -c 300000 /dev/urandom >"$P/out/sub/random.bin"
printf 'skip me\n' >"$P/out/skip.tmp"
printf 'deep\n' >"$P/out/deep/er/d.log"
printf 'top\n' >"$P/top.txt"
printf 'log\n' >"$P/logs/a.log"
chmod 0750 "$P/out/sub"
ln -s one.txt "$P/out/link"

run -e FLOTILLA_HELPER_TOKEN="$A_TOKEN" -v "$P:/p" -w /p "$IMG" \
    flotilla-helper artifacts-uploader --url "$URL" --id "$A_ID" \
    --name myart --expire-in "1 week" --artifact-format zip --artifact-type archive \
    --path out --path "*.txt" --path "**/*.log" --path missing --exclude "out/*.tmp"
rc=$?
t "artifacts-uploader: 201 Created, GitLab's lines" sh -c "[ $rc -eq 0 ] &&
    grep -qF 'Uploading artifacts as \"archive\" to coordinator... 201 Created' '$TMP/out' &&
    grep -qF 'out: found 8 matching artifact files and directories' '$TMP/out' &&
    grep -qF 'WARNING: missing: no matching files' '$TMP/out' &&
    grep -qF 'out/*.tmp: excluded 1 files' '$TMP/out' &&
    grep -q 'responseStatus=201 Created' '$TMP/out'"
t "the job token is never printed (only its short form)" \
    sh -c "! grep -qF '$A_TOKEN' '$TMP/out' && grep -qF 'token=$(echo "$A_TOKEN" | cut -c7-14)' '$TMP/out'"
meta=$(ctl GET "jobs/$A_ID")
t "the fake got myart.zip with artifact_format=zip, artifact_type=archive, expire_in" \
    [ "$(jv "$meta" 'd["artifacts"]["filename"] + "|" + d["artifacts"]["query"].get("artifact_format","") + "|" + d["artifacts"]["query"].get("artifact_type","") + "|" + d["artifacts"]["query"].get("expire_in","")')" = "myart.zip|zip|archive|1 week" ]

D=$TMP/download
mkdir -p "$D"
run -e FLOTILLA_HELPER_TOKEN="$B_TOKEN" -v "$D:/d" -w /d "$IMG" \
    flotilla-helper artifacts-downloader --url "$URL" --id "$A_ID"
rc=$?
t "artifacts-downloader (a dependent job's token): 200, extracted" \
    sh -c "[ $rc -eq 0 ] && grep -qF 'Downloading artifacts from coordinator... ok' '$TMP/out'"
( cd "$P" && find out top.txt logs -print | grep -v '^out/skip.tmp$' | sort ) >"$TMP/want.list"
( cd "$D" && find . -mindepth 1 -print | sed 's|^\./||' | sort ) >"$TMP/got.list"
t "the downloaded tree is the uploaded one, byte for byte, modes and the link kept" \
    sh -c "cmp -s '$TMP/want.list' '$TMP/got.list' &&
    cmp -s '$P/out/sub/random.bin' '$D/out/sub/random.bin' &&
    [ \"\$(stat -c %a '$D/out/sub')\" = 750 ] && [ \"\$(readlink '$D/out/link')\" = one.txt ] &&
    [ ! -e '$D/out/skip.tmp' ] && [ ! -e '$D/missing' ]"

run -e FLOTILLA_HELPER_TOKEN="$B_TOKEN" "$IMG" \
    flotilla-helper artifacts-downloader --url "$URL" --id "$B_ID"
rc=$?
t "download of a job without artifacts: 404, exit 1" \
    sh -c "[ $rc -eq 1 ] && grep -qF 'not found' '$TMP/out'"
run -e FLOTILLA_HELPER_TOKEN=glcbt-wrong "$IMG" \
    flotilla-helper artifacts-downloader --url "$URL" --id "$A_ID"
rc=$?
t "download with a wrong token: 403, exit 1, no retry" \
    sh -c "[ $rc -eq 1 ] && grep -qF 'forbidden' '$TMP/out' && ! grep -q Retrying '$TMP/out'"

run -e FLOTILLA_HELPER_TOKEN=glcbt-wrong -v "$P:/p" -w /p "$IMG" \
    flotilla-helper artifacts-uploader --url "$URL" --id "$B_ID" --path top.txt
rc=$?
t "upload with a wrong token: 403 final, exit 1, no retry" \
    sh -c "[ $rc -eq 1 ] && grep -qF 'forbidden' '$TMP/out' && ! grep -q Retrying '$TMP/out'"

ctl POST inject "{\"method\":\"POST\",\"path\":\"/api/v4/jobs/$B_ID/artifacts\",\"status\":503,\"count\":2}" >/dev/null
run -e FLOTILLA_HELPER_TOKEN="$B_TOKEN" -v "$P:/p" -w /p "$IMG" \
    flotilla-helper artifacts-uploader --url "$URL" --id "$B_ID" --path top.txt
rc=$?
t "503 twice then 201: retried, exit 0" \
    sh -c "[ $rc -eq 0 ] && [ \$(grep -c 'service unavailable' '$TMP/out') -eq 2 ] &&
    grep -qF '201 Created' '$TMP/out'"

run -e FLOTILLA_HELPER_TOKEN="$B_TOKEN" -v "$P:/p" -w /p "$IMG" \
    flotilla-helper artifacts-uploader --url "$URL" --id "$B_ID" --path top.txt
rc=$?
t "a second archive for the job: GitLab's 400, 3 tries, exit 1" \
    sh -c "[ $rc -eq 1 ] && [ \$(grep -c 'coordinator... failed' '$TMP/out') -eq 3 ] &&
    grep -q 'another artifact of the same type' '$TMP/out'"

# 307: a fake GitLab that redirects every artifacts POST to the real one.
REDIR=$TMP/redir.py
cat >"$REDIR" <<EOF
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", "http://127.0.0.1:$FPORT/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1]))
__import__("os").replace(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
EOF
"$TL_PYTHON" "$REDIR" "$TMP/redir.port" >/dev/null 2>&1 &
PIDS="$PIDS $!"
tl_wait 10 test -s "$TMP/redir.port"
# shellcheck disable=SC2046
set -- $(new_job); C_ID=$1; C_TOKEN=$2
run -e FLOTILLA_HELPER_TOKEN="$C_TOKEN" -v "$P:/p" -w /p "$IMG" \
    flotilla-helper artifacts-uploader --url "http://127.0.0.1:$(cat "$TMP/redir.port")/" \
    --id "$C_ID" --path top.txt
rc=$?
meta=$(ctl GET "jobs/$C_ID")
t "307 Location: the upload moves to the Location's host and succeeds" \
    sh -c "[ $rc -eq 0 ] && grep -qF '307 Temporary Redirect' '$TMP/out' &&
    grep -qF '201 Created' '$TMP/out' && [ '$(jv "$meta" 'd["artifacts"]["filename"]')' = artifacts.zip ]"

run -e FLOTILLA_HELPER_TOKEN="$B_TOKEN" "$IMG" \
    flotilla-helper artifacts-uploader --url "$URL" --id "$B_ID" --token x --path y
t "--token on the command line is refused" sh -c "[ $? -eq 1 ] && grep -q 'not accepted' '$TMP/out'"

v=$(ctl GET violations)
t "no violation recorded by the fake GitLab" [ "$v" = "[]" ]
[ "$v" = "[]" ] || echo "#   $v"

# ---- cache through a volume ----
VOL=flotilla-test-cache-$$
"$DOCKER" volume create "$VOL" >/dev/null
# As GitLab: the new volume on a path the image does not have.
run -v "$VOL:/gitlab-runner-cache-init" "$IMG" flotilla-helper cache-init /gitlab-runner-cache-init
run -v "$VOL:/cache" "$IMG" stat -c %a /cache
t "cache-init makes the volume world-writable" grep -qx 777 "$TMP/out"
run -v "$VOL:/cache" -v "$P:/p" -w /p "$IMG" \
    flotilla-helper cache-archiver --file /cache/group/project/key-1/cache.zip --path out --path logs
rc=$?
run -v "$VOL:/cache" "$IMG" sh -c 'ls -A /cache/group/project/key-1/; mkdir /r && cd /r &&
    flotilla-helper cache-extractor --file /cache/group/project/key-1/cache.zip &&
    find . -type f | sort | xargs md5sum'
( cd "$P" && find out logs -type f | sort | sed 's|^|./|' | xargs md5sum ) >"$TMP/want.md5"
t "cache-archiver then cache-extractor in another container: same files, no temp file left" \
    sh -c "[ $rc -eq 0 ] && [ \"\$(head -n 1 '$TMP/out')\" = cache.zip ] &&
    tail -n +2 '$TMP/out' | cmp -s - '$TMP/want.md5'"
run -v "$VOL:/cache" "$IMG" flotilla-helper cache-extractor --file /cache/none/cache.zip
t "cache-extractor of a missing cache: exit 1, cache not found" \
    sh -c "[ $? -eq 1 ] && grep -q 'cache not found' '$TMP/out'"

# ---- health-check ----
LPORT=$(tl_free_port 127.0.0.1)
"$TL_PYTHON" -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); time.sleep(120)' "$LPORT" &
PIDS="$PIDS $!"
port_busy() { ! tl_port_free 127.0.0.1 "$LPORT"; }
tl_wait 5 port_busy
t0=$(date +%s)
run -e WAIT_FOR_SERVICE_TCP_ADDR=127.0.0.1 -e "WAIT_FOR_SERVICE_${LPORT}_TCP_PORT=$LPORT" \
    "$IMG" flotilla-helper health-check
rc=$?
t "health-check: a listening port answers, exit 0" \
    sh -c "[ $rc -eq 0 ] && grep -qF '127.0.0.1:$LPORT is up' '$TMP/out' && [ \$((\$(date +%s) - $t0)) -lt 20 ]"
CPORT=$(tl_free_port 127.0.0.1)
t0=$(date +%s)
run -e WAIT_FOR_SERVICE_TCP_ADDR=127.0.0.1 -e "WAIT_FOR_SERVICE_${CPORT}_TCP_PORT=$CPORT" \
    "$IMG" flotilla-helper health-check --timeout 3s
rc=$?
el=$(($(date +%s) - t0))
t "health-check: a closed port times out (--timeout 3s, exit 1, ${el}s)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'did not answer' '$TMP/out' && [ $el -ge 3 ] && [ $el -lt 30 ]"
run "$IMG" flotilla-helper health-check
t "health-check without WAIT_FOR_SERVICE_*: exit 1, No HOST or PORT found" \
    sh -c "[ $? -eq 1 ] && grep -q 'No HOST or PORT found' '$TMP/out'"

# ---- nothing left ----
"$DOCKER" volume rm "$VOL" >/dev/null 2>&1 && VOL=
left=$("$DOCKER" ps -aq | wc -l)
vols=$("$DOCKER" volume ls -q | wc -l)
t "no container or volume left ($left, $vols)" [ "$left" -eq 0 ] && [ "$vols" -eq 0 ]
