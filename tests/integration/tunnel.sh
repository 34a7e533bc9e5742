#!/bin/sh
# Docker over SSH (manager/tunnel.c): the Docker client dialling through
# the connector to a private dockerd behind a real sshd, driven by
# build/tests/tunnel_probe.  Ping and version; a container's 50 MB of output
# arriving whole; a reader that stops for 2 s without memory growing (the
# SSH window holds the container back); stdin fed to cat and half-closed,
# cat exiting; a wrong socket path failing cleanly; 20 concurrent requests
# five times over one SSH connection; the same through "docker system
# dial-stdio".  The probe comes from $BUILD (run by hand with
# BUILD=$TOP/build/asan for the sanitizer build).
set -u
. "$TOP/tests/lib/dockerd.sh"
. "$TOP/tests/lib/sshd.sh"

PROBE=$BUILD/tests/tunnel_probe
TMP=$(mktemp -d /tmp/fltun.XXXXXX)
DK=$TMP/dk
A=$TMP/a
mkdir -p "$DK" "$A"
IMG=flotilla-test-busybox

cleanup() {
	trap - EXIT INT TERM HUP
	[ -d "$TMP" ] || return 0
	sshd_stop "$A" >/dev/null
	dockerd_stop "$DK" >/dev/null
	if [ -n "${LOGDIR:-}" ]; then
		mkdir -p "$LOGDIR/tunnel"
		cp "$A/sshd.log" "$DK/dockerd.log" "$TMP"/out.* \
		    "$LOGDIR/tunnel/" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
t() {
	_name=$1; shift
	if "$@"; then ok "$_name"; else nok "$_name"; sed 's/^/#   /' "$TMP/out"; fi
}
step=0
# probe ARGS...: the probe through the SSH tunnel, output in $TMP/out.
probe() {
	step=$((step + 1))
	timeout 180 "$PROBE" -a 127.0.0.31 -p "$(cat "$A/port")" \
	    -k "$A/id_ed25519" "$@" >"$TMP/out" 2>&1
	_rc=$?
	cp "$TMP/out" "$TMP/out.$step"
	return $_rc
}
has() { grep -qxF -- "$1" "$TMP/out"; }
val() { sed -n "s/^$1=//p" "$TMP/out" | head -1; }

PLAN=15
echo "1..$PLAN"
if [ ! -x "$PROBE" ]; then
	while [ $n -lt $PLAN ]; do nok "no $PROBE"; done
	exit 1
fi

dockerd_start "$DK" >/dev/null
rc=$?
sshd_start "$A" 127.0.0.31 >/dev/null
rc2=$?
if [ $rc -ne 0 ] || [ $rc2 -ne 0 ]; then
	while [ $n -lt $PLAN ]; do nok "no dockerd ($rc) or sshd ($rc2)"; done
	exit 1
fi
ok "private dockerd and an sshd on 127.0.0.31"
S=$DK/docker.sock
docker_test_image "$IMG" >/dev/null
t "test image $IMG" [ $? -eq 0 ]

probe -s "$S" ping
rc=$?
t "ping (API negotiated) and GET /version through the tunnel" \
    sh -c "[ $rc -eq 0 ] && grep -q '^api=1\.' '$TMP/out' && grep -qx version_ok=1 '$TMP/out'"

probe -s "$S" output "$IMG" 50000000
rc=$?
t "50 MB of container output arrive whole (attach, start, wait, remove)" \
    sh -c "[ $rc -eq 0 ] && grep -qx bytes=50000000 '$TMP/out' && grep -qx bad=0 '$TMP/out' && grep -qx exit=0 '$TMP/out' && grep -qx removed=1 '$TMP/out'"
echo "# output through the tunnel: $(val MBps) MB/s, max RSS $(val maxrss_kb) kB"

probe -s "$S" slow "$IMG" 100000000
rc=$?
growth=$(val rss_growth_kb)
# The SSH window (4 MB), the socket's input cap and the two high-water
# marks; ASan's allocator keeps freed memory in quarantine.
limit=16384
case "$BUILD" in *asan*) limit=65536 ;; esac
t "a reader paused for 2 s: memory held stays bounded (${growth:-?} kB < $limit), then all 100 MB" \
    sh -c "[ $rc -eq 0 ] && [ -n '$growth' ] && [ '$growth' -lt $limit ]"

probe -s "$S" stdin "$IMG" 13
rc=$?
t "stdin through the tunnel, half-closed: cat echoes it and exits 0" \
    sh -c "[ $rc -eq 0 ] && grep -qx same=1 '$TMP/out' && grep -qx exit=0 '$TMP/out'"

probe -s "$S" stdin "$IMG" 8000000
rc=$?
t "8 MB both ways through cat (stdin, then EOF)" \
    sh -c "[ $rc -eq 0 ] && grep -qx same=1 '$TMP/out' && grep -qx exit=0 '$TMP/out'"

probe -s "$TMP/no/such.sock" badpath
rc=$?
t "a wrong socket path: a clean error, the connector's reason kept" \
    sh -c "[ $rc -eq 0 ] && grep -qx failed_cleanly=1 '$TMP/out' && grep -q '^tunnel_error=.*Channel open failure' '$TMP/out'"

probe -s "$S" many 20 5
rc=$?
t "20 concurrent requests, five rounds, over one SSH connection" \
    sh -c "[ $rc -eq 0 ] && grep -qx 'good=100 of 100' '$TMP/out'"
echo "# $(grep '^dials=' "$TMP/out") channels for 100 requests"

# Connections the sshd saw: one per probe run so far, never one per request.
conns=$(grep -c 'Accepted publickey' "$A/sshd.log")
t "one SSH connection per probe run ($conns for $step runs)" [ "$conns" -eq "$step" ]

# The dial-stdio fallback: the docker CLI on the instance.
if "$DOCKER" system dial-stdio --help >/dev/null 2>&1; then
	probe -x -s "$S" ping
	rc=$?
	t "dial-stdio: ping and version" \
	    sh -c "[ $rc -eq 0 ] && grep -q '^api=1\.' '$TMP/out'"
	probe -x -s "$S" output "$IMG" 20000000
	rc=$?
	t "dial-stdio: 20 MB of output arrive whole" \
	    sh -c "[ $rc -eq 0 ] && grep -qx bytes=20000000 '$TMP/out' && grep -qx bad=0 '$TMP/out'"
	probe -x -s "$S" stdin "$IMG" 1000000
	rc=$?
	t "dial-stdio: stdin half-close reaches cat" \
	    sh -c "[ $rc -eq 0 ] && grep -qx same=1 '$TMP/out' && grep -qx exit=0 '$TMP/out'"
	probe -x -s "$S" many 10 2
	rc=$?
	t "dial-stdio: 10 concurrent requests twice" \
	    sh -c "[ $rc -eq 0 ] && grep -qx 'good=20 of 20' '$TMP/out'"
else
	for i in 1 2 3 4; do ok "# SKIP no docker CLI with dial-stdio"; done
fi

# Nothing left behind by the probes.
left=$("$DOCKER" ps -aq --filter label=flotilla.test=tunnel_probe | wc -l)
t "no container left ($left)" [ "$left" -eq 0 ]
