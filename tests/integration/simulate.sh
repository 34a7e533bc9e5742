#!/bin/sh
# flotilla simulate on cases whose figures can be worked out by hand, the
# docs sample, trace errors, and a 1,000,000-job trace against the clock.
#
# The simulated plugin is polled every update_interval_when_expecting (2s)
# while instances come and go, so with --boot-delay 0 a job that caused an
# Increase starts at the next poll: 0 to 2 s after arriving.
set -u
FL="$BUILD/bin/flotilla"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }

echo "1..28"

# conf FILE AUTOSCALER-LINES: a valid config with one docker-autoscaler runner.
conf() {
	cat >"$1" <<EOF
concurrent = 10
[[runners]]
name = "sim"
url = "https://gitlab.example.com"
token = "glrt-simulated"
executor = "docker-autoscaler"
[runners.autoscaler]
plugin = "local"
$2
EOF
}

# row NAME COLUMN: a figure from the last run's table (columns: period
# jobs started timed_out wait_mean_s wait_p95_s instance_hours
# peak_instances instances_created).
row() { awk -v r="$1" -v c="$2" '$1 == r { print $c }' "$TMP/out"; }
# near A B: |A - B| < 0.0015
near() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d < 0.0015 && d > -0.0015) }'; }

sim() { "$FL" simulate "$@" >"$TMP/out" 2>"$TMP/err"; }

# 1. capacity 1, idle_count 0, idle_time 1m, boot 0; 10 jobs of 10 s, 5
# minutes apart: every job finds the previous instance gone (idle 1m), so
# each causes exactly one creation.  Lives: the first job waits for the
# 2 s poll: 2 + 10 + 60 s; the others start at once: 70 s each.
conf "$TMP/c1.toml" 'capacity_per_instance = 1
[[runners.autoscaler.policy]]
idle_count = 0
idle_time = "1m"'
awk 'BEGIN { for (i = 0; i < 10; i++) print i * 300 ",10" }' >"$TMP/j1.csv"
sim -c "$TMP/c1.toml" --jobs "$TMP/j1.csv" --boot-delay 0
check $? "spaced jobs: simulate runs"
[ "$(row total 2)" = 10 ] && [ "$(row total 3)" = 10 ] && [ "$(row total 4)" = 0 ]
check $? "spaced jobs: 10 jobs, all started, none timed out"
[ "$(row total 9)" = 10 ] && [ "$(row total 8)" = 1 ]
check $? "spaced jobs: one creation per job, never more than one instance"
near "$(row total 7)" "$(awk 'BEGIN { print (72 + 9 * 70) / 3600 }')"
check $? "spaced jobs: instance-hours (72 + 9 x 70 s)"
near "$(row total 5)" 0.2 && near "$(row total 6)" 2
check $? "spaced jobs: mean wait 0.2 s, p95 2 s (one poll for the first)"
[ "$(grep -c '^policy1 ' "$TMP/out")" = 1 ] && [ "$(grep -c '^default ' "$TMP/out")" = 0 ]
check $? "spaced jobs: one policy row and the total"

# 2. jobs 30 s apart (closer than idle_time): one instance serves all;
# it lives from 0 to the last end (580 s) plus 60 s idle.
awk 'BEGIN { for (i = 0; i < 20; i++) print i * 30 ",10" }' >"$TMP/j2.csv"
sim -c "$TMP/c1.toml" --jobs "$TMP/j2.csv" --boot-delay 0
check $? "close jobs: simulate runs"
[ "$(row total 9)" = 1 ] && [ "$(row total 8)" = 1 ] && [ "$(row total 3)" = 20 ]
check $? "close jobs: one instance reused by 20 jobs"
near "$(row total 7)" "$(awk 'BEGIN { print 640 / 3600 }')"
check $? "close jobs: instance-hours 640 s"

# 3. max_use_count 1: every job on a fresh instance, deleted right after.
conf "$TMP/c3.toml" 'capacity_per_instance = 1
max_use_count = 1
[[runners.autoscaler.policy]]
idle_time = "1m"'
sim -c "$TMP/c3.toml" --jobs "$TMP/j2.csv" --boot-delay 0
check $? "max_use_count 1: simulate runs"
[ "$(row total 9)" = 20 ] && [ "$(row total 2)" = 20 ]
check $? "max_use_count 1: creations == jobs"
near "$(row total 7)" "$(awk 'BEGIN { print (20 * 10 + 2) / 3600 }')"
check $? "max_use_count 1: each instance lives only for its job"

