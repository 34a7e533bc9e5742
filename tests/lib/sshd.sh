# Test instances: real OpenSSH sshd processes, one per directory, each
# listening on its own loopback address (127.0.0.N) as the machines of a
# fleet would, with its own host key, config, authorized key and log.  A
# client key pair is made in the same directory, so a test (and flotilla
# under test) logs in as root with a key and nothing else.  TCP and unix
# socket forwarding are on: flotilla's connector reaches the instance's
# Docker socket through the SSH connection.
#
# POSIX sh; needs TOP (the repository root).  Source it:
#   . "$TOP/tests/lib/sshd.sh"
#   dir=$(mktemp -d)
#   sshd_start "$dir" 127.0.0.2 || exit 1   # sets SSHD_PORT
#   sshd_ssh "$dir" echo ok
#   sshd_stop "$dir"; rm -rf "$dir"
#
# Layout of DIR: sshd_config, ssh_host_ed25519_key(.pub), id_ed25519(.pub)
# (the client key: its path may be given to a program, its contents never
# appear in an argument or a log), authorized_keys, sshd.pid, sshd.log,
# addr, port, forward.pids.  DIR must be free of spaces.

. "${TOP:?TOP must be the repository root}/tests/lib/common.sh"

SSHD=${SSHD:-/usr/sbin/sshd}

# sshd_start DIR ADDR [PORT]: start an sshd on ADDR:PORT and wait (10 s at
# most) until it listens.  Without PORT: 22 if it is free on ADDR (nothing
# holds 0.0.0.0:22), else a free port.  Keys are made once per DIR and kept
# across restarts.  Sets and exports SSHD_PORT; DIR/addr and DIR/port tell
# the other functions where it is.  On failure prints the log's tail as TAP
# comments and returns 1.
sshd_start() {
	_ss_dir=$(cd "$1" && pwd) || return 1
	_ss_addr=$2
	_ss_port=${3:-}
	case "$_ss_addr" in
	127.*) ;;
	*) echo "# sshd_start: $_ss_addr: tests listen on 127.0.0.0/8 only" >&2; return 1 ;;
	esac
	case "$_ss_dir" in *' '*) echo "# sshd_start: no spaces in $_ss_dir" >&2; return 1 ;; esac
	if grep -q '^root:!' /etc/shadow 2>/dev/null; then
		echo "# sshd_start: root's password is locked ('!'): sshd without PAM refuses it" >&2
	fi
	mkdir -p /run/sshd && chmod 755 /run/sshd || return 1

	if [ ! -f "$_ss_dir/ssh_host_ed25519_key" ]; then
		ssh-keygen -q -t ed25519 -N '' -C "flotilla-test-host" \
		    -f "$_ss_dir/ssh_host_ed25519_key" >/dev/null || return 1
	fi
	if [ ! -f "$_ss_dir/id_ed25519" ]; then
		ssh-keygen -q -t ed25519 -N '' -C "flotilla-test-client" \
		    -f "$_ss_dir/id_ed25519" >/dev/null || return 1
	fi
	cp "$_ss_dir/id_ed25519.pub" "$_ss_dir/authorized_keys" || return 1

	# A port we chose ourselves may be taken between the check and the
	# bind (other tests pick ports too): then choose again.
	_ss_try=0
	while :; do
		_ss_try=$((_ss_try + 1))
		if [ -z "${3:-}" ]; then
			if tl_port_free "$_ss_addr" 22; then
				_ss_port=22
			else
				_ss_port=$(tl_free_port "$_ss_addr") || return 1
			fi
		fi
		_sshd_config "$_ss_dir" "$_ss_addr" "$_ss_port"
		rm -f "$_ss_dir/sshd.pid"
		: >"$_ss_dir/sshd.log"
		"$SSHD" -D -f "$_ss_dir/sshd_config" -E "$_ss_dir/sshd.log" \
		    </dev/null >/dev/null 2>&1 &
		_ss_pid=$!
		echo $_ss_pid >"$_ss_dir/sshd.launched"
		# sshd writes its pidfile once its socket listens.
		if tl_wait 10 _sshd_listening "$_ss_dir" $_ss_pid &&
		    tl_alive $_ss_pid; then
			break
		fi
		tl_stop 2 $_ss_pid
		if [ -n "${3:-}" ] || [ $_ss_try -ge 3 ] ||
		    ! grep -q 'Address already in use' "$_ss_dir/sshd.log"; then
			tl_diag "$_ss_dir/sshd.log"
			return 1
		fi
	done
	echo "$_ss_addr" >"$_ss_dir/addr"
	echo "$_ss_port" >"$_ss_dir/port"
	SSHD_PORT=$_ss_port
	export SSHD_PORT
	return 0
}

