#!/bin/sh
# State storage across fleet restarts (manager/fleet.c with
# manager/state_store.c) against the real fleeting-plugin-local, through
# tests/helpers/fleet_probe: run 1 (storage on) makes one idle instance,
# runs a job on it and stops WITHOUT deleting (the plugin's sshds run in
# their own session and its state_dir persists); run 2 (same config)
# adopts that instance with its use count; run 3 (storage off) removes it
# as pre-existing and deletes what is left; run 4 (a store dir that
# cannot be made) logs an error and runs without storage.
#
# FLEET_PROBE overrides the probe, PLUGIN_BIN the plugin.  Needs root
# (sshd on 127.0.0.N).
set -u
. "${TOP:?TOP must be the repository root}/tests/lib/common.sh"

. "$TOP/tests/lib/fleet.sh"
fleet_harness fleet_restart 10

# config NAME ENABLED [DIR]: capacity 1, no max_use_count, idle_count 1, a long
# idle_time; the same plugin group and state_dir for every run.
config() {
	cat >"$TMP/$1.toml" <<EOF
concurrent = 4
[[runners]]
  name = "fleet-restart"
  url = "http://127.0.0.1:1"
  token = "glrt-fleetrestart1"
  executor = "docker-autoscaler"
  [runners.autoscaler]
    plugin = "$PLUGIN"
    capacity_per_instance = 1
    max_use_count = 0
    max_instances = 2
    instance_ready_command = "true"
    update_interval = "1s"
    update_interval_when_expecting = "200ms"
    shutdown_deletion_interval = "1s"
    [runners.autoscaler.plugin_config]
      name = "fltrs"
      max_size = 2
      state_dir = "$TMP/state"
    [runners.autoscaler.state_storage]
      enabled = $2
      dir = "${3:-$TMP/store}"
    [[runners.autoscaler.policy]]
      idle_count = 1
      idle_time = "10m"
EOF
}
no_sshd() { [ -z "$(tl_pids_under "$1")" ]; }

config on true
config off false
: >"$TMP/afile"
config bad true "$TMP/afile/store"
STORE=$TMP/store/fleetrest/instances.json

# ---- Run 1: one instance, one job on it, stop keeping the instance.
timeout 120 "$PROBE" "$TMP/on.toml" start wait-ready 1 30 acquire 20 \
    release run 2 show stop >"$TMP/1.out" 2>"$TMP/1.log"
rc1=$?
sed 's/^/# 1: /' "$TMP/1.out"
id=$(grep -m1 '^granted' "$TMP/1.out" | cut -d' ' -f2)

# 1
[ $rc1 -eq 0 ] && [ -n "$id" ] && grep -q "^instance $id use 1 " "$TMP/1.out"
check $? "run 1: job on ${id:-?} (use count 1), stopped without deletion, exit $rc1"

# 2
[ -f "$STORE" ] && grep -q "\"id\": *\"$id\"" "$STORE" &&
    grep -q '"use_count": *1' "$STORE" && grep -q '"connect_info"' "$STORE"
check $? "run 1: state file holds ${id:-?} with use_count 1 and its connect_info"

# 3
m=$(stat -c %a "$STORE" 2>/dev/null); d=$(stat -c %a "$(dirname "$STORE")" 2>/dev/null)
[ "$m" = 600 ] && [ "$d" = 700 ]
check $? "state file mode ${m:-?} (want 600), its directory ${d:-?} (want 700)"

# 4
[ -n "$id" ] && [ -n "$(tl_pids_under "$TMP/state/instances/$id/")" ]
check $? "the instance's sshd outlived run 1"

# ---- Run 2: same config: adopted, use count kept.
timeout 120 "$PROBE" "$TMP/on.toml" start wait-ready 1 30 run 3 show stop \
    >"$TMP/2.out" 2>"$TMP/2.log"
rc2=$?
sed 's/^/# 2: /' "$TMP/2.out"

# 5
# (run 1 also made a second idle instance while the job held the first)
k=$(grep -c '^instance ' "$TMP/1.out")
[ $rc2 -eq 0 ] && grep -q "^instance $id use 1 " "$TMP/2.out" &&
    [ "$(grep -c '^instance ' "$TMP/2.out")" -eq "$k" ] &&
    grep -q "msg=\"state storage loaded: $k instances\"" "$TMP/2.log"
check $? "run 2: ${id:-?} adopted from the store with use count 1 (and its $k instances loaded), exit $rc2"

# 6
! grep -q "msg=\"removing instance\" instance=$id " "$TMP/2.log"
check $? "run 2: ${id:-?} not removed (as pre-existing or otherwise)"

# ---- Run 3: storage off: the instance is pre-existing, removed.
timeout 120 "$PROBE" "$TMP/off.toml" start wait-id-gone "$id" 60 \
    wait-ready 1 30 show stop delete >"$TMP/3.out" 2>"$TMP/3.log"
rc3=$?
sed 's/^/# 3: /' "$TMP/3.out"

# 7
[ $rc3 -eq 0 ] && grep -q "^gone $id " "$TMP/3.out" &&
    grep -q "msg=\"removing instance\" instance=$id reason=not_ready" "$TMP/3.log"
check $? "run 3 (storage off): ${id:-?} removed as pre-existing (not_ready), exit $rc3"

# 8
! grep -q "^instance $id " "$TMP/3.out" && grep -q '^stopped' "$TMP/3.out"
check $? "run 3: a new instance instead, stopped with deletion"

# ---- Run 4: a store that cannot be opened: logged, the fleet runs on.
timeout 120 "$PROBE" "$TMP/bad.toml" start wait-ready 1 30 stop delete \
    >"$TMP/4.out" 2>"$TMP/4.log"
rc4=$?
sed 's/^/# 4: /' "$TMP/4.out"

# 9
[ $rc4 -eq 0 ] && grep -q '^ready 1 ' "$TMP/4.out" &&
    grep -q 'level=error msg="state storage unusable; running without it' "$TMP/4.log"
check $? "run 4: state storage dir unusable: error logged, fleet ran without it, exit $rc4"

# 10
tl_wait 15 no_sshd "$TMP/state/"
check $? "no sshd of the test left"
[ $rc1 -eq 0 ] || tl_diag "$TMP/1.log" 40
[ $rc2 -eq 0 ] || tl_diag "$TMP/2.log" 40
[ $rc3 -eq 0 ] || tl_diag "$TMP/3.log" 40
[ $rc4 -eq 0 ] || tl_diag "$TMP/4.log" 40
exit 0
