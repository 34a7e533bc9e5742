# What the deb and the rpm share: the file tree of an installed flotilla,
# staged from a build directory into a root, with the modes each file must
# have.  Sourced by build-deb.sh and build-rpm.sh (POSIX sh), which add
# their own metadata around the same tree:
#
#   /usr/bin/flotilla                         the manager, stripped
#   /usr/lib/flotilla/plugins/fleeting-plugin-NAME
#                                             every plugin the build has
#                                             (manager/plugin_host.c looks
#                                             there after /usr/bin)
#   /usr/lib/flotilla/helper-images/flotilla-helper-VERSION.tar
#                                             (manager/run.c looks there)
#   UNITDIR/flotilla.service                  the systemd unit
#   ENVFILE                                   the service's environment
#                                             (0600: it may hold secrets)
#   /usr/share/doc/flotilla/                  README.md, README.packaging.md,
#                                             config.toml.example, copyright
#   /usr/share/man/man8/flotilla.8.gz
#
# Callers set PKG_TOP (the source tree) before sourcing.

# stage_die MESSAGE: the scripts' one way to fail.
stage_die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# stage_check_version VERSION BUILD_DIR: VERSION is usable in package
# names and is the version the build's flotilla reports, since the daemon
# looks for the helper image tar named by its own version.
stage_check_version() {
	case "$1" in
	[0-9]*) ;;
	*) stage_die "version '$1' must start with a digit" ;;
	esac
	case "$1" in
	*[!0-9A-Za-z.+~-]*) stage_die "version '$1': only letters, digits and . + ~ - allowed" ;;
	esac
	[ -x "$2/bin/flotilla" ] || stage_die "$2/bin/flotilla: missing (run make)"
	_sv_v=$("$2/bin/flotilla" --version 2>/dev/null | awk 'NR == 1 { print $2 }')
	[ "$_sv_v" = "$1" ] ||
	    stage_die "$2/bin/flotilla is version '$_sv_v', not '$1' (VERSION file and build differ: run make)"
}

# stage_helper_tar VERSION BUILD_DIR: the path of the helper image tar
# ($HELPER_TAR if set); fails if it does not exist.
stage_helper_tar() {
	_sh_t=${HELPER_TAR:-$2/helper/flotilla-helper-$1.tar}
	[ -f "$_sh_t" ] || stage_die "$_sh_t: missing (run make helper-image)"
	echo "$_sh_t"
}

# stage_bin SRC DST: install an executable, stripped of debugging
# information when strip(1) is there.
stage_bin() {
	install -D -m 0755 "$1" "$2"
	if command -v strip >/dev/null 2>&1; then
		strip --strip-unneeded --remove-section=.comment \
		    --remove-section=.note "$2" || stage_die "strip $2 failed"
	fi
}

# stage_tree VERSION BUILD_DIR ROOT UNITDIR ENVFILE: fill ROOT.
stage_tree() {
	_st_ver=$1 _st_build=$2 _st_root=$3 _st_unitdir=$4 _st_env=$5
	_st_tar=$(stage_helper_tar "$_st_ver" "$_st_build") || exit 1
	umask 022
	mkdir -p "$_st_root"
	stage_bin "$_st_build/bin/flotilla" "$_st_root/usr/bin/flotilla"
	for _st_p in "$_st_build"/bin/fleeting-plugin-*; do
		[ -f "$_st_p" ] && [ -x "$_st_p" ] || continue
		stage_bin "$_st_p" \
		    "$_st_root/usr/lib/flotilla/plugins/${_st_p##*/}"
	done
	install -D -m 0644 "$_st_tar" \
	    "$_st_root/usr/lib/flotilla/helper-images/flotilla-helper-$_st_ver.tar"
	install -D -m 0644 "$PKG_TOP/packaging/flotilla.service" \
	    "$_st_root$_st_unitdir/flotilla.service"
	install -D -m 0600 "$PKG_TOP/packaging/flotilla.default" \
	    "$_st_root$_st_env"
	_st_doc=$_st_root/usr/share/doc/flotilla
	install -D -m 0644 "$PKG_TOP/README.md" "$_st_doc/README.md"
	install -D -m 0644 "$PKG_TOP/packaging/README.md" \
	    "$_st_doc/README.packaging.md"
	install -D -m 0644 "$PKG_TOP/packaging/config.toml.example" \
	    "$_st_doc/config.toml.example"
	stage_copyright >"$_st_doc/copyright"
	chmod 0644 "$_st_doc/copyright"
	if [ -f "$PKG_TOP/packaging/flotilla.8" ]; then
		mkdir -p "$_st_root/usr/share/man/man8"
		gzip -9n -c "$PKG_TOP/packaging/flotilla.8" \
		    >"$_st_root/usr/share/man/man8/flotilla.8.gz"
		chmod 0644 "$_st_root/usr/share/man/man8/flotilla.8.gz"
	fi
	# Directories as the package installs them, whatever umask or
	# mktemp gave; the same time stamp on everything (reproducible
	# packages: SOURCE_DATE_EPOCH, else the last commit's time).
	find "$_st_root" -type d -exec chmod 0755 {} +
	_st_epoch=${SOURCE_DATE_EPOCH:-$(git -C "$PKG_TOP" log -1 --format=%ct 2>/dev/null || date +%s)}
	find "$_st_root" -exec touch -h -d "@$_st_epoch" {} +
}

# stage_copyright: the copyright file, from the tree's licence file.
stage_copyright() {
	echo "flotilla: an autoscaling GitLab CI runner (docker-autoscaler executor)."
	echo
	for _sc_f in LICENSE LICENSE.md LICENSE.txt COPYING; do
		if [ -f "$PKG_TOP/$_sc_f" ]; then
			cat "$PKG_TOP/$_sc_f"
			return 0
		fi
	done
	echo "XXX The source tree has no licence file yet; this package states no licence."
}

# stage_elves ROOT: the ELF files of the tree, one per line.
stage_elves() {
	find "$1" -type f -perm -0100 | sort | while read -r _se_f; do
		[ "$(head -c 4 "$_se_f" | od -An -c | tr -d ' ')" = '177ELF' ] &&
		    echo "$_se_f"
	done
	return 0
}