# 4. capacity 2, 4 jobs at once, boot 45 s: 2 instances; every job waits
# for the first poll after boot (46 s); lives 46 + 60 + 300 s (default
# idle_time 5m, no policy).
conf "$TMP/c4.toml" 'capacity_per_instance = 2'
printf '0,60\n0,60\n0,60\n0,60\n' >"$TMP/j4.csv"
sim -c "$TMP/c4.toml" --jobs "$TMP/j4.csv" --boot-delay 45s
check $? "boot delay: simulate runs"
[ "$(row total 9)" = 2 ] && [ "$(row total 8)" = 2 ] &&
    near "$(row total 5)" 46 && near "$(row total 6)" 46 &&
    [ "$(grep -c '^default ' "$TMP/out")" = 1 ]
check $? "boot delay: 2 instances, every job waits 46 s, default row"
near "$(row total 7)" "$(awk 'BEGIN { print 2 * (46 + 60 + 300) / 3600 }')"
check $? "boot delay: instance-hours 2 x 406 s"

# 5. rows per policy: idle_count 2 during 01:00-01:59 UTC only.
conf "$TMP/c5.toml" '[[runners.autoscaler.policy]]
timezone = "UTC"
[[runners.autoscaler.policy]]
periods = ["* 1 * * *"]
timezone = "UTC"
idle_count = 2'
printf 'arrival,duration\n# one job in each period\n30m,10s\n1h30m,10\n' >"$TMP/j5.csv"
sim -c "$TMP/c5.toml" --jobs "$TMP/j5.csv" --boot-delay 0
check $? "policies: simulate runs (header, comment, Go durations)"
[ "$(row policy1 2)" = 1 ] && [ "$(row policy2 2)" = 1 ] && [ "$(row total 2)" = 2 ]
check $? "policies: each job counted in its period"
near "$(row policy1 7)" "$(awk 'BEGIN { print 312 / 3600 }')" &&
    near "$(row policy2 5)" 0 && [ "$(row policy2 8)" = 3 ]
check $? "policies: night job 312 s of instance; office job finds a warm slot"

# 6. the docs sample.
sim -c "$TOP/docs/sample-simulate.toml" --jobs "$TOP/docs/sample-jobs.csv"
check $? "docs sample: simulate runs"
jobs=$(grep -cE '^[0-9]' "$TOP/docs/sample-jobs.csv")
[ "$(row total 2)" = "$jobs" ] && [ "$(row total 3)" = "$jobs" ] &&
    [ "$(row total 4)" = 0 ]
check $? "docs sample: all $jobs jobs started"
[ -n "$(row policy1 2)" ] && [ -n "$(row policy2 2)" ] &&
    [ "$(row total 8)" -le 15 ]
check $? "docs sample: both policies in force, max_instances kept"
"$FL" check-config -q -c "$TOP/docs/sample-simulate.toml" 2>"$TMP/err" && [ ! -s "$TMP/err" ]
check $? "docs sample: the config is valid, without warnings"

# 7. errors.
printf 'arrival,duration\n0,10\n10,abc\n-5,10\n20\n' >"$TMP/bad.csv"
sim -c "$TMP/c1.toml" --jobs "$TMP/bad.csv"
[ $? -eq 1 ] &&
    grep -q "^$TMP/bad.csv:3: duration: not seconds or a duration$" "$TMP/err" &&
    grep -q "^$TMP/bad.csv:4: arrival: not seconds or a duration$" "$TMP/err" &&
    grep -q "^$TMP/bad.csv:5: expected arrival,duration$" "$TMP/err"
check $? "bad trace lines reported as FILE:LINE, exit 1"
sim -c "$TMP/c1.toml" --jobs "$TMP/j1.csv" --runner nobody
[ $? -eq 1 ] && grep -q 'no runner named "nobody"' "$TMP/err"
check $? "unknown --runner refused"
sim -c "$TMP/c1.toml"
[ $? -eq 2 ]
check $? "--jobs is required (usage, exit 2)"
sim -c "$TMP/c1.toml" --jobs "$TMP/j1.csv" --boot-delay soon
[ $? -eq 2 ]
check $? "bad --boot-delay refused"

# 8. 1,000,000 jobs (one every 2.6 s on average, 30-600 s long) in under
# 10 s.
awk 'BEGIN { srand(7); t = 0; print "arrival,duration";
	for (i = 0; i < 1000000; i++) { t += -2.6 * log(1 - rand());
		printf "%.3f,%d\n", t, 30 + int(rand() * 571) } }' >"$TMP/big.csv"
conf "$TMP/big.toml" 'capacity_per_instance = 2
max_use_count = 50
[[runners.autoscaler.policy]]
idle_count = 4
idle_time = "10m"'
start=$(date +%s%N)
sim -c "$TMP/big.toml" --jobs "$TMP/big.csv"
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "# 1,000,000 jobs simulated in ${ms} ms"
[ $rc -eq 0 ] && [ "$(row total 3)" = 1000000 ]
check $? "a million jobs: all started"
[ "$ms" -lt 10000 ]
check $? "a million jobs: under 10 s (${ms} ms)"
