#!/bin/sh
# aws_update_200: what one Update of fleeting-plugin-aws costs with 200
# instances in the Auto Scaling group: the HTTP requests it sends (counted
# by the strict fake, tests/fakes/fake_aws.py, which verifies each
# signature) and the time of the round trip through the manager's plugin
# host (tests/group_probe).  The instances have no sshd (Update does not
# log in).  50 Updates after a warm-up one; prints
#   aws_update_200: median X ms p95 Y ms; R HTTP requests per Update (goal: at most 3)
# and exits 1 if a step failed (the goal is reported, not enforced).
#
# Run from bench/run.sh (from the build directory, nothing exported):
# the repository root is found from this file's own place, the build
# directory is $BUILD or the current directory.
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd) || exit 2
BUILD=${BUILD:-$(pwd)}
PLUGIN=$BUILD/bin/fleeting-plugin-aws
PROBE=$BUILD/tests/group_probe
N=50
for f in "$PLUGIN" "$PROBE"; do
	if [ ! -x "$f" ]; then
		echo "aws_update_200: $f missing: run make" >&2
		exit 1
	fi
done
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

TMP=$(mktemp -d /tmp/aws_update.XXXXXX) || exit 1
FAKE_PID=
cleanup() {
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

AKID=AKIABENCH$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
SECRET=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
FAKE_AWS_CREDENTIALS="$AKID:$SECRET" "$PY" "$TOP/tests/fakes/fake_aws.py" \
    --dir "$TMP/fake" --port-file "$TMP/port" --region us-east-1 \
    --group bench-asg --max 1000 --no-sshd >"$TMP/fake.log" 2>&1 &
FAKE_PID=$!
i=0
while [ ! -s "$TMP/port" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ ! -s "$TMP/port" ]; then
	echo "aws_update_200: fake_aws did not start" >&2
	cat "$TMP/fake.log" >&2
	exit 1
fi
E=http://127.0.0.1:$(cat "$TMP/port")
curl -s -X POST -d '{"name": "bench-asg", "desired": 200, "instant": true, "sshd": false}' \
    "$E/__fake/group" >/dev/null || exit 1
echo '{"name": "bench-asg", "region": "us-east-1"}' >"$TMP/config.json"

env -i PATH="$PATH" HOME="$TMP" TMPDIR="$TMP" AWS_ENDPOINT_URL="$E" \
    AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="$TMP/none" \
    AWS_SHARED_CREDENTIALS_FILE="$TMP/none" \
    AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" \
    "$PROBE" -T 60000 -c "$TMP/config.json" "$PLUGIN" start update \
    sh "curl -s -X POST $E/__fake/counts/reset >/dev/null" updates $N \
    sh "curl -s $E/__fake/counts >$TMP/counts.json" stop \
    >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -ne 0 ] || [ ! -s "$TMP/counts.json" ]; then
	echo "aws_update_200: the run failed (exit $rc)" >&2
	tail -5 "$TMP/err" >&2
	exit 1
fi
line=$(grep '^updates ' "$TMP/out")
inst=$(echo "$line" | sed 's/.* instances \([0-9]*\) .*/\1/')
med=$(echo "$line" | sed 's/.* median_us=\([0-9]*\).*/\1/')
p95=$(echo "$line" | sed 's/.* p95_us=\([0-9]*\).*/\1/')
total=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["total"])' "$TMP/counts.json")
if [ "$inst" != 200 ]; then
	echo "aws_update_200: the plugin listed $inst instances, not 200" >&2
	exit 1
fi
awk -v m="$med" -v p="$p95" -v t="$total" -v n=$N 'BEGIN {
	printf "aws_update_200: median %.3f ms p95 %.3f ms; %.2f HTTP requests per Update (goal: at most 3)\n",
	    m / 1000, p / 1000, t / n }'
