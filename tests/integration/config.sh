#!/bin/sh
# flotilla check-config against real files: the seed document's three
# examples accepted verbatim and round-tripped through --dump, and broken
# variants each rejected with the expected FILE:LINE message.  The broken
# files carry their expectation on the first line: "# expect: LINE: text".
set -u
FL="$BUILD/bin/flotilla"
DATA="$TOP/tests/data"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }

seeds="aws gcp azure"
nbroken=$(ls "$DATA"/broken/*.toml | wc -l)
echo "1..$((7 * 3 + 1 + 3 * nbroken + 4))"

# The committed copies are the seed document's examples, byte for byte.
seeddoc="$TOP/../shared/seeds/docker-autoscaler-executor.ja.txt"
if [ -f "$seeddoc" ]; then
	awk -v dir="$TMP" '
	/^concurrent = 10$/ { n++; f = dir "/extract-" n ".toml"; on = 1 }
	on { line = $0
	     if (line ~ /^idle_time = "20m0s"/) { sub(/"20m0s".*/, "\"20m0s\"", line); print line > f; on = 0; next }
	     print line > f }' "$seeddoc"
	cmp -s "$TMP/extract-1.toml" "$DATA/seed-aws.toml" &&
	cmp -s "$TMP/extract-2.toml" "$DATA/seed-gcp.toml" &&
	cmp -s "$TMP/extract-3.toml" "$DATA/seed-azure.toml"
	check $? "tests/data/seed-*.toml are the seed document's examples verbatim"
else
	ok "# SKIP seed document not found"
fi

for s in $seeds; do
	f="$DATA/seed-$s.toml"
	"$FL" check-config -c "$f" >"$TMP/out" 2>"$TMP/err"
	check $? "seed $s: check-config accepts it"
	[ ! -s "$TMP/err" ]
	check $? "seed $s: no warnings"
	"$FL" check-config -c "$f" --dump --show-secrets >"$TMP/dump1.toml" 2>"$TMP/err"
	check $? "seed $s: --dump"
	"$FL" check-config -c "$TMP/dump1.toml" --dump --show-secrets >"$TMP/dump2.toml" 2>"$TMP/err"
	check $? "seed $s: the dump is a valid config"
	tail -n +2 "$TMP/dump1.toml" >"$TMP/body1"
	tail -n +2 "$TMP/dump2.toml" >"$TMP/body2"
	cmp -s "$TMP/body1" "$TMP/body2"
	check $? "seed $s: the dump round-trips"
	grep -q '^token = "<token>"$' "$TMP/dump1.toml" &&
	grep -q '^capacity_per_instance = 1$' "$TMP/dump1.toml" &&
	grep -q '^idle_time = "20m0s"$' "$TMP/dump1.toml" &&
	grep -q '^instance_acquire_timeout = "15m0s"$' "$TMP/dump1.toml"
	check $? "seed $s: the dump has the file's values and the defaults"
	"$FL" check-config -c "$f" --dump >"$TMP/masked.toml" 2>&1
	! grep -q '<token>' "$TMP/masked.toml" && ! grep -q 'my-scale-set-static-password' "$TMP/masked.toml"
	check $? "seed $s: a dump without --show-secrets masks the token and password"
done

for f in "$DATA"/broken/*.toml; do
	name=$(basename "$f" .toml)
	expect=$(sed -n '1s/^# expect: //p' "$f")
	"$FL" check-config -c "$f" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ $rc -eq 1 ]
	check $? "broken $name: exit status 1 (got $rc)"
	grep -qF "$f:$expect" "$TMP/err"
	check $? "broken $name: says '$f:$expect'"
	! grep -q 'secret-token-value' "$TMP/err" "$TMP/out"
	check $? "broken $name: the token is not printed"
	grep -qF "$f:$expect" "$TMP/err" || sed 's/^/# /' "$TMP/err"
done

# An unknown key is a warning with FILE:LINE, and the file is still valid.
printf 'concurrent = 1\nfrobnicate = true\n' >"$TMP/unknown.toml"
"$FL" check-config -c "$TMP/unknown.toml" >"$TMP/out" 2>"$TMP/err"
check $? "unknown key: still valid"
grep -qF "$TMP/unknown.toml:2: warning: unknown key 'frobnicate'" "$TMP/err"
check $? "unknown key: warned with FILE:LINE"

# A missing file is a clear error.
"$FL" check-config -c "$TMP/nope.toml" >"$TMP/out" 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "nope.toml: cannot open" "$TMP/err"
check $? "missing file: clear error"

# CONFIG_FILE is honoured, as GitLab Runner's.
CONFIG_FILE="$DATA/seed-aws.toml" "$FL" check-config >"$TMP/out" 2>&1
check $? "CONFIG_FILE selects the file"
