#!/bin/sh
# flotilla register, verify, unregister and list against the strict fake
# GitLab (tests/fakes/fake_gitlab.py) on 127.0.0.1:<free port>: a legacy
# registration token (POST runners) and a glrt- authentication token
# (POST runners/verify) appended to a hand-written, comment-rich config
# whose other bytes must stay identical; tokens never in the output nor
# in argv (given through the environment); verify reporting valid and
# removed runners, --delete cutting the removed one out; unregister
# calling the right DELETE and cutting the entry out (the file ends up
# byte for byte as it was); refusals that leave the file unchanged (bad
# registration token, GitLab down, an entry that would not load, server
# settings with a glrt- token); a new file (mode 0600, concurrent = 1,
# check_interval = 0); --template-config; --help of each command.
# Interactive registration (no --non-interactive): answers piped to
# stdin for a glrt- and a legacy token, defaults taken on empty answers,
# an unsupported executor asked again, end of input mid-way (exit 1,
# nothing written or registered), the token never shown, and on a pty
# the token read without echo.
# The binary comes from $BUILD (BUILD=$TOP/build/asan for the sanitizer
# build: any sanitizer report makes a command fail).
set -u
. "$TOP/tests/lib/common.sh"

FL=$BUILD/bin/flotilla
FAKE=$TOP/tests/fakes/fake_gitlab.py
TMP=$(mktemp -d /tmp/flreg.XXXXXX)
RAND=$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n')
GLRT=glrt-t1_$RAND
REGTOK=GR1348941$RAND
export FAKE_GITLAB_TOKENS=$GLRT
export FAKE_GITLAB_REGISTRATION_TOKENS=$REGTOK
FAKEPID=

