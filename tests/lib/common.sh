# Process, mount and port helpers shared by the test libraries (dockerd.sh,
# sshd.sh) and the integration tests that source them.  Everything here is
# bounded in time and acts only on what a test names: a pid it recorded
# whose command line still shows the test's directory, mounts under that
# directory.  Never a process found by a broad name.
#
# POSIX sh; source it:  . "$TOP/tests/lib/common.sh"

# Debian's python3 (a pyenv shim earlier on PATH costs 0.3 s a start).
if [ -z "${TL_PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then TL_PYTHON=/usr/bin/python3; else TL_PYTHON=python3; fi
fi

# tl_wait SECONDS CMD...: run CMD every 0.1 s until it succeeds (0) or
# SECONDS have passed (1).
tl_wait() {
	_tw_n=$(($1 * 10))
	shift
	while [ "$_tw_n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		_tw_n=$((_tw_n - 1))
	done
	"$@"
}

# tl_alive PID: the process exists and is not a zombie.  (A daemon we
# started with & stays a zombie until this shell reaps it.)
tl_alive() {
	case "$1" in ''|*[!0-9]*) return 1 ;; esac
	_ta_stat=$(cat /proc/"$1"/stat 2>/dev/null) || return 1
	# The state follows the ")" that closes the command name.
	_ta_stat=${_ta_stat##*) }
	[ "${_ta_stat%% *}" != Z ]
}

# tl_cmdline PID: the command line of PID, arguments joined by spaces.
tl_cmdline() {
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null
}

# tl_owned PID TEXT: PID is alive and TEXT is part of its command line.
tl_owned() {
	tl_alive "$1" || return 1
	case "$(tl_cmdline "$1")" in *"$2"*) return 0 ;; esac
	return 1
}

# tl_dead PID...: none of the PIDs is alive.
tl_dead() {
	for _td_p in "$@"; do
		tl_alive "$_td_p" && return 1
	done
	return 0
}

# tl_descendants PID: print the pids of PID's children, grandchildren, ...
tl_descendants() {
	for _tdc_c in $(pgrep -P "$1" 2>/dev/null); do
		echo "$_tdc_c"
		tl_descendants "$_tdc_c"
	done
}

# tl_stop SECONDS PID...: SIGTERM the PIDs, wait up to SECONDS for all of
# them to end, then SIGKILL what is left and wait 2 s more.  Reaps those
# that are children of this shell.  Fails if one survives SIGKILL.
tl_stop() {
	_ts_secs=$1
	shift
	[ $# -eq 0 ] && return 0
	kill -TERM "$@" 2>/dev/null
	if ! tl_wait "$_ts_secs" tl_dead "$@"; then
		kill -KILL "$@" 2>/dev/null
		tl_wait 2 tl_dead "$@" || return 1
	fi
	for _ts_p in "$@"; do
		wait "$_ts_p" 2>/dev/null
	done
	return 0
}

# tl_pids_under TEXT: pids of the live processes whose command line holds
# TEXT (a test directory), except this shell and its subshells (the same
# command line), should the test have been given TEXT as an argument.
tl_pids_under() {
	_tpu_self=$(tl_cmdline $$)
	for _tpu_p in $(pgrep -f -- "$1" 2>/dev/null); do
		[ "$_tpu_p" = "$$" ] && continue
		tl_alive "$_tpu_p" || continue
		[ "$(tl_cmdline "$_tpu_p")" = "$_tpu_self" ] && continue
		echo "$_tpu_p"
	done
}

# tl_mounts_under DIR: mount points at or below DIR, deepest first.
tl_mounts_under() {
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' \
	    /proc/self/mountinfo | sort -r
}

# tl_umount_under DIR: unmount everything mounted at or below DIR; lazily
# for a mount that is still busy.  Fails if a mount remains.
tl_umount_under() {
	for _tu_m in $(tl_mounts_under "$1"); do
		umount "$_tu_m" 2>/dev/null || umount -l "$_tu_m" 2>/dev/null
	done
	[ -z "$(tl_mounts_under "$1")" ]
}

# tl_port_free ADDR PORT: a TCP listener could bind ADDR:PORT now.
tl_port_free() {
	"$TL_PYTHON" - "$1" "$2" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
EOF
}

# tl_free_port ADDR: print a TCP port that is free on ADDR now (chosen by
# the kernel among the ephemeral ones).
tl_free_port() {
	"$TL_PYTHON" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
print(s.getsockname()[1])
EOF
}

# tl_diag FILE [LINES]: the last LINES (default 20) lines of FILE as TAP
# comments, for a failed check.
tl_diag() {
	[ -f "$1" ] || { echo "# (no $1)"; return 0; }
	echo "# --- tail of $1"
	tail -n "${2:-20}" "$1" | sed 's/^/# /'
}

# tl_make_pki DIR: a private CA (DIR/ca.pem, ca.key) and a server
# certificate for 127.0.0.1 signed by it (DIR/srv.pem, srv.key), with
# openssl; its output in DIR/openssl.log.
tl_make_pki() {
	(
		cd "$1" || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		    -nodes -keyout ca.key -out ca.pem -days 2 \
		    -subj /CN=flotilla-test-ca &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		    -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 &&
		printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext &&
		openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key \
		    -CAcreateserial -out srv.pem -days 2 -extfile ext
	) >"$1/openssl.log" 2>&1
}
