# A private Docker engine for integration tests: Debian's dockerd with its
# own containerd, data root, exec root, pidfile, socket and cgroup parent,
# all under one directory, so it never fights another engine on the
# machine and can be stopped and deleted without touching anything else.
# No bridge, no iptables, no userland proxy: job containers use the host's
# network (network_mode = "host"), and there is no registry, so test images
# are made locally with docker_test_image (a test that needs pulls serves
# them from a local docker-registry set as the engine's mirror through
# DOCKERD_JSON_EXTRA: tests/integration/run_aws.sh).
#
# POSIX sh; needs TOP (the repository root).  Source it:
#   . "$TOP/tests/lib/dockerd.sh"
#   dir=$(mktemp -d)
#   dockerd_start "$dir" || exit 1     # exports DOCKER_HOST, DOCKER, ...
#   docker_test_image fl-busybox
#   "$DOCKER" run --rm --network host fl-busybox sh -c 'echo hi'
#   dockerd_stop "$dir"; rm -rf "$dir"
#
# Layout of DIR: docker.sock, dockerd.pid, dockerd.log, daemon.json, key.json,
# containerd.sock, containerd.pid, containerd.log, containerd.toml,
# containerd/ (its root and state), data/ (data root), exec/ (exec root),
# docker-config/ (an empty client config), storage-driver.  DIR must be
# short (unix socket paths are limited to 107 bytes: mktemp -d is fine) and
# free of spaces.

. "${TOP:?TOP must be the repository root}/tests/lib/common.sh"

DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
CONTAINERD=${CONTAINERD:-/usr/bin/containerd}
# The client that comes with the engine, not another one earlier on PATH.
if [ -z "${DOCKER:-}" ]; then
	if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER

# dockerd_start DIR: start containerd and dockerd under DIR and wait (60 s
# at most) until the engine answers.  Exports DOCKER_HOST (its socket),
# DOCKER_CONFIG (an empty client config, so no user setting leaks into
# containers) and DOCKERD_STORAGE_DRIVER.  The storage driver is overlay2
# when an overlay mount works in DIR, else vfs (slower, but works on any
# filesystem); DOCKERD_STORAGE_DRIVER set by the caller forces one.  On
# failure it stops what it started, prints the logs' tails as TAP comments
# and returns 1.
dockerd_start() {
	_ds_dir=$(cd "$1" && pwd) || return 1
	case "$_ds_dir" in *' '*) echo "# dockerd_start: no spaces in $_ds_dir" >&2; return 1 ;; esac
	if [ ${#_ds_dir} -gt 80 ]; then
		echo "# dockerd_start: $_ds_dir is too long for unix sockets" >&2
		return 1
	fi
	mkdir -p "$_ds_dir/containerd" "$_ds_dir/data" "$_ds_dir/exec" \
	    "$_ds_dir/docker-config" || return 1

	_ds_driver=${DOCKERD_STORAGE_DRIVER:-}
	[ -n "$_ds_driver" ] || _ds_driver=$(_dockerd_probe_overlay "$_ds_dir")

	_dockerd_start_containerd "$_ds_dir" || {
		tl_diag "$_ds_dir/containerd.log"
		dockerd_stop "$_ds_dir"
		return 1
	}
	if ! _dockerd_start_engine "$_ds_dir" "$_ds_driver"; then
		if [ "$_ds_driver" = vfs ] || [ -n "${DOCKERD_STORAGE_DRIVER:-}" ]; then
			tl_diag "$_ds_dir/dockerd.log"
			dockerd_stop "$_ds_dir"
			return 1
		fi
		echo "# dockerd did not start with $_ds_driver: trying vfs" >&2
		tl_diag "$_ds_dir/dockerd.log" 10 >&2
		_dockerd_stop_engine "$_ds_dir"
		_ds_driver=vfs
		_dockerd_start_engine "$_ds_dir" vfs || {
			tl_diag "$_ds_dir/dockerd.log"
			dockerd_stop "$_ds_dir"
			return 1
		}
	fi
	echo "$_ds_driver" >"$_ds_dir/storage-driver"
	DOCKERD_STORAGE_DRIVER=$_ds_driver
	DOCKER_HOST=unix://$_ds_dir/docker.sock
	DOCKER_CONFIG=$_ds_dir/docker-config
	export DOCKER_HOST DOCKER_CONFIG DOCKERD_STORAGE_DRIVER
	return 0
}

# _dockerd_probe_overlay DIR: print overlay2 if an overlay filesystem can
# be mounted with its upper layer in DIR, vfs otherwise.
_dockerd_probe_overlay() {
	_dp=$1/overlay-probe
	mkdir -p "$_dp/lower" "$_dp/upper" "$_dp/work" "$_dp/merged"
	if mount -t overlay overlay \
	    -o "lowerdir=$_dp/lower,upperdir=$_dp/upper,workdir=$_dp/work" \
	    "$_dp/merged" 2>/dev/null; then
		umount "$_dp/merged"
		echo overlay2
	else
		echo vfs
	fi
	rm -rf "$_dp"
}

# _dockerd_start_containerd DIR: a containerd of our own (dockerd would
# otherwise use the system's when /run/containerd/containerd.sock exists).
_dockerd_start_containerd() {
	cat >"$1/containerd.toml" <<EOF
version = 2
root = "$1/containerd/root"
state = "$1/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$1/containerd.sock"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$1/containerd/opt"
EOF
	"$CONTAINERD" --config "$1/containerd.toml" \
	    </dev/null >"$1/containerd.log" 2>&1 &
	_dsc_pid=$!
	echo $_dsc_pid >"$1/containerd.pid"
	tl_wait 20 _dockerd_sock_up "$1/containerd.sock" $_dsc_pid &&
	    tl_alive $_dsc_pid && [ -S "$1/containerd.sock" ]
}

# _dockerd_sock_up SOCKET PID: SOCKET exists while PID lives (and if PID
# died, stop waiting: fail loudly rather than wait for nothing).
_dockerd_sock_up() {
	tl_alive "$2" || return 0
	[ -S "$1" ]
}

# _dockerd_start_engine DIR DRIVER: start dockerd and wait for it to answer.
_dockerd_start_engine() {
	_de_ip6=
	"$DOCKERD" --help 2>&1 | grep -q -- '--ip6tables' && _de_ip6=--ip6tables=false
	# Our own config file (not /etc/docker/daemon.json); it moves the
	# engine's trust key from /etc/docker/key.json into DIR.
	# DOCKERD_JSON_EXTRA: more members for it, such as
	# '"registry-mirrors": ["http://127.0.0.1:5000"]'.
	printf '{"deprecated-key-path": "%s"%s}\n' "$1/key.json" \
	    "${DOCKERD_JSON_EXTRA:+, $DOCKERD_JSON_EXTRA}" >"$1/daemon.json"
	# Containers go in a cgroup of this directory's own, so leftovers of
	# a dockerd that had to be killed can be found and ended.
	_de_cg=$(_dockerd_cgroup "$1")
	rm -f "$1/dockerd.pid"
	# shellcheck disable=SC2086
	"$DOCKERD" --config-file "$1/daemon.json" \
	    --data-root "$1/data" --exec-root "$1/exec" \
	    --pidfile "$1/dockerd.pid" -H "unix://$1/docker.sock" \
	    --containerd "$1/containerd.sock" \
	    --storage-driver "$2" --cgroup-parent "/$_de_cg" \
	    --bridge=none --iptables=false $_de_ip6 --ip-masq=false \
	    --userland-proxy=false --shutdown-timeout 3 --log-level info \
	    </dev/null >"$1/dockerd.log" 2>&1 &
	_de_pid=$!
	echo $_de_pid >"$1/dockerd.launched"
	tl_wait 60 _dockerd_answers "$1" $_de_pid && tl_alive $_de_pid
}

# _dockerd_answers DIR PID: the engine answers, or PID died (see above).
_dockerd_answers() {
	tl_alive "$2" || return 0
	[ -S "$1/docker.sock" ] || return 1
	DOCKER_CONFIG=$1/docker-config timeout 5 "$DOCKER" \
	    -H "unix://$1/docker.sock" version >/dev/null 2>&1
}

# _dockerd_cgroup DIR: the name of DIR's cgroup parent.
_dockerd_cgroup() {
	echo "flotilla-test-$(printf %s "$1" | cksum | cut -d' ' -f1)"
}

# _dockerd_pid DIR NAME: the pid of DIR's NAME (dockerd, containerd) if it
# is alive and its command line shows DIR.  dockerd's pidfile first, then
# the pid recorded when it was launched (its pidfile may not be written
# yet, or already removed).
_dockerd_pid() {
	for _dpf in "$1/$2.pid" "$1/$2.launched"; do
		[ -r "$_dpf" ] || continue
		_dpp=$(cat "$_dpf" 2>/dev/null)
		if tl_owned "$_dpp" "$1"; then
			echo "$_dpp"
			return 0
		fi
	done
	return 1
}

# _dockerd_stop_engine DIR: end dockerd (SIGTERM, SIGKILL after 10 s).
_dockerd_stop_engine() {
	_dse_pid=$(_dockerd_pid "$1" dockerd) || return 0
	tl_stop 10 "$_dse_pid"
}

# dockerd_stop DIR: stop DIR's engine and everything it left: containers
# (removed first, with SIGKILL: a test's container has nothing to save),
# dockerd, containerd, containerd's shims, the processes still in DIR's
# cgroup, the mounts under DIR.  Afterwards DIR can be deleted.  Touches
# nothing that is not DIR's.  Returns 1 (with a TAP comment) if a process
# or a mount survives.
dockerd_stop() {
	_dst_dir=$(cd "$1" 2>/dev/null && pwd) || return 0
	_dst_rc=0
	if _dockerd_pid "$_dst_dir" dockerd >/dev/null; then
		_dst_ids=$(DOCKER_CONFIG=$_dst_dir/docker-config timeout 10 \
		    "$DOCKER" -H "unix://$_dst_dir/docker.sock" ps -aq 2>/dev/null)
		# shellcheck disable=SC2086
		[ -n "$_dst_ids" ] && DOCKER_CONFIG=$_dst_dir/docker-config \
		    timeout 20 "$DOCKER" -H "unix://$_dst_dir/docker.sock" \
		    rm -f $_dst_ids >/dev/null 2>&1
	fi
	_dockerd_stop_engine "$_dst_dir" || _dst_rc=1
	if _dst_pid=$(_dockerd_pid "$_dst_dir" containerd); then
		tl_stop 10 "$_dst_pid" || _dst_rc=1
	fi
	# Containers left running by an engine that had to be killed, then
	# the shims (their argv holds containerd's socket path) and whatever
	# else still runs with DIR in its command line.
	_dockerd_cgroup_clean "$(_dockerd_cgroup "$_dst_dir")" || _dst_rc=1
	# shellcheck disable=SC2046
	tl_stop 5 $(tl_pids_under "$_dst_dir") || _dst_rc=1
	tl_umount_under "$_dst_dir" || _dst_rc=1
	rm -f "$_dst_dir/docker.sock" "$_dst_dir/containerd.sock" \
	    "$_dst_dir/containerd.sock.ttrpc"
	if [ $_dst_rc -ne 0 ]; then
		echo "# dockerd_stop: leftovers under $_dst_dir:"
		for _dst_p in $(tl_pids_under "$_dst_dir"); do
			echo "#   pid $_dst_p: $(tl_cmdline "$_dst_p")"
		done
		tl_mounts_under "$_dst_dir" | sed 's/^/#   mount /'
	fi
	return $_dst_rc
}

# _dockerd_cgroup_clean NAME: SIGKILL what is left in cgroup NAME (in every
# hierarchy, v1 or v2: a container's processes, which have nothing to save)
# and remove the cgroup, innermost first.
_dockerd_cgroup_clean() {
	_dcc_dirs=$(find /sys/fs/cgroup -maxdepth 2 -type d -name "$1" 2>/dev/null)
	[ -n "$_dcc_dirs" ] || return 0
	# shellcheck disable=SC2086
	_dcc_pids=$(find $_dcc_dirs -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
	if [ -n "$_dcc_pids" ]; then
		# shellcheck disable=SC2086
		kill -KILL $_dcc_pids 2>/dev/null
		# shellcheck disable=SC2086
		tl_wait 5 tl_dead $_dcc_pids || return 1
	fi
	# shellcheck disable=SC2086
	find $_dcc_dirs -depth -type d -exec rmdir {} + 2>/dev/null
	for _dcc_d in $_dcc_dirs; do
		[ -d "$_dcc_d" ] && return 1
	done
	return 0
}

# docker_test_image NAME: make the image NAME (tag latest) in the engine of
# DOCKER_HOST, unless it exists: /bin/busybox (Debian's busybox-static)
# with a link for each of its applets where busybox would install it, root
# in /etc/passwd and /etc/group, /root and /tmp.  `docker import` of that
# tree: no registry, no Dockerfile build.
docker_test_image() {
	"$DOCKER" image inspect "$1" >/dev/null 2>&1 && return 0
	_dti_bb=${BUSYBOX:-/bin/busybox}
	[ -x "$_dti_bb" ] || { echo "# no $_dti_bb: install busybox-static" >&2; return 1; }
	if ldd "$_dti_bb" >/dev/null 2>&1; then
		echo "# $_dti_bb is not static: install busybox-static" >&2
		return 1
	fi
	_dti_root=$(mktemp -d) || return 1
	mkdir -p "$_dti_root/bin" "$_dti_root/sbin" "$_dti_root/usr/bin" \
	    "$_dti_root/usr/sbin" "$_dti_root/etc" "$_dti_root/root" \
	    "$_dti_root/tmp"
	chmod 1777 "$_dti_root/tmp"
	chmod 700 "$_dti_root/root"
	cp "$_dti_bb" "$_dti_root/bin/busybox"
	for _dti_a in $("$_dti_bb" --list-full); do
		[ -e "$_dti_root/$_dti_a" ] || ln -s /bin/busybox "$_dti_root/$_dti_a"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$_dti_root/etc/passwd"
	echo 'root:x:0:' >"$_dti_root/etc/group"
	tar -C "$_dti_root" --numeric-owner --owner=0 --group=0 -cf - . |
	    "$DOCKER" import \
	    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
	    --change 'CMD ["/bin/sh"]' - "$1" >/dev/null
	_dti_rc=$?
	rm -rf "$_dti_root"
	return $_dti_rc
}
