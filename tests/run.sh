#!/bin/sh
# flotilla's test driver: runs every kind of test and prints one closing line
# "N passed, N failed".  Every test program speaks TAP (cmocka through
# CMOCKA_MESSAGE_OUTPUT=TAP, the shell tests by hand), so one counter serves
# all.  A program that dies before its plan is complete counts as failed.
#
#   sh tests/run.sh [--build DIR] [--asan DIR] [--only PATTERN] [-v]
set -u

BUILD=build
ASAN=
ONLY=
VERBOSE=0
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift 2 ;;
	--asan) ASAN=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	-v) VERBOSE=1; shift ;;
	*) echo "usage: $0 [--build DIR] [--asan DIR] [--only PATTERN] [-v]" >&2; exit 2 ;;
	esac
done

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$TOP" && cd "$BUILD" && pwd)
[ -n "$ASAN" ] && ASAN=$(cd "$TOP" && cd "$ASAN" && pwd)
LOGDIR="$BUILD/test-logs"
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"
export TOP BUILD LOGDIR
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

passed=0
failed=0
failures=""

# run NAME CMD...: run one TAP-speaking program and add up its results.
run() {
	name=$1; shift
	case "$name" in *$ONLY*) ;; *) return 0 ;; esac
	log="$LOGDIR/$(echo "$name" | tr '/ ' '__').log"
	start=$(date +%s)
	"$@" >"$log" 2>&1
	rc=$?
	end=$(date +%s)
	set -- $(awk '
		/^1\.\.[0-9]+/ { sub(/^1\.\./, ""); plan += $1 }
		/^ok / { ok++ }
		/^not ok / { nok++ }
		END { printf "%d %d %d\n", plan, ok, nok }' "$log")
	plan=$1 ok=$2 nok=$3
	missing=$((plan - ok - nok))
	[ $missing -lt 0 ] && missing=0
	bad=$((nok + missing))
	if [ $rc -ne 0 ] && [ $bad -eq 0 ]; then
		bad=1
	fi
	if [ $((ok + bad)) -eq 0 ]; then
		bad=1	# ran nothing: a test that cannot fail is a failure
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	if [ $bad -ne 0 ]; then
		failures="$failures $name"
		printf 'FAIL %-40s %d ok, %d failed (exit %d, %ss) log: %s\n' \
		    "$name" "$ok" "$bad" "$rc" $((end - start)) "$log"
		grep -E '^not ok|^#|ERROR|Assert|error' "$log" | head -20 | sed 's/^/    /'
	else
		printf 'ok   %-40s %d ok (%ss)\n' "$name" "$ok" $((end - start))
		[ $VERBOSE -eq 1 ] && sed 's/^/    /' "$log"
	fi
	return 0
}

for t in "$BUILD"/tests/unit/test_*; do
	[ -x "$t" ] || continue
	run "unit/$(basename "$t")" "$t"
done
if [ -n "$ASAN" ]; then
	for t in "$ASAN"/tests/unit/test_*; do
		[ -x "$t" ] || continue
		run "asan/$(basename "$t")" "$t"
	done
fi
for t in "$TOP"/tests/integration/*.sh; do
	[ -f "$t" ] || continue
	run "integration/$(basename "$t" .sh)" sh "$t"
done

echo
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