cleanup() {
	trap - EXIT INT TERM HUP
	[ -n "$FAKEPID" ] && tl_stop 5 "$FAKEPID" >/dev/null
	if [ -n "${LOGDIR:-}" ]; then
		mkdir -p "$LOGDIR/register"
		cp "$TMP"/*.out "$TMP"/*.err "$TMP"/requests.jsonl \
		    "$LOGDIR/register/" 2>/dev/null
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

# fl NAME ARGS...: run flotilla, output in $TMP/NAME.out/.err; sets RC.
fl() {
	_name=$1
	shift
	"$FL" "$@" >"$TMP/$_name.out" 2>"$TMP/$_name.err"
	RC=$?
	if grep -q 'Sanitizer' "$TMP/$_name.err"; then
		echo "# sanitizer report in $_name"; show "$TMP/$_name.err" 30
		RC=99
	fi
}

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
# requests_for METHOD PATH: how many requests the fake saw, and their
# statuses, e.g. "1 204".
requests_for() {
	jv "$(ctl GET requests)" "' '.join([str(len([e for e in d if e['method']=='$1' and e['path']=='$2']))] + [str(e['status']) for e in d if e['method']=='$1' and e['path']=='$2'])"
}
# no_secret FILE...: none of the tokens appears in the files.
no_secret() {
	for _f in "$@"; do
		for _t in "$GLRT" "$REGTOK" ${NEWTOK:-}; do
			grep -qF "$_t" "$_f" && { echo "# token in $_f"; return 1; }
		done
	done
	return 0
}
# same_prefix ORIG FILE: FILE starts with every byte of ORIG.
same_prefix() {
	head -c "$(wc -c <"$1")" "$2" | cmp -s - "$1"
}

echo "1..49"

"$TL_PYTHON" "$FAKE" --port-file "$TMP/port" --log "$TMP/requests.jsonl" \
    >"$TMP/fake.log" 2>&1 &
FAKEPID=$!
if ! tl_wait 10 test -s "$TMP/port"; then
	echo "Bail out! fake GitLab did not start"; show "$TMP/fake.log"; exit 1
fi
PORT=$(cat "$TMP/port")
URL=http://127.0.0.1:$PORT/

# ---- --help ----
for c in register verify unregister list; do
	fl "help-$c" "$c" --help
	case $c in
	register) want='--non-interactive.*' ;;
	verify) want='--delete' ;;
	unregister) want='--all-runners' ;;
	list) want='usage: flotilla list' ;;
	esac
	[ "$RC" -eq 0 ] && grep -q -- "$want" "$TMP/help-$c.out"
	check $? "$c --help"
done

# ---- a hand-written file ----
CFG=$TMP/etc/config.toml
mkdir -p "$TMP/etc"
cat >"$CFG" <<'EOF'
# flotilla, written by hand   
concurrent = 4        # jobs at once
check_interval = 3

[session_server]
  session_timeout = 1800   # "[[runners]]" in a comment

# the runners follow
EOF
printf 'log_level = "info" # no newline at the end' >>"$CFG"
cp "$CFG" "$TMP/orig.toml"
{ cat "$CFG"; echo; } >"$TMP/orig_nl.toml"
chmod 0640 "$CFG"

# ---- register with a legacy registration token from the environment ----
env REGISTRATION_TOKEN="$REGTOK" RUNNER_NAME=legacy-one \
    "$FL" -c "$CFG" register --non-interactive --url "$URL" \
    --executor docker-autoscaler --docker-image busybox:latest \
    --tag-list "a, b" --maintenance-note "a note" --maximum-timeout 3600 \
    --autoscaler-plugin local --autoscaler-capacity-per-instance 2 \
    --autoscaler-max-instances 4 --limit 2 \
    >"$TMP/reg1.out" 2>"$TMP/reg1.err"
RC=$?
[ "$RC" -eq 0 ] && grep -q 'Registering runner... succeeded' "$TMP/reg1.err" &&
    grep -q 'Runner registered successfully' "$TMP/reg1.err"
check $? "register with a registration token (REGISTRATION_TOKEN)"
[ "$RC" -eq 0 ] || show "$TMP/reg1.err"
NEWTOK=$(sed -n 's/^  token = "\(glrtr-[0-9a-f]*\)"$/\1/p' "$CFG")
[ -n "$NEWTOK" ]
check $? "the token GitLab gave is in the file"
same_prefix "$TMP/orig.toml" "$CFG"
check $? "every byte of the hand-written file kept (prefix identical)"
fl cc1 -c "$CFG" check-config
check $RC "the result loads (check-config)"
grep -q '^  token_obtained_at = 20[0-9-]*T[0-9:]*Z$' "$CFG" &&
    grep -q '^  token_expires_at = 0001-01-01T00:00:00Z$' "$CFG" &&
    grep -q '^  id = [1-9]' "$CFG"
check $? "id, token_obtained_at, token_expires_at written"
[ "$(stat -c %a "$CFG")" = 640 ]
check $? "an existing file keeps its mode"
R=$(ctl GET registered)
[ "$(jv "$R" "(d[0]['params']['description'], d[0]['params']['tag_list'], d[0]['params']['run_untagged'], d[0]['params']['locked'], d[0]['params']['maximum_timeout'], d[0]['params']['maintenance_note'], d[0]['params']['paused'], d[0]['params']['info_executor'])")" = "('legacy-one', ['a', 'b'], False, True, 3600, 'a note', False, 'docker-autoscaler')" ]
check $? "POST runners sent description, tags, run_untagged, locked, maximum_timeout, note, paused, info"
no_secret "$TMP/reg1.out" "$TMP/reg1.err"
check $? "no token in register's output"

# ---- register with a glrt- token, watching argv while it runs ----
cp "$CFG" "$TMP/before2.toml"
# GitLab answers 502 for 0.3 s: register retries meanwhile (4 waits of at
# least 100 ms each), then succeeds.
ctl POST "fail?status=502&seconds=0.3" >/dev/null
CI_SERVER_TOKEN=$GLRT "$FL" -c "$CFG" register -n --url "$URL" \
    --name glrt-one --executor docker-autoscaler --docker-image alpine \
    --autoscaler-plugin local --request-concurrency 2 \
    >"$TMP/reg2.out" 2>"$TMP/reg2.err" &
RPID=$!
seen=0
leak=0
while tl_alive "$RPID"; do
	args=$(tl_cmdline "$RPID")
	case "$args" in *register*) seen=$((seen + 1)) ;; esac
	case "$args" in *"$GLRT"*) leak=1 ;; esac
	# (awk gets the token from its environment, not from its argv)
	ps -eo args 2>/dev/null | T=$GLRT awk 'index($0, ENVIRON["T"]) { f = 1 }
	    END { exit !f }' && leak=1
	sleep 0.05
done
wait "$RPID"
RC=$?
[ "$RC" -eq 0 ] && grep -q 'Verifying runner... is valid' "$TMP/reg2.err"
check $? "register with a glrt- token (CI_SERVER_TOKEN) verifies it"
[ "$RC" -eq 0 ] || show "$TMP/reg2.err"
[ "$seen" -gt 0 ] && [ "$leak" -eq 0 ]
check $? "the token is never in argv or ps while it runs ($seen samples)"
no_secret "$TMP/reg2.out" "$TMP/reg2.err"
check $? "no token in its output"
same_prefix "$TMP/before2.toml" "$CFG" && [ "$(grep -c '^\[\[runners\]\]' "$CFG")" = 2 ] &&
    grep -qF "token = \"$GLRT\"" "$CFG"
check $? "second runner appended, the rest kept"

# ---- list ----
fl list -c "$CFG" list
[ "$RC" -eq 0 ] && grep -q '^legacy-one .*Executor=docker-autoscaler Token=[^ ]* URL=http://127.0.0.1' "$TMP/list.err" &&
    grep -q '^glrt-one ' "$TMP/list.err" && no_secret "$TMP/list.out" "$TMP/list.err"
check $? "list: name, Executor, short Token, URL; no token"

# ---- verify ----
fl verify1 -c "$CFG" verify
[ "$RC" -eq 0 ] && grep -q 'Verifying runner... is alive .*runner_name=legacy-one' "$TMP/verify1.err" &&
    grep -q 'Verifying runner... is valid .*runner_name=glrt-one' "$TMP/verify1.err"
check $? "verify: both runners valid"
# GitLab deletes the legacy runner (as an admin would in the UI).
curl -sS -o /dev/null -X DELETE -H 'Content-Type: application/json' \
    -H "RUNNER-TOKEN: $NEWTOK" --data-binary "{\"token\":\"$NEWTOK\"}" \
    "${URL}api/v4/runners"
cp "$CFG" "$TMP/before3.toml"
fl verify2 -c "$CFG" verify
[ "$RC" -ne 0 ] && grep -q 'ERROR: Verifying runner... is removed .*runner_name=legacy-one' "$TMP/verify2.err" &&
    cmp -s "$CFG" "$TMP/before3.toml"
check $? "verify: the removed runner reported, exit 1, file unchanged"
fl verify3 -c "$CFG" verify -n glrt-one
check $RC "verify -n NAME checks only that runner"
fl verify4 -c "$CFG" verify --delete
[ "$RC" -eq 0 ] && grep -q 'Updated' "$TMP/verify4.err" &&
    [ "$(grep -c '^\[\[runners\]\]' "$CFG")" = 1 ] && ! grep -q 'legacy-one' "$CFG" &&
    grep -q 'glrt-one' "$CFG" && same_prefix "$TMP/orig.toml" "$CFG"
check $? "verify --delete cuts the removed runner out, the rest kept"
fl cc2 -c "$CFG" check-config
check $RC "the result loads"

# ---- unregister ----
fl unreg1 -c "$CFG" unregister -n glrt-one
[ "$RC" -eq 0 ] && [ "$(requests_for DELETE /api/v4/runners/managers)" = "1 204" ]
check $? "unregister -n: DELETE runners/managers (glrt- token) answered 204"
cmp -s "$CFG" "$TMP/orig_nl.toml"
check $? "the file is byte for byte the hand-written one again (plus the final newline it lacked)"
no_secret "$TMP/unreg1.out" "$TMP/unreg1.err"
check $? "no token in unregister's output"

# A legacy runner unregistered by token: DELETE runners.
env REGISTRATION_TOKEN="$REGTOK" "$FL" -c "$CFG" register -n --url "$URL" \
    --name legacy-two --executor docker-autoscaler --docker-image busybox \
    --autoscaler-plugin local >"$TMP/reg3.out" 2>"$TMP/reg3.err"
NEWTOK=$(sed -n 's/^  token = "\(glrtr-[0-9a-f]*\)"$/\1/p' "$CFG")
CI_SERVER_TOKEN=$NEWTOK "$FL" -c "$CFG" unregister --url "$URL" \
    >"$TMP/unreg2.out" 2>"$TMP/unreg2.err"
RC=$?
[ "$RC" -eq 0 ] && [ "$(requests_for DELETE /api/v4/runners)" = "2 204 204" ] &&
    cmp -s "$CFG" "$TMP/orig_nl.toml"
check $? "unregister --url + token (legacy): DELETE runners, entry gone"
fl unreg3 -c "$CFG" unregister -n nosuch
[ "$RC" -ne 0 ] && grep -q 'could not find a runner' "$TMP/unreg3.err" && cmp -s "$CFG" "$TMP/orig_nl.toml"
check $? "unregister of an unknown runner: error, file unchanged"

# ---- refusals ----
env REGISTRATION_TOKEN=GR1348941wrongwrongwrong "$FL" -c "$CFG" register -n \
    --url "$URL" --name bad --executor docker-autoscaler --docker-image busybox \
    --autoscaler-plugin local >"$TMP/bad.out" 2>"$TMP/bad.err"
RC=$?
[ "$RC" -ne 0 ] && grep -q 'forbidden (check registration token)' "$TMP/bad.err" &&
    grep -q 'Failed to register the runner' "$TMP/bad.err" && cmp -s "$CFG" "$TMP/orig_nl.toml"
check $? "a bad registration token: clear error, file unchanged"
nreg=$(jv "$(ctl GET registered)" "len(d)")
env REGISTRATION_TOKEN="$REGTOK" "$FL" -c "$CFG" register -n --url "$URL" \
    --name noplugin --executor docker-autoscaler --docker-image busybox \
    >"$TMP/noplug.out" 2>"$TMP/noplug.err"
RC=$?
[ "$RC" -ne 0 ] && grep -q 'needs a plugin' "$TMP/noplug.err" &&
    [ "$(jv "$(ctl GET registered)" "len(d)")" = "$nreg" ] && cmp -s "$CFG" "$TMP/orig_nl.toml"
check $? "an entry that would not load: refused before registering, file unchanged"
ctl POST "fail?status=503&seconds=30" >/dev/null
env REGISTRATION_TOKEN="$REGTOK" "$FL" -c "$CFG" register -n --url "$URL" \
    --name down --executor docker-autoscaler --docker-image busybox \
    --autoscaler-plugin local >"$TMP/down.out" 2>"$TMP/down.err"
RC=$?
ctl POST "fail?status=503&seconds=0" >/dev/null
[ "$RC" -ne 0 ] && grep -q 'Registering runner... failed' "$TMP/down.err" && cmp -s "$CFG" "$TMP/orig_nl.toml"
check $? "GitLab answering 503: error after the retries, file unchanged"
CI_SERVER_TOKEN=$GLRT "$FL" -c "$CFG" register -n --url "$URL" --name g \
    --executor docker-autoscaler --docker-image busybox --autoscaler-plugin local \
    --tag-list x >"$TMP/reserved.out" 2>"$TMP/reserved.err"
RC=$?
[ "$RC" -ne 0 ] && grep -q 'reserved' "$TMP/reserved.err" && cmp -s "$CFG" "$TMP/orig_nl.toml"
check $? "--tag-list with a glrt- token refused (GitLab's message)"
fl nonint -c "$CFG" register --url "$URL" --executor docker-autoscaler </dev/null
[ "$RC" -eq 1 ] && grep -q 'Unexpected EOF. Did you mean to use --non-interactive?' "$TMP/nonint.err" &&
    cmp -s "$CFG" "$TMP/orig_nl.toml"
check $? "without --non-interactive and no input: exit 1, says why (GitLab's EOF message)"
printf 'concurrent = \n' >"$TMP/broken.toml"
cp "$TMP/broken.toml" "$TMP/broken.orig"
env REGISTRATION_TOKEN="$REGTOK" "$FL" -c "$TMP/broken.toml" register -n \
    --url "$URL" --executor docker-autoscaler --docker-image busybox \
    --autoscaler-plugin local >"$TMP/broken.out" 2>"$TMP/broken.err"
RC=$?
[ "$RC" -ne 0 ] && cmp -s "$TMP/broken.toml" "$TMP/broken.orig"
check $? "a broken config file: refused, untouched"

# ---- a new file, with a template ----
cat >"$TMP/template.toml" <<'EOF'
[[runners]]
  token = "glrt-template-token-never-used"
  [runners.docker]
    privileged = false
  [runners.autoscaler]
    plugin = "local"
    capacity_per_instance = 2
    max_use_count = 3
    [[runners.autoscaler.policy]]
      idle_count = 1
      idle_time = "20m0s"
EOF
NEW=$TMP/new/dir/config.toml
CI_SERVER_TOKEN=$GLRT TEMPLATE_CONFIG_FILE=$TMP/template.toml "$FL" -c "$NEW" \
    register -n --url "$URL" --name fromtmpl --executor docker-autoscaler \
    --docker-image busybox >"$TMP/new.out" 2>"$TMP/new.err"
RC=$?
[ "$RC" -eq 0 ] && [ "$(stat -c %a "$NEW")" = 600 ] &&
    [ "$(head -n 2 "$NEW")" = "$(printf 'concurrent = 1\ncheck_interval = 0')" ]
check $? "a missing file is created: mode 0600, concurrent = 1, check_interval = 0"
[ "$RC" -eq 0 ] || show "$TMP/new.err"
fl dump -c "$NEW" check-config --dump
[ "$RC" -eq 0 ] && grep -q 'max_use_count = 3' "$TMP/dump.out" &&
    grep -q 'idle_count = 1' "$TMP/dump.out" && ! grep -q 'glrt-template' "$NEW"
check $? "--template-config merged ([runners.autoscaler], policy; not its token)"
! ls -a "$TMP/new/dir" | grep -q '\.tmp\.'
check $? "no temporary file left beside it"

# ---- interactive (no --non-interactive): answers on stdin ----
HOST=$(uname -n)
# in_order FILE TEXT...: each TEXT occurs in FILE after the previous one.
in_order() {
	"$TL_PYTHON" - "$@" <<'EOF'
import sys
data = open(sys.argv[1], encoding="utf-8", errors="replace").read()
pos = 0
for want in sys.argv[2:]:
    i = data.find(want, pos)
    if i < 0:
        print("# not found (in order): %r" % want)
        sys.exit(1)
    pos = i + len(want)
EOF
}
IA=$TMP/ia
mkdir -p "$IA"

# A glrt- token typed in; an empty URL answer (asked again), the host
# name taken as the default name, an executor we do not run corrected.
printf '\n%s\n%s\n\ndocker\ndocker-autoscaler\nbusybox:latest\n' "$URL" "$GLRT" |
    "$FL" -c "$IA/glrt.toml" register --autoscaler-plugin local \
    >"$TMP/ia1.out" 2>"$TMP/ia1.err"
RC=$?
[ "$RC" -eq 0 ] && in_order "$TMP/ia1.err" \
    "Enter the GitLab instance URL (for example, https://gitlab.com/):" \
    "Enter the GitLab instance URL (for example, https://gitlab.com/):" \
    "Enter the registration token:" "Verifying runner... is valid" \
    "Enter a name for the runner. This is stored only in the local config.toml file:" \
    "[$HOST]: " "Enter an executor: docker-autoscaler:" \
    "Invalid executor specified" "Enter an executor: docker-autoscaler:" \
    "Enter the default Docker image (for example, " \
    "Runner registered successfully. Feel free to start it, but if it's running already the config should be automatically reloaded!" \
    "Configuration (with the authentication token) was saved in \"$IA/glrt.toml\""
check $? "interactive, glrt- token: URL (asked again after an empty answer), token, verify, name [host], executor (asked again after 'docker'), image, GitLab's closing lines"
[ "$RC" -eq 0 ] || show "$TMP/ia1.err"
grep -qxF "  name = \"$HOST\"" "$IA/glrt.toml" &&
    grep -qxF "  url = \"$URL\"" "$IA/glrt.toml" &&
    grep -qxF "  token = \"$GLRT\"" "$IA/glrt.toml" &&
    grep -qxF '  executor = "docker-autoscaler"' "$IA/glrt.toml" &&
    grep -qxF '    image = "busybox:latest"' "$IA/glrt.toml" &&
    grep -q '^  id = [1-9]' "$IA/glrt.toml" &&
    "$FL" -c "$IA/glrt.toml" check-config >/dev/null 2>&1
check $? "the answers are in the file (name = host name by default), which loads"
no_secret "$TMP/ia1.out" "$TMP/ia1.err"
check $? "the typed token is not echoed or logged"
[ ! -s "$TMP/ia1.out" ]
check $? "questions go to stderr, as GitLab Runner's; stdout stays empty"

# A legacy registration token typed in; the URL, executor and image from
# flag and environment taken as defaults on empty answers.
nreg=$(jv "$(ctl GET registered)" "len(d)")
printf '\n%s\nlegacy ia\nx, y\na note\n\n\n' "$REGTOK" |
    env RUNNER_EXECUTOR=docker-autoscaler DOCKER_IMAGE=alpine:3 \
    "$FL" -c "$IA/legacy.toml" register --url "$URL" --autoscaler-plugin local \
    >"$TMP/ia2.out" 2>"$TMP/ia2.err"
RC=$?
[ "$RC" -eq 0 ] && in_order "$TMP/ia2.err" \
    "Enter the GitLab instance URL (for example, https://gitlab.com/):" \
    "[$URL]: " "Enter the registration token:" \
    "Enter a description for the runner:" "[$HOST]: " \
    "Enter tags for the runner (comma-separated):" \
    "Enter optional maintenance note for the runner:" \
    "Enter an executor: docker-autoscaler:" "[docker-autoscaler]: " \
    "Enter the default Docker image (for example, " "[alpine:3]: " \
    "Registering runner... succeeded" "Runner registered successfully."
check $? "interactive, registration token: URL [flag], token, description, tags, note, executor [env], image [env]"
[ "$RC" -eq 0 ] || show "$TMP/ia2.err"
R=$(ctl GET registered)
NEWTOK=$(sed -n 's/^  token = "\(glrtr-[0-9a-f]*\)"$/\1/p' "$IA/legacy.toml")
[ "$(jv "$R" "len(d)")" = $((nreg + 1)) ] &&
    [ "$(jv "$R" "(d[-1]['params']['description'], d[-1]['params']['tag_list'], d[-1]['params']['maintenance_note'], d[-1]['params']['run_untagged'])")" = "('legacy ia', ['x', 'y'], 'a note', False)" ] &&
    [ -n "$NEWTOK" ] && grep -qxF "  url = \"$URL\"" "$IA/legacy.toml" &&
    grep -qxF '    image = "alpine:3"' "$IA/legacy.toml"
check $? "POST runners got the answered description, tags and note; the file the defaults"
no_secret "$TMP/ia2.out" "$TMP/ia2.err"
check $? "neither the typed token nor the one GitLab gave is in the output"

# End of input mid-way: an error, exit 1, nothing registered or written.
cp "$CFG" "$TMP/before_eof.toml"
nreg=$(jv "$(ctl GET registered)" "len(d)")
printf '%s\n%s\nhalf done\n' "$URL" "$REGTOK" |
    "$FL" -c "$CFG" register --autoscaler-plugin local \
    >"$TMP/ia3.out" 2>"$TMP/ia3.err"
RC=$?
[ "$RC" -eq 1 ] && grep -q 'Unexpected EOF' "$TMP/ia3.err" &&
    grep -q 'Enter tags for the runner' "$TMP/ia3.err" &&
    cmp -s "$CFG" "$TMP/before_eof.toml" &&
    [ "$(jv "$(ctl GET registered)" "len(d)")" = "$nreg" ] &&
    no_secret "$TMP/ia3.out" "$TMP/ia3.err"
check $? "EOF at the tags question (registration token): exit 1, nothing registered, config.toml untouched, no token shown"
[ "$RC" -eq 1 ] || show "$TMP/ia3.err"
# A token from the environment is not asked for; EOF after the verify.
printf '%s\nafter verify\ndocker-autoscaler\n' "$URL" |
    CI_SERVER_TOKEN=$GLRT "$FL" -c "$CFG" register --autoscaler-plugin local \
    >"$TMP/ia4.out" 2>"$TMP/ia4.err"
RC=$?
[ "$RC" -eq 1 ] && grep -q 'Unexpected EOF' "$TMP/ia4.err" &&
    grep -q 'Verifying runner... is valid' "$TMP/ia4.err" &&
    grep -q 'Enter the default Docker image' "$TMP/ia4.err" &&
    ! grep -q 'Enter the registration token' "$TMP/ia4.err" &&
    cmp -s "$CFG" "$TMP/before_eof.toml" &&
    ! ls -a "$(dirname "$CFG")" | grep -q '\.tmp\.' &&
    no_secret "$TMP/ia4.out" "$TMP/ia4.err"
check $? "CI_SERVER_TOKEN not asked for; EOF at the image question: exit 1, config.toml untouched"
[ "$RC" -eq 1 ] || show "$TMP/ia4.err"

# --non-interactive (-n, or REGISTER_NON_INTERACTIVE) never asks or reads.
printf '%s\n' "$REGTOK" | "$FL" -c "$CFG" register -n --url "$URL" \
    --executor docker-autoscaler --docker-image busybox \
    --autoscaler-plugin local >"$TMP/ni1.out" 2>"$TMP/ni1.err"
RC1=$?
printf '%s\n' "$REGTOK" | REGISTER_NON_INTERACTIVE=true "$FL" -c "$CFG" \
    register --url "$URL" --executor docker-autoscaler --docker-image busybox \
    --autoscaler-plugin local >"$TMP/ni2.out" 2>"$TMP/ni2.err"
RC2=$?
[ "$RC1" -eq 1 ] && [ "$RC2" -eq 1 ] &&
    grep -q 'The registration-token needs to be entered' "$TMP/ni1.err" &&
    grep -q 'The registration-token needs to be entered' "$TMP/ni2.err" &&
    ! grep -q 'Enter ' "$TMP/ni1.err" "$TMP/ni2.err" &&
    cmp -s "$CFG" "$TMP/before_eof.toml"
check $? "-n and REGISTER_NON_INTERACTIVE: a missing token is an error, no question asked"

# On a terminal (a pty): the token is read without echo, the echo is back
# for the next answer.
cat >"$TMP/pty_register.py" <<'EOF'
import os, pty, select, signal, sys, time
fl, cfg, url = sys.argv[1:4]
tok = os.environ["PTY_TOKEN"].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execv(fl, [fl, "-c", cfg, "register", "--url", url,
                  "--executor", "docker-autoscaler", "--docker-image", "busybox",
                  "--autoscaler-plugin", "local"])
out = b""
deadline = time.time() + 20
def read_until(want):
    global out
    while want not in out:
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError(want)
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            raise EOFError(want)
        out += chunk
try:
    read_until(b"[" + url.encode() + b"]: ")
    os.write(fd, b"\n")
    read_until(b"Enter the registration token:")
    os.write(fd, tok + b"\n")
    read_until(b"Enter a name for the runner")
    read_until(b"]: ")
    os.write(fd, b"pty-name\n")
    read_until(b"[docker-autoscaler]: ")
    os.write(fd, b"\n")
    read_until(b"[busybox]: ")
    os.write(fd, b"\n")
    while True:
        r, _, _ = select.select([fd], [], [], max(0.1, deadline - time.time()))
        if not r:
            raise TimeoutError("exit")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
        out += chunk
    _, st = os.waitpid(pid, 0)
    rc = os.waitstatus_to_exitcode(st)
except Exception as e:
    print("# pty: %r" % (e,))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    rc = 99
sys.stdout.buffer.write(out.replace(tok, b"<the token>"))
if tok in out:
    print("\n# the token was echoed")
    rc = 98
elif b"pty-name" not in out.split(b"Enter a name for the runner")[-1]:
    print("\n# the name typed after the token was not echoed")
    rc = 97
sys.exit(rc)
EOF
PTY_TOKEN=$GLRT "$TL_PYTHON" "$TMP/pty_register.py" "$FL" "$IA/pty.toml" "$URL" >"$TMP/pty.out" 2>&1
RC=$?
[ "$RC" -eq 0 ] && grep -qxF '  name = "pty-name"' "$IA/pty.toml" &&
    grep -q 'Runner registered successfully' "$TMP/pty.out"
check $? "on a terminal the token is read without echo, and the echo comes back for the name"
[ "$RC" -eq 0 ] || show "$TMP/pty.out"

# ---- the fake's protocol checks ----
V=$(ctl GET violations)
[ "$V" = "[]" ]
check $? "the fake saw no protocol violation"
[ "$V" = "[]" ] || echo "# $V"
no_secret "$TMP/requests.jsonl"
check $? "no token in the fake's request log (none in any URL)"
