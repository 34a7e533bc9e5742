#!/bin/sh
# The fleet glue (manager/fleet.c) against the real fleeting-plugin-local,
# through tests/helpers/fleet_probe: idle instances made and readied over
# SSH, a job granted, max_use_count removal and replacement, an instance
# whose sshd is killed under a job (lost, the job cancelled), idle_count
# lowered (idle_time removals), a failing instance_ready_command, and a
# stop with deletion that leaves no sshd behind.
#
# FLEET_PROBE overrides the probe (e.g. build/asan/tests/fleet_probe),
# PLUGIN_BIN the plugin.  Needs root (sshd on 127.0.0.N).
set -u
. "${TOP:?TOP must be the repository root}/tests/lib/common.sh"

. "$TOP/tests/lib/fleet.sh"
fleet_harness fleet 14

# config NAME READY_COMMAND: a runner with capacity 1, max_use_count 1,
# idle_count 2, idle_time 3s and short intervals.
config() {
	cat >"$TMP/$1.toml" <<EOF
concurrent = 4
[[runners]]
  name = "fleet-test"
  url = "http://127.0.0.1:1"
  token = "glrt-fleettesttoken1"
  executor = "docker-autoscaler"
  [runners.autoscaler]
    plugin = "$PLUGIN"
    capacity_per_instance = 1
    max_use_count = 1
    max_instances = 4
    instance_ready_command = "$2"
    update_interval = "1s"
    update_interval_when_expecting = "200ms"
    shutdown_deletion_interval = "1s"
    [runners.autoscaler.plugin_config]
      name = "flt$1"
      max_size = 4
      state_dir = "$TMP/state$1"
    [[runners.autoscaler.policy]]
      idle_count = 2
      idle_time = "3s"
EOF
}

# no_sshd DIR: no process of the test names DIR (its sshds do, by -f).
no_sshd() {
	[ -z "$(tl_pids_under "$1")" ]
}

# ---- Run a: the life of a fleet.
config a "true"
timeout 180 "$PROBE" "$TMP/a.toml" start wait-ready 2 30 \
    acquire 20 release wait-gone 20 wait-ready 2 30 \
    acquire 20 kill-sshd "$TMP/statea" wait-cancelled 10 release \
    idle 0 wait-count 0 30 idle 2 wait-ready 2 30 stop delete \
    >"$TMP/a.out" 2>"$TMP/a.log"
rc=$?
sed 's/^/# /' "$TMP/a.out"

line() { grep -m1 "^$1" "$TMP/a.out"; }
ms() { line "$1" | sed -n 's/.* ms \([0-9]*\)$/\1/p'; }

# 1 (a)
[ "$(grep -c '^ready 2 ' "$TMP/a.out")" -ge 1 ]
check $? "idle_count 2: two instances running and ready in $(ms 'ready 2') ms"

# 2 (b)
[ "$(grep -c 'msg="instance ready command passed"' "$TMP/a.log")" -ge 2 ]
check $? "instance_ready_command \"true\" passed over SSH on each instance"

# 3 (c)
g1=$(line granted | cut -d' ' -f2)
[ -n "$g1" ]
check $? "reserve + acquire: granted on ready instance ${g1:-?}"

# 4 (c)
line "gone $g1 " >/dev/null &&
    grep -q "msg=\"removing instance\" instance=$g1 reason=max_use_count" "$TMP/a.log"
check $? "released with max_use_count 1: $g1 removed (max_use_count)"

# 5 (c)
[ "$(grep -c '^ready 2 ' "$TMP/a.out")" -ge 2 ]
check $? "replaced: two ready instances again"

# 6 (d)
g2=$(grep '^granted' "$TMP/a.out" | sed -n 2p | cut -d' ' -f2)
[ -n "$g2" ] && grep -q "^killed $g2 " "$TMP/a.out" &&
    grep 'level=error msg="instance unexpectedly removed"' "$TMP/a.log" |
    grep "instance=$g2 " | grep "max-use-count=1 " | grep -q \
    'runner=fleettes slots="map\[0:true\]" subsystem=taskscaler used=1'
check $? "sshd of ${g2:-?} killed under a job: instance unexpectedly removed, GitLab's fields"

# 7 (d)
c=$(ms cancelled)
[ -n "$c" ] && [ "$c" -le 5000 ]
check $? "the job on it cancelled (callback and hook) ${c:-?} ms after the kill"

# 8 (e)
line "count 0 " >/dev/null &&
    grep -q 'msg="removing instance" instance=[^ ]* reason=idle_time' "$TMP/a.log"
check $? "idle_count 0 by fleet_set_policies: all removed after idle_time ($(ms 'count 0') ms)"

# 9 (f)
line stopped >/dev/null && [ $rc -eq 0 ]
check $? "fleet_stop with deletion: stopped in $(ms stopped) ms, probe exit $rc"

# 10 (f)
tl_wait 10 no_sshd "$TMP/statea/"
check $? "no sshd of the run left"
[ $rc -eq 0 ] || tl_diag "$TMP/a.log" 40

# ---- Run b: a failing instance_ready_command.
config b "echo not-ready >&2; exit 1"
timeout 120 "$PROBE" "$TMP/b.toml" start run 4 stop delete \
    >"$TMP/b.out" 2>"$TMP/b.log"
rc=$?
sed 's/^/# /' "$TMP/b.out"

# 11
grep 'level=error msg="instance ready command failed"' "$TMP/b.log" |
    grep -q 'reason="exit status 1: not-ready'
check $? "a failing instance_ready_command: logged with its status and stderr"

# 12
grep -q 'msg="removing instance" instance=[^ ]* reason=not_ready' "$TMP/b.log"
check $? "the instance that failed it is removed (not_ready)"

# 13
[ $rc -eq 0 ] && grep -q '^stopped' "$TMP/b.out"
check $? "stopped, probe exit $rc"

# 14
tl_wait 10 no_sshd "$TMP/stateb/"
check $? "no sshd of the run left"
[ $rc -eq 0 ] || tl_diag "$TMP/b.log" 40
exit 0
