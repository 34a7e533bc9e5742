#!/bin/sh
# The manager's memory with 50 running jobs: `flotilla run` with
# concurrent = 50 on two fleeting-plugin-local instances of capacity 25,
# 50 jobs sleeping long enough to all be running at once; the peak
# resident set size (VmHWM) of the flotilla process (the plugin is a
# separate process and not counted) and its RSS while the 50 run.
#
# Usage (from the build directory): sh ../bench/rss.sh
set -u
BUILD=$(pwd)
TOP=$(cd "$BUILD/.." && pwd)
[ -d "$TOP/tests" ] || TOP=$(cd "$(dirname "$0")/.." && pwd)
LOGDIR=${LOGDIR:-$BUILD/bench-logs}
export TOP BUILD LOGDIR
. "$TOP/tests/lib/e2e.sh"
e2e_harness bench-rss 0 >/dev/null

e2e_infra || { echo "rss: no infrastructure" >&2; exit 1; }
E2E_CONCURRENT=50 E2E_CAP=25 E2E_MAX_USE=0 E2E_MAX_INST=2 E2E_IDLE=0 \
    E2E_RANGE=127.0.0.220-127.0.0.230 e2e_config "$TMP/config.toml"
sed -i 's/max_use_count = 0/max_use_count = 0\n    instance_acquire_timeout = "5m"/' "$TMP/config.toml"
e2e_start || { echo "rss: flotilla did not start" >&2; exit 1; }
ids=$(e2e_py submit "$URL" 50 --sleep 40 --name rss)
e2e_py started "$URL" 240 $ids || { echo "rss: not all 50 jobs started" >&2; exit 1; }
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$FL_PID/status")
e2e_py wait "$URL" 240 $ids >/dev/null
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$FL_PID/status")
echo "$rss $hwm" | awk '{ printf "rss_50_jobs: RSS with 50 jobs running %.1f MB, peak %.1f MB (goal < 30 MB)\n", $1 / 1024, $2 / 1024 }'
