#!/bin/sh
# simulate_1m: `flotilla simulate` over a trace of 1,000,000 jobs (one
# every 0.5 s, durations 60..600 s from a fixed Park-Miller sequence, so
# every run replays the same trace), against docs/sample-simulate.toml.
# One timed run (the trace takes a while to write); prints
# "simulate_1m: median X ms (1 run; goal: < 10000 ms)".
#
# Run from bench/run.sh (from the build directory, nothing exported):
# the repository root is found from this file's own place, the build
# directory is $BUILD or the current directory.
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd) || exit 2
BUILD=${BUILD:-$(pwd)}
BIN=$BUILD/bin/flotilla
if [ ! -x "$BIN" ]; then
	echo "simulate_1m: $BIN missing: run make" >&2
	exit 1
fi

TMP=$(mktemp -d /tmp/simulate_1m.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP

awk 'BEGIN {
	x = 42
	print "arrival,duration"
	for (i = 0; i < 1000000; i++) {
		x = (x * 16807) % 2147483647
		printf "%.1f,%d\n", i * 0.5, 60 + x % 541
	}
}' >"$TMP/jobs.csv" || exit 1

t0=$(date +%s%N)
"$BIN" simulate -c "$TOP/docs/sample-simulate.toml" --jobs "$TMP/jobs.csv" \
    >"$TMP/out" 2>"$TMP/err"
rc=$?
t1=$(date +%s%N)
if [ $rc -ne 0 ]; then
	echo "simulate_1m: flotilla simulate exited $rc" >&2
	tail -5 "$TMP/err" >&2
	exit 1
fi
sed 's/^/# /' "$TMP/out" | tail -5 >&2
echo "simulate_1m: median $(( (t1 - t0) / 1000000 )) ms (1 run; goal: < 10000 ms)"
