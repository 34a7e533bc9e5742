#!/bin/sh
# flotilla run against a GitLab on HTTPS with a private CA, trusted the way
# GitLab Runner's operators do it: the CA in certs/<host>.crt beside
# config.toml, no tls-ca-file in the file.  The daemon polls, traces and
# finishes jobs over TLS; each job gets the CA as the file variable
# CI_SERVER_TLS_CA_FILE; get_sources points git at it for the host; the
# helper uploads artifacts over TLS trusting it.  A CA the manager does not
# know leaves jobs untouched in the queue.
set -u
. "$TOP/tests/lib/e2e.sh"
e2e_harness run_tls 8

T=$TMP/pki
mkdir -p "$T" "$TMP/certs"
tl_make_pki "$T"
check $? "a private CA and a certificate for 127.0.0.1 (openssl)"

E2E_FAKE_ARGS="--tls-cert $T/srv.pem --tls-key $T/srv.key"
e2e_infra
rc=$?
URL=https://${URL#http://}
# Our own clients (e2e.py, curl) trust the CA through OpenSSL's variable.
SSL_CERT_FILE=$T/ca.pem
export SSL_CERT_FILE
[ $rc -eq 0 ] && curl -fsS --cacert "$T/ca.pem" -o /dev/null "$URL/__fake/violations"
check $? "a Docker engine, the test image and the fake GitLab on HTTPS"

E2E_CAP=2 E2E_MAX_USE=10 E2E_MAX_INST=1 E2E_IDLE=0
e2e_config "$TMP/config.toml"
# The daemon never sees SSL_CERT_FILE: it trusts certs/ and nothing else.
fl_start() {
	env -u SSL_CERT_FILE "$BUILD/bin/flotilla" --log-level info run \
	    -c "$TMP/config.toml" --helper-image-tar "$HELPER_TAR" \
	    >>"$TMP/flotilla.log" 2>&1 &
	FL_PID=$!
}
fl_start
ids=$(e2e_py submit "$URL" 1 --name untrusted)
sleep 6
[ "$(e2e_py state "$URL" $ids | cut -d' ' -f1)" = queued ] &&
    grep -q "certificate" "$TMP/flotilla.log"
check $? "without certs/127.0.0.1.crt the certificate is refused and the job stays queued"
e2e_stop

cp "$T/ca.pem" "$TMP/certs/127.0.0.1.crt"
fl_start
grep_log() { grep -q "$1" "$TMP/flotilla.log"; }
tl_wait 20 grep_log "using $TMP/certs/127.0.0.1.crt"
check $? "certs/127.0.0.1.crt beside config.toml is found"

sum=$(sha256sum <"$T/ca.pem" | cut -d' ' -f1)
more=$(e2e_py submit "$URL" 2 --name tls --artifact out.txt \
    --script 'head -n 1 "$CI_SERVER_TLS_CA_FILE"' \
    --script 'sha256sum "$CI_SERVER_TLS_CA_FILE"' \
    --script 'echo artifact-$CI_JOB_ID > out.txt')
e2e_jobs_ok 10 2 "every job succeeded over TLS, its trace intact" $ids $more

bad_a= bad_t=
for id in $more; do
	curl -fsS --cacert "$T/ca.pem" "$URL/__fake/jobs/$id" | /usr/bin/python3 -c '
import json, sys
sys.exit(0 if json.load(sys.stdin).get("artifacts") else 1)' || bad_a=1
	curl -fsS --cacert "$T/ca.pem" "$URL/__fake/jobs/$id/trace" >"$TMP/trace-$id.txt"
	grep -q -- "-----BEGIN CERTIFICATE-----" "$TMP/trace-$id.txt" &&
	    grep -q "$sum" "$TMP/trace-$id.txt" || bad_t=1
done
[ -z "$bad_a" ]
check $? "the helper uploaded each job's artifacts over TLS"
[ -z "$bad_t" ]
check $? "each job found the CA in CI_SERVER_TLS_CA_FILE, byte for byte"
