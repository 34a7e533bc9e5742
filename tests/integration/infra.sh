#!/bin/sh
# The test infrastructure itself, end to end, before any test builds on it:
# a private dockerd with a locally made busybox image runs a host-network
# container; two sshd instances on 127.0.0.2 and 127.0.0.3 take key logins;
# the private Docker socket is reached through an SSH unix-socket forward
# (sshd's direct-streamlocal), the way flotilla's connector reaches an
# instance's engine; then everything stops and nothing is left behind: no
# process, mount or cgroup of the test's, and its directory can be removed.
set -u
. "$TOP/tests/lib/dockerd.sh"
. "$TOP/tests/lib/sshd.sh"

TMP=$(mktemp -d)
DK=$TMP/docker
S2=$TMP/ssh2
S3=$TMP/ssh3
mkdir -p "$DK" "$S2" "$S3"
IMG=flotilla-test-busybox
T0=$(date +%s%N)

# Whatever happened, stop what this test started, keep its logs, remove
# its directory.
cleanup() {
	trap - EXIT INT TERM HUP
	[ -d "$TMP" ] || return 0
	sshd_stop "$S2" >/dev/null
	sshd_stop "$S3" >/dev/null
	dockerd_stop "$DK" >/dev/null
	if [ -n "${LOGDIR:-}" ]; then
		mkdir -p "$LOGDIR/infra"
		for f in "$DK"/dockerd.log "$DK"/containerd.log "$S2"/sshd.log \
		    "$S3"/sshd.log "$S2"/forward.log; do
			[ -f "$f" ] && cp "$f" "$LOGDIR/infra/$(basename "$(dirname "$f")")-$(basename "$f")"
		done
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }
# mark NAME: a timing line, milliseconds since the start.
mark() { echo "# $(( ($(date +%s%N) - T0) / 1000000 )) ms: $*"; }

PLAN=17
echo "1..$PLAN"

# Paths of the system's engines that the test must not create or use.
sys_before=$(ls -d /var/run/docker.sock /run/containerd/containerd.sock 2>/dev/null)

dockerd_start "$DK"
rc=$?
check $rc "dockerd starts on its private socket"
if [ $rc -ne 0 ]; then
	# Nothing else can work: fail the rest of the plan at once.
	while [ $n -lt $PLAN ]; do nok "skipped: no dockerd"; done
	exit 1
fi
echo "# storage driver: $DOCKERD_STORAGE_DRIVER; DOCKER_HOST=$DOCKER_HOST"
mark "dockerd up"

docker_test_image "$IMG"
rc=$?
check $rc "docker_test_image builds $IMG with docker import"
[ $rc -ne 0 ] && tl_diag "$DK/dockerd.log"
id1=$("$DOCKER" image inspect -f '{{.Id}}' "$IMG" 2>/dev/null)
docker_test_image "$IMG" &&
    [ "$("$DOCKER" image inspect -f '{{.Id}}' "$IMG" 2>/dev/null)" = "$id1" ]
check $? "docker_test_image is idempotent"
mark "image made"

out=$(timeout 30 "$DOCKER" run --rm --network host "$IMG" sh -c 'echo hi' 2>&1)
[ "$out" = hi ]
rc=$?
check $rc "a --network host container of $IMG runs sh -c 'echo hi'"
[ $rc -ne 0 ] && { echo "# got: $out"; tl_diag "$DK/dockerd.log"; }
mark "container ran"

sshd_start "$S2" 127.0.0.2
rc=$?
check $rc "sshd instance on 127.0.0.2 (port ${SSHD_PORT:-?})"
sshd_start "$S3" 127.0.0.3
rc3=$?
check $rc3 "sshd instance on 127.0.0.3 (port ${SSHD_PORT:-?})"
mark "sshd instances up"

out=$(sshd_ssh "$S2" 'echo ok' </dev/null 2>&1)
rc=$?
[ $rc -eq 0 ] && [ "$out" = ok ]
rc=$?
check $rc "ssh root@127.0.0.2 with the instance's key runs 'echo ok'"
[ $rc -ne 0 ] && { echo "# got: $out"; tl_diag "$S2/sshd.log"; }

