#!/bin/sh
# TOML conformance: every toml-test case that applies to TOML 1.0.0 run
# through build/tests/toml-decoder.  Valid cases must decode to the expected
# tagged JSON (compared structurally by toml_compare.py, which also runs
# the decoder, one process per case), invalid ones must be rejected with
# exit 1 and a LINE:COL: message.  One TAP line per case.
set -u
SUITE="$TOP/../shared/toml-test/tests"
DECODER="$BUILD/tests/toml-decoder"
if [ ! -f "$SUITE/files-toml-1.0.0" ]; then
	echo "1..0 # SKIP no toml-test"
	exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
	echo "1..0 # SKIP no python3"
	exit 0
fi
if [ ! -x "$DECODER" ]; then
	echo "1..1"
	echo "not ok 1 - $DECODER not built"
	exit 1
fi
exec python3 "$TOP/tests/integration/toml_compare.py" "$DECODER" "$SUITE" \
    "$SUITE/files-toml-1.0.0"