# _sshd_listening DIR PID: the pidfile is there, or PID died (stop waiting).
_sshd_listening() {
	tl_alive "$2" || return 0
	[ -s "$1/sshd.pid" ]
}

# _sshd_config DIR ADDR PORT: write DIR/sshd_config.
_sshd_config() {
	cat >"$1/sshd_config" <<EOF
# flotilla test instance $2:$3
ListenAddress $2:$3
HostKey $1/ssh_host_ed25519_key
PidFile $1/sshd.pid
AuthorizedKeysFile $1/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
X11Forwarding no
PrintMotd no
UseDNS no
LogLevel VERBOSE
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
EOF
}

# sshd_pid DIR: print the pid of DIR's sshd if it runs.
sshd_pid() {
	for _sp_f in "$1/sshd.pid" "$1/sshd.launched"; do
		[ -r "$_sp_f" ] || continue
		_sp_p=$(cat "$_sp_f" 2>/dev/null)
		if tl_owned "$_sp_p" "$1/sshd_config"; then
			echo "$_sp_p"
			return 0
		fi
	done
	return 1
}

# sshd_client_opts DIR: print the ssh client options that log in to DIR's
# instance with DIR's key, host key unchecked and never recorded, no
# prompt, no user config (for `ssh $(sshd_client_opts DIR) root@ADDR`).
sshd_client_opts() {
	echo "-F /dev/null -i $1/id_ed25519 -p $(cat "$1/port")" \
	    "-o IdentitiesOnly=yes -o IdentityAgent=none" \
	    "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" \
	    "-o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR"
}

# sshd_ssh DIR CMD...: run CMD (a remote shell command line) as root on
# DIR's instance; its status is the command's (255: ssh failed).  Standard
# input goes to CMD: give </dev/null inside a `while read` loop.
sshd_ssh() {
	_sh_dir=$1
	shift
	# shellcheck disable=SC2046
	ssh $(sshd_client_opts "$_sh_dir") -- "root@$(cat "$_sh_dir/addr")" "$@"
}

# sshd_forward DIR LOCAL REMOTE: forward the local unix socket LOCAL to
# the unix socket REMOTE on DIR's instance (`ssh -N -L LOCAL:REMOTE`, the
# way the connector reaches an instance's Docker socket), in the
# background, and wait (10 s at most) until LOCAL exists.  The ssh pid is
# recorded in DIR/forward.pids; sshd_stop ends it.
sshd_forward() {
	rm -f "$2"
	# shellcheck disable=SC2046
	ssh $(sshd_client_opts "$1") -n -N -o ExitOnForwardFailure=yes \
	    -o StreamLocalBindUnlink=yes -L "$2:$3" \
	    -- "root@$(cat "$1/addr")" </dev/null >>"$1/forward.log" 2>&1 &
	_sf_pid=$!
	echo $_sf_pid >>"$1/forward.pids"
	tl_wait 10 _sshd_sock_or_dead "$2" $_sf_pid && tl_alive $_sf_pid &&
	    [ -S "$2" ] && return 0
	tl_diag "$1/forward.log"
	return 1
}

_sshd_sock_or_dead() {
	tl_alive "$2" || return 0
	[ -S "$1" ]
}

# sshd_stop DIR: end DIR's forwards, the sshd processes of the connections
# still open to DIR's instance, then its listening sshd (each SIGTERM, then
# SIGKILL after 5 s; in this order so that sshd reaps its own children).
# Returns 1 (with a TAP comment) if one survives.
sshd_stop() {
	_st_dir=$(cd "$1" 2>/dev/null && pwd) || return 0
	_st_rc=0
	_st_pids=
	if [ -r "$_st_dir/forward.pids" ]; then
		# shellcheck disable=SC2013
		for _st_p in $(cat "$_st_dir/forward.pids"); do
			tl_owned "$_st_p" "$_st_dir/id_ed25519" && _st_pids="$_st_pids $_st_p"
		done
	fi
	_st_main=$(sshd_pid "$_st_dir") || _st_main=
	# A connection's processes re-exec and rename themselves
	# ("sshd: root@notty"): find them as the listener's descendants.
	[ -n "$_st_main" ] && _st_pids="$_st_pids $(tl_descendants "$_st_main")"
	# shellcheck disable=SC2086
	tl_stop 5 $_st_pids || _st_rc=1
	# shellcheck disable=SC2086
	tl_stop 5 $_st_main || _st_rc=1
	rm -f "$_st_dir/forward.pids"
	[ $_st_rc -eq 0 ] && return 0
	echo "# sshd_stop: processes of $_st_dir survive SIGKILL:$_st_pids $_st_main"
	return 1
}
