#!/bin/sh
# flotilla's benchmarks: `make bench` runs `sh bench/run.sh --build DIR`.
#
# Each benchmark is one line of the list below:
#
#   NAME|COMMAND|BASELINE|WHAT THE BASELINE IS
#
# COMMAND and BASELINE are run from the build directory.  COMMAND prints
# its result lines ("NAME: median X ms p95 Y ms (goal: ...)"), which are
# shown as they are.  BASELINE (optional) measures the same work without
# the code under test, in the same run on the same machine; its median is
# printed next to the command's, with the ratio, so a number can be judged
# on a slow or a fast machine alike.  Each program must print "median X ms"
# or "median_us=X" on the line it prints.
#
# Add a benchmark by adding a line.  Exit status: 0 if every benchmark ran,
# 1 otherwise.
set -u

BUILD=build
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR]" >&2; exit 2 ;;
	esac
done
BUILD=$(cd "$BUILD" && pwd) || exit 2

BENCHES='
update_1000|tests/bench_update -n 500 -i 1000|tests/rpc_bench -f -n 500 -i 1000|a blocking lib/rpc Update, no plugin host
scaler_decide_10000|tests/scaler_bench||
state_save_1000|tests/state_bench 1000 51||
simulate_1m|sh ../bench/simulate_1m.sh||
tunnel_output_200mb|sh ../bench/tunnel.sh output||
tunnel_ping_rtt|sh ../bench/tunnel.sh rtt||
mask_200mb|tests/mask_bench 200 3||
pickup_latency|sh ../bench/pickup.sh||
rss_50_jobs|sh ../bench/rss.sh||
aws_update_200|sh ../bench/aws_update.sh||
'

# median_ms LINE: the median of a result line, in milliseconds.
median_ms() {
	echo "$1" | awk '{
		for (i = 1; i <= NF; i++) {
			if ($i == "median") { print $(i + 1); exit }
			if ($i ~ /^median_us=/) { sub(/median_us=/, "", $i); print $i / 1000; exit }
		}
	}'
}

failed=0
echo "$BENCHES" | while IFS='|' read -r name cmd base what; do
	[ -n "$name" ] || continue
	out=$(cd "$BUILD" && $cmd 2>"$BUILD/bench-$name.err")
	if [ $? -ne 0 ] || [ -z "$out" ]; then
		echo "$name: FAILED (see $BUILD/bench-$name.err)"
		tail -5 "$BUILD/bench-$name.err" | sed 's/^/    /'
		echo 1 >"$BUILD/bench-failed"
		continue
	fi
	echo "$out"
	[ -n "$base" ] || continue
	bout=$(cd "$BUILD" && $base 2>/dev/null | tail -1)
	m=$(median_ms "$out")
	b=$(median_ms "$bout")
	if [ -n "$m" ] && [ -n "$b" ]; then
		awk -v n="$name" -v m="$m" -v b="$b" -v w="$what" 'BEGIN {
			printf "%s: baseline (%s) median %.3f ms; ratio %.2f\n",
			    n, w, b, (b > 0 ? m / b : 0) }'
	else
		echo "$name: baseline did not run"
	fi
done
if [ -f "$BUILD/bench-failed" ]; then
	rm -f "$BUILD/bench-failed"
	failed=1
fi
exit $failed
