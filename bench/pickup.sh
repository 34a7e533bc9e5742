#!/bin/sh
# Job pickup latency of `flotilla run` on a warm idle instance: from the
# moment a job is queued in the fake GitLab to the first line of its
# script running (the script prints /proc/uptime: one clock for the host
# and its containers), median and 95th percentile over N jobs, one at a
# time.  The floor, measured in the same run on the same engine: the same
# container created, attached and started directly on the local Docker
# socket (bench/pickup_floor.py: the helper container started twice, then
# the build container, as the executor does for a job without sources).
#
# Usage (from the build directory, as bench/run.sh does): sh ../bench/pickup.sh [N]
set -u
N=${1:-15}
BUILD=$(pwd)
TOP=$(cd "$BUILD/.." && pwd)
[ -d "$TOP/tests" ] || TOP=$(cd "$(dirname "$0")/.." && pwd)
LOGDIR=${LOGDIR:-$BUILD/bench-logs}
export TOP BUILD LOGDIR
. "$TOP/tests/lib/e2e.sh"
e2e_harness bench-pickup 0 >/dev/null

E2E_FAKE_ARGS="--hold 50"	# Workhorse-style long polling
e2e_infra || { echo "pickup: no infrastructure" >&2; exit 1; }
E2E_CAP=2 E2E_MAX_USE=0 E2E_MAX_INST=1 E2E_IDLE=1 \
    E2E_IDLE_TIME=10m E2E_RANGE=127.0.0.200-127.0.0.210 \
    e2e_config "$TMP/config.toml"
e2e_start || { echo "pickup: flotilla did not start" >&2; exit 1; }
# Warm: one job end to end (images loaded, instance up, connection open).
ids=$(e2e_py submit "$URL" 1 --sleep 0 --name warm)
e2e_py wait "$URL" 180 $ids >/dev/null || { echo "pickup: warm-up job failed" >&2; exit 1; }
sleep 2

up() { cut -d' ' -f1 /proc/uptime; }
: >"$TMP/lat"
i=0
while [ $i -lt "$N" ]; do
	set -- $(e2e_py submit "$URL" 1 --sleep 0 --name pick --t0)
	ids=$1 t0=$2
	e2e_py started "$URL" 60 $ids || { echo "pickup: job $ids did not start" >&2; exit 1; }
	s=$(curl -fsS "$URL/__fake/jobs/$ids/trace" | grep -ao 'START [0-9][0-9.]*' | head -1 | cut -d' ' -f2)
	echo "$t0 $s" | awk '{ printf "%.1f\n", ($2 - $1) * 1000 }' >>"$TMP/lat"
	e2e_py wait "$URL" 60 $ids >/dev/null
	i=$((i + 1))
done

: >"$TMP/floor"
helper_ref=$("$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep flotilla-helper | head -1)
/usr/bin/python3 "$TOP/bench/pickup_floor.py" "$TMP/docker/docker.sock" \
    "$helper_ref" flotilla-test-busybox "$N" >"$TMP/floor" || {
	echo "pickup: the floor could not be measured" >&2; exit 1; }

stats() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.95 + 0.999)];
		printf "%s %s\n", m, p }'
}
set -- $(stats "$TMP/lat")
lm=$1 lp=$2
set -- $(stats "$TMP/floor")
fm=$1 fp=$2
ratio=$(echo "$lm $fm" | awk '{ printf "%.2f", $1 / $2 }')
echo "pickup_latency: median $lm ms p95 $lp ms; floor (the same containers on the local socket) median $fm ms p95 $fp ms; ratio $ratio (goal <= 1.5)"
