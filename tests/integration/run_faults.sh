#!/bin/sh
# flotilla run under faults: GitLab answering 502 for 20 s mid-job, the
# plugin killed with SIGKILL mid-run, an instance's sshd killed mid-job,
# SIGQUIT with three running jobs, SIGHUP with a changed idle_count, and a
# broken config file on SIGHUP.
set -u
. "$TOP/tests/lib/e2e.sh"
e2e_harness run_faults 13

e2e_infra
check $? "a Docker engine, the test image and the fake GitLab"

# --- 1. GitLab answers 502 for 20 s in the middle of jobs.
E2E_CAP=2 E2E_MAX_INST=2 e2e_config "$TMP/config.toml"
e2e_start
ids=$(e2e_py submit "$URL" 3 --sleep 6 --name bad-gateway)
e2e_py started "$URL" 120 $ids
curl -fsS -X POST "$URL/__fake/fail?status=502&seconds=20" >/dev/null
e2e_py wait "$URL" 180 $ids >/dev/null
e2e_py check "$URL" --expect success $ids >"$TMP/c1.out" 2>&1
rc=$?
sed 's/^/# /' "$TMP/c1.out"
check $rc "502 for 20 s: every final state delivered, no trace byte lost"

# --- 2. The plugin killed with SIGKILL mid-run.
ids=$(e2e_py submit "$URL" 3 --sleep 6 --name plugin-kill)
e2e_py started "$URL" 120 $ids
pp=$(pgrep -P "$FL_PID" -f fleeting-plugin-local | head -1)
kill -KILL "$pp"
e2e_py wait "$URL" 180 $ids >/dev/null
e2e_py check "$URL" --expect success $ids >"$TMP/c2.out" 2>&1
rc=$?
sed 's/^/# /' "$TMP/c2.out"
check $rc "plugin killed: the jobs finish"
np=$(pgrep -P "$FL_PID" -f fleeting-plugin-local | head -1)
[ -n "$np" ] && [ "$np" != "$pp" ]
check $? "the plugin was restarted ($pp -> $np)"
[ "$(e2e_instances)" -le 2 ]
check $? "no duplicate instances ($(e2e_instances) <= max_instances 2)"
e2e_stop

# --- 3. An instance's sshd killed mid-job (one job an instance).
E2E_CAP=1 E2E_MAX_INST=3 E2E_RANGE=127.0.0.140-127.0.0.160 \
    e2e_config "$TMP/config3.toml"
e2e_start "$TMP/config3.toml"
ids=$(e2e_py submit "$URL" 2 --sleep 25 --name sshd-kill)
e2e_py started "$URL" 120 $ids
victim=$(echo $ids | cut -d' ' -f1)
other=$(echo $ids | cut -d' ' -f2)
inst=$(e2e_py instance "$URL" "$victim")
kill -KILL "$(cat "$TMP/plugin/instances/$inst/sshd.pid")"
t0=$(date +%s)
e2e_py wait "$URL" 40 "$victim" >/dev/null
t1=$(date +%s)
st=$(e2e_py state "$URL" "$victim")
[ "$st" = "failed runner_system_failure" ] && [ $((t1 - t0)) -le 30 ]
check $? "sshd killed: its job fails as runner_system_failure in $((t1 - t0)) s ($st)"
e2e_py wait "$URL" 60 "$other" >/dev/null
e2e_py check "$URL" --expect success "$other" >/dev/null
check $? "the job on the other instance is unaffected"
ids=$(e2e_py submit "$URL" 1 --sleep 1 --name after-kill)
e2e_py wait "$URL" 120 $ids >/dev/null
e2e_py check "$URL" --expect success $ids >/dev/null
ni=$(e2e_py instance "$URL" $ids)
[ -n "$ni" ] && [ "$ni" != "$inst" ]
check $? "a later job runs on another instance ($inst -> $ni)"
e2e_stop

# --- 4. SIGQUIT with three running jobs.
E2E_CAP=2 E2E_MAX_INST=2 e2e_config "$TMP/config.toml"
e2e_start
ids=$(e2e_py submit "$URL" 3 --sleep 5 --name quit)
e2e_py started "$URL" 120 $ids
kill -QUIT "$FL_PID"
tl_wait 90 tl_dead "$FL_PID"
wait "$FL_PID"
rc=$?
FL_PID=
e2e_py check "$URL" --expect success $ids >/dev/null
check $? "SIGQUIT: the three running jobs finish"
check $rc "SIGQUIT: then flotilla exits 0"

# --- 5. SIGHUP with a changed idle_count; then a broken file.
E2E_IDLE=0 e2e_config "$TMP/config.toml"
e2e_start
sleep 3
before=$(e2e_instances)
E2E_IDLE=2 e2e_config "$TMP/config.toml"
kill -HUP "$FL_PID"
tl_wait 60 e2e_instances_ge 2
check $? "SIGHUP: idle_count 0 -> 2 applied ($before -> $(e2e_instances) instances)"
echo '[[runners' >>"$TMP/config.toml"
kill -HUP "$FL_PID"
sleep 2
kill -0 "$FL_PID" && grep -q "reload failed" "$TMP/flotilla.log"
check $? "SIGHUP with a broken file: reported, old configuration kept"
ids=$(e2e_py submit "$URL" 1 --sleep 1 --name after-reload)
e2e_py wait "$URL" 60 $ids >/dev/null
e2e_py check "$URL" --expect success $ids >/dev/null
check $? "jobs still run after the failed reload"