# The connection really ends at 127.0.0.3 (not some other sshd).
# shellcheck disable=SC2016
out=$(sshd_ssh "$S3" 'echo "$SSH_CONNECTION"' </dev/null 2>&1)
case "$out" in
*" 127.0.0.3 $(cat "$S3/port" 2>/dev/null)") rc=0 ;;
*) rc=1 ;;
esac
check $rc "ssh root@127.0.0.3 lands on the 127.0.0.3 instance"
[ $rc -ne 0 ] && { echo "# got: $out"; tl_diag "$S3/sshd.log"; }

# Each instance trusts its own client key only.
# shellcheck disable=SC2046
out=$(ssh $(sshd_client_opts "$S3" | sed "s|$S3/id_ed25519|$S2/id_ed25519|") \
    -- "root@127.0.0.3" true </dev/null 2>&1)
rc=$?
[ $rc -eq 255 ]
check $? "127.0.0.3 refuses 127.0.0.2's key (ssh exit $rc)"

# A host-network container reaches an instance on loopback: the banner.
port2=$(cat "$S2/port" 2>/dev/null)
out=$(timeout 20 "$DOCKER" run --rm --network host "$IMG" \
    sh -c "nc -w 3 127.0.0.2 $port2 </dev/null" 2>&1)
case "$out" in SSH-2.0-OpenSSH*) rc=0 ;; *) rc=1 ;; esac
check $rc "a --network host container reaches 127.0.0.2:$port2"
[ $rc -ne 0 ] && echo "# got: $out"
mark "ssh checks done"

# The engine through SSH: a local unix socket forwarded to the private
# Docker socket by the 127.0.0.2 instance.
fwd=$TMP/fwd.sock
sshd_forward "$S2" "$fwd" "$DK/docker.sock"
rc=$?
check $rc "ssh -L forwards $fwd to the Docker socket through 127.0.0.2"
[ $rc -ne 0 ] && tl_diag "$S2/sshd.log"
v1=$("$DOCKER" version -f '{{.Server.Version}}' 2>&1)
v2=$(timeout 20 "$DOCKER" -H "unix://$fwd" version -f '{{.Server.Version}}' 2>&1)
[ -n "$v1" ] && [ "$v1" = "$v2" ]
rc=$?
check $rc "docker version through the SSH forward answers ($v2)"
[ $rc -ne 0 ] && { echo "# direct: $v1"; tl_diag "$S2/sshd.log"; }
# An attached container streams its output back through the tunnel.
out=$(timeout 30 "$DOCKER" -H "unix://$fwd" run --rm --network host "$IMG" \
    sh -c 'echo through-ssh' 2>&1)
[ "$out" = through-ssh ]
rc=$?
check $rc "docker run through the SSH forward streams the output"
[ $rc -ne 0 ] && { echo "# got: $out"; tl_diag "$S2/sshd.log"; tl_diag "$DK/dockerd.log"; }
mark "docker through ssh done"

# Stop everything; nothing of the test's may remain.
sshd_stop "$S2" && sshd_stop "$S3"
check $? "sshd_stop ends both instances and the forward"
mark "sshd stopped"
dockerd_stop "$DK"
check $? "dockerd_stop ends dockerd, containerd and the shims"
mark "dockerd stopped"

left=$(tl_pids_under "$TMP")
mnt=$(tl_mounts_under "$TMP")
cg=$(find /sys/fs/cgroup -maxdepth 2 -name "$(_dockerd_cgroup "$DK")" 2>/dev/null)
sys_after=$(ls -d /var/run/docker.sock /run/containerd/containerd.sock 2>/dev/null)
[ -z "$left" ] && [ -z "$mnt" ] && [ -z "$cg" ] && [ "$sys_before" = "$sys_after" ]
rc=$?
check $rc "no process, mount or cgroup of the test remains; no system socket made"
if [ $rc -ne 0 ]; then
	for p in $left; do echo "# left: pid $p: $(tl_cmdline "$p")"; done
	for m in $mnt $cg; do echo "# left: $m"; done
	echo "# system sockets before: $sys_before; after: $sys_after"
fi

cleanup
[ ! -e "$TMP" ]
check $? "the test directory can be removed"
mark "done"
