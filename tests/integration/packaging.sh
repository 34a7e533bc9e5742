#!/bin/sh
# The deb and rpm packages (packaging/): both are built from the current
# build ($BUILD/bin, $BUILD/helper) with fast compression, then checked.
# The deb: control fields (Depends are the packages that own the
# libraries the binaries link), conffiles, every file and its mode,
# md5sums, a byte-identical rebuild, then the maintainer scripts for real
# through dpkg --root on a throwaway root (DPKG_ROOT, scripts run
# chrootless) with a systemctl stand-in that records its calls: first
# installation (enabled, not started, dirs 0700), an upgrade while
# "systemd runs" (try-restart without blocking, a locally changed
# conffile kept), policy-rc.d refusing, removal (stop, config kept),
# purge (everything gone), a first installation with a config (start).
# The unit through systemd-analyze verify (skipped without it).  The rpm:
# rpm -qip, every file and mode, config files, Requires as sonames, the
# scriptlets' syntax, the same binary as the deb's.  The packaged
# binaries run --version and the packaged example config passes
# check-config.  A version that differs from the build's is refused.
set -u
. "$TOP/tests/lib/common.sh"

TMP=$(mktemp -d /tmp/flpkg.XXXXXX)
OUT=$TMP/out
R=$TMP/root
SHIM=$TMP/shim
VERSION=$(cat "$TOP/VERSION")
T0=$(date +%s%N)

cleanup() {
	trap - EXIT INT TERM HUP
	if [ -n "${LOGDIR:-}" ]; then
		mkdir -p "$LOGDIR/packaging"
		cp "$TMP"/*.log "$TMP"/*.txt "$LOGDIR/packaging/" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; return 1; fi; }
mark() { echo "# $(( ($(date +%s%N) - T0) / 1000000 )) ms: $*"; }
show() { sed 's/^/#   /' "$1" | tail -n "${2:-15}"; }

export DEB_COMPRESS=zstd RPM_COMPRESS=zstd SOURCE_DATE_EPOCH=1700000000
mkdir -p "$OUT"

# The real helper image if the build has it, else a stand-in (the
# packages only carry the file).
if [ ! -f "$BUILD/helper/flotilla-helper-$VERSION.tar" ]; then
	echo "# no $BUILD/helper/flotilla-helper-$VERSION.tar: packaging a stand-in"
	echo stand-in >"$TMP/stand-in"
	tar -C "$TMP" -cf "$TMP/helper.tar" stand-in
	export HELPER_TAR=$TMP/helper.tar
fi
PLUGINS=$(cd "$BUILD/bin" && ls fleeting-plugin-* 2>/dev/null)
echo "# plugins in the build: $(echo $PLUGINS)"

# ---- deb
sh "$TOP/packaging/build-deb.sh" "$VERSION" "$BUILD" "$OUT" >"$TMP/build-deb.log" 2>&1
rc=$?
ARCH=$(dpkg --print-architecture)
DEB=$OUT/flotilla_${VERSION}_$ARCH.deb
[ $rc -eq 0 ] && [ -f "$DEB" ]
check $? "build-deb.sh: $(basename "$DEB")" || show "$TMP/build-deb.log"
mark "deb built"

dpkg-deb -f "$DEB" >"$TMP/control.txt" 2>&1
field() { sed -n "s/^$1: //p" "$TMP/control.txt"; }
[ "$(field Package)" = flotilla ] && [ "$(field Version)" = "$VERSION" ] &&
    [ "$(field Architecture)" = "$ARCH" ] && [ -n "$(field Maintainer)" ] &&
    [ "$(field Installed-Size)" -gt 0 ] 2>/dev/null
check $? "control: Package, Version, Architecture, Maintainer, Installed-Size" ||
    show "$TMP/control.txt"

# Depends: exactly the packages that own the libraries the packaged
# binaries need (by soname, found through ldconfig and dpkg -S), each
# with a minimum version, plus ca-certificates.
DEPS=$(field Depends)
want=""
for b in "$BUILD/bin/flotilla" $(for p in $PLUGINS; do echo "$BUILD/bin/$p"; done); do
	for so in $(objdump -p "$b" | awk '$1 == "NEEDED" { print $2 }'); do
		path=$(ldconfig -p | awk -v s="$so" '$1 == s { print $NF; exit }')
		pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "/usr$path" 2>/dev/null ||
		    dpkg -S "$(readlink -f "$path")" 2>/dev/null)
		want="$want ${pkg%%:*}"
	done
done
want=$(echo $want ca-certificates | tr ' ' '\n' | sort -u)
got=$(echo "$DEPS" | tr ',' '\n' | sed 's/^ *//; s/ .*//' | sort -u)
echo "# Depends: $DEPS"
if [ "$want" = "$got" ] && ! echo "$DEPS" | tr ',' '\n' | grep -v ca-certificates | grep -vq '(>= '; then
	ok "Depends: the owners of every linked library, versioned"
else
	nok "Depends: want $(echo $want), got $(echo $got)"
fi
bad=0
for p in libjansson4 libevent-2.1-7 libcurl4 libssh2-1 libssl3 libprotobuf-c1 libgrpc29; do
	echo "$got" | grep -qx "$p" || { echo "# missing $p"; bad=1; }
done
check $bad "Depends: the Debian 12 library packages named in the brief"

dpkg-deb --ctrl-tarfile "$DEB" | tar -tvf - >"$TMP/ctrl.txt" 2>&1
mkdir -p "$TMP/ctrl"
dpkg-deb -e "$DEB" "$TMP/ctrl"
[ "$(cat "$TMP/ctrl/conffiles")" = /etc/default/flotilla ]
check $? "conffiles: /etc/default/flotilla"
bad=0
for s in postinst prerm postrm; do
	[ -x "$TMP/ctrl/$s" ] && sh -n "$TMP/ctrl/$s" || { echo "# $s"; bad=1; }
done
check $bad "maintainer scripts: executable, valid sh"

# Every file with its mode and owner; nothing else.
dpkg-deb -c "$DEB" | awk '{ print $1, $2, $6 }' | sed 's| \./| /|' >"$TMP/contents.txt"
{
	echo "-rwxr-xr-x root/root /usr/bin/flotilla"
	for p in $PLUGINS; do
		echo "-rwxr-xr-x root/root /usr/lib/flotilla/plugins/$p"
	done
	echo "-rw-r--r-- root/root /usr/lib/flotilla/helper-images/flotilla-helper-$VERSION.tar"
	echo "-rw-r--r-- root/root /lib/systemd/system/flotilla.service"
	echo "-rw------- root/root /etc/default/flotilla"
	for d in README.md README.packaging.md config.toml.example copyright; do
		echo "-rw-r--r-- root/root /usr/share/doc/flotilla/$d"
	done
	echo "-rw-r--r-- root/root /usr/share/man/man8/flotilla.8.gz"
} | sort >"$TMP/want-files.txt"
grep -v '^d' "$TMP/contents.txt" | sort >"$TMP/got-files.txt"
diff "$TMP/want-files.txt" "$TMP/got-files.txt" >"$TMP/files-diff.txt"
check $? "files and modes: $(wc -l <"$TMP/got-files.txt") files as expected" ||
    show "$TMP/files-diff.txt"
grep '^d' "$TMP/contents.txt" | grep -v '^drwxr-xr-x root/root ' >"$TMP/baddirs.txt"
[ ! -s "$TMP/baddirs.txt" ]
check $? "directories: all 0755 root/root" || show "$TMP/baddirs.txt"

mkdir -p "$TMP/x"
dpkg-deb -x "$DEB" "$TMP/x"
(cd "$TMP/x" && md5sum --quiet -c "$TMP/ctrl/md5sums") >"$TMP/md5.log" 2>&1 &&
    [ "$(wc -l <"$TMP/ctrl/md5sums")" -eq $(($(wc -l <"$TMP/got-files.txt") - 1)) ]
check $? "md5sums: every file but the conffile, all matching" || show "$TMP/md5.log"

mkdir -p "$OUT/again"
sh "$TOP/packaging/build-deb.sh" "$VERSION" "$BUILD" "$OUT/again" >>"$TMP/build-deb.log" 2>&1 &&
    cmp -s "$DEB" "$OUT/again/$(basename "$DEB")"
check $? "deb: a rebuild is byte-identical (SOURCE_DATE_EPOCH)"
rm -rf "$OUT/again"

# ---- what is inside runs
"$TMP/x/usr/bin/flotilla" --version >"$TMP/version.txt" 2>&1 &&
    [ "$(awk '{ print $1, $2; exit }' "$TMP/version.txt")" = "flotilla $VERSION" ]
check $? "packaged flotilla --version: $(head -1 "$TMP/version.txt")"
bad=0
for p in $PLUGINS; do
	"$TMP/x/usr/lib/flotilla/plugins/$p" --version >"$TMP/plugin-version.txt" 2>&1 &&
	    grep -q "^Version: *$VERSION" "$TMP/plugin-version.txt" ||
	    { echo "# $p:"; show "$TMP/plugin-version.txt" 3; bad=1; }
done
check $bad "packaged plugins --version: $(echo $PLUGINS)"
cmp -s "$TMP/x/usr/lib/flotilla/helper-images/flotilla-helper-$VERSION.tar" \
    "${HELPER_TAR:-$BUILD/helper/flotilla-helper-$VERSION.tar}"
check $? "helper image: named for the binary's version, the build's file"
"$TMP/x/usr/bin/flotilla" check-config \
    -c "$TMP/x/usr/share/doc/flotilla/config.toml.example" >"$TMP/check-config.log" 2>&1
check $? "the packaged config.toml.example passes check-config" ||
    show "$TMP/check-config.log"
zcat "$TMP/x/usr/share/man/man8/flotilla.8.gz" >"$TMP/flotilla.8" &&
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$TMP/flotilla.8" >"$TMP/man.txt" 2>"$TMP/man.log" &&
    [ ! -s "$TMP/man.log" ] && grep -q "^NAME" "$TMP/man.txt"
check $? "man page: renders without warnings" || show "$TMP/man.log"

# ---- the unit
U=$TMP/x/lib/systemd/system/flotilla.service
bad=0
for l in Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' KillSignal=SIGQUIT \
    KillMode=mixed TimeoutStopSec=7200 Restart=on-failure WatchdogSec=120 \
    ConditionPathExists=/etc/flotilla/config.toml StateDirectory=flotilla \
    EnvironmentFile=-/etc/default/flotilla EnvironmentFile=-/etc/sysconfig/flotilla \
    WantedBy=multi-user.target; do
	grep -qxF "$l" "$U" || { echo "# missing: $l"; bad=1; }
done
grep -q '^ExecStart=/usr/bin/flotilla run --config /etc/flotilla/config.toml --working-directory /var/lib/flotilla ' "$U" || bad=1
check $bad "unit: notify, SIGQUIT to the daemon alone, 2 h stop, reload, config and state paths"
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify wants ExecStart's binary to exist: point it at the extract.
	mkdir -p "$TMP/unit"
	sed "s|/usr/bin/flotilla|$TMP/x/usr/bin/flotilla|" "$U" >"$TMP/unit/flotilla.service"
	systemd-analyze verify --man=no "$TMP/unit/flotilla.service" >"$TMP/verify.log" 2>&1 &&
	    [ ! -s "$TMP/verify.log" ]
	check $? "systemd-analyze verify: clean" || show "$TMP/verify.log"
	systemd-analyze security --offline=yes "$TMP/unit/flotilla.service" 2>/dev/null |
	    grep 'Overall exposure' | sed 's/^/# /'
else
	skip "systemd-analyze verify: not installed"
fi

# ---- the maintainer scripts, for real, on a throwaway root
# The systemctl stand-in records its arguments; is-active and is-enabled
# answer $SHIM_STATE (0 yes, 3 no).  policy-rc.d is the root's own.
mkdir -p "$SHIM"
cat >"$SHIM/systemctl" <<EOF
#!/bin/sh
echo "\$*" >>"$TMP/systemctl.log"
case " \$* " in *" is-active "*|*" is-enabled "*) exit \${SHIM_STATE:-3} ;; esac
exit 0
EOF
chmod 755 "$SHIM/systemctl"
: >"$TMP/systemctl.log"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
: >"$R/var/lib/dpkg/status"
# dpkg_r ARGS...: dpkg on the throwaway root, its output in dpkg.log.
dpkg_r() {
	echo "== dpkg $*" >>"$TMP/dpkg.log"
	PATH=$SHIM:$PATH dpkg --root="$R" --force-script-chrootless \
	    --force-depends --force-not-root "$@" >>"$TMP/dpkg.log" 2>&1
}
calls() { cat "$TMP/systemctl.log"; : >"$TMP/systemctl.log"; }
status() { dpkg --root="$R" -s flotilla 2>/dev/null | sed -n 's/^Status: //p'; }
mode() { stat -c %a "$1" 2>/dev/null; }

dpkg_r -i "$DEB"
[ $? -eq 0 ] && [ "$(status)" = "install ok installed" ]
check $? "dpkg -i on an empty root: installed and configured" || show "$TMP/dpkg.log"
[ "$(mode "$R/etc/flotilla")" = 700 ] && [ "$(mode "$R/var/lib/flotilla")" = 700 ] &&
    [ "$(mode "$R/etc/default/flotilla")" = 600 ] && [ -x "$R/usr/bin/flotilla" ]
check $? "postinst: /etc/flotilla and /var/lib/flotilla 0700, the env file 0600"
[ "$(readlink "$R/etc/systemd/system/multi-user.target.wants/flotilla.service")" = \
    /lib/systemd/system/flotilla.service ]
check $? "postinst: the unit enabled (multi-user.target.wants)"
c=$(calls)
[ -z "$c" ] && grep -q 'register a runner' "$TMP/dpkg.log"
check $? "postinst without systemd: no systemctl call, the next step printed" ||
    echo "$c" | sed "s/^/# call: /"

# An upgrade (the same version again) while systemd runs the service.
mkdir -p "$R/run/systemd/system"
echo 'concurrent = 1' >"$R/etc/flotilla/config.toml"
echo 'FLOTILLA_OPTS="--debug"' >>"$R/etc/default/flotilla"
SHIM_STATE=0 dpkg_r -i "$DEB"
rc=$?
c=$(calls)
[ $rc -eq 0 ] && echo "$c" | grep -qx -- '--no-block try-restart flotilla.service' &&
    ! echo "$c" | grep -qw stop
check $? "upgrade: try-restart --no-block, never a blocking stop" || echo "$c" | sed "s/^/# call: /"
grep -q '^FLOTILLA_OPTS="--debug"' "$R/etc/default/flotilla"
check $? "upgrade: the locally changed conffile is kept"

mkdir -p "$R/usr/sbin"
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
SHIM_STATE=0 dpkg_r -i "$DEB"
c=$(calls)
! echo "$c" | grep -q restart
check $? "upgrade under a policy-rc.d that says 101: no restart" || echo "$c" | sed "s/^/# call: /"
rm -f "$R/usr/sbin/policy-rc.d"

SHIM_STATE=0 dpkg_r -r flotilla
rc=$?
c=$(calls)
[ $rc -eq 0 ] && echo "$c" | grep -q '^stop flotilla.service' &&
    [ -f "$R/etc/flotilla/config.toml" ] && [ -f "$R/etc/default/flotilla" ] &&
    [ ! -e "$R/usr/bin/flotilla" ] && [ "$(status)" = "deinstall ok config-files" ]
check $? "remove: the service stopped, config.toml and the conffile kept" ||
    echo "$c" | sed "s/^/# call: /"

dpkg_r -P flotilla
[ $? -eq 0 ] && [ ! -e "$R/etc/flotilla" ] && [ ! -e "$R/var/lib/flotilla" ] &&
    [ ! -e "$R/etc/default/flotilla" ] &&
    [ ! -e "$R/etc/systemd/system/multi-user.target.wants/flotilla.service" ] &&
    [ -z "$(status)" ]
check $? "purge: /etc/flotilla, /var/lib/flotilla, the conffile and the enablement gone"
calls >/dev/null

# A first installation on a machine that already has a config.toml.
mkdir -p "$R/etc/flotilla"
echo 'concurrent = 1' >"$R/etc/flotilla/config.toml"
SHIM_STATE=0 dpkg_r -i "$DEB"
c=$(calls)
echo "$c" | grep -qx -- '--no-block start flotilla.service'
check $? "first installation with a config.toml and systemd: started without blocking" ||
    echo "$c" | sed "s/^/# call: /"
dpkg_r -P flotilla
calls >/dev/null
mark "maintainer scripts done"

# A package whose version is not the build's is refused.
sh "$TOP/packaging/build-deb.sh" 99.0.0 "$BUILD" "$OUT" >"$TMP/wrong.log" 2>&1
[ $? -ne 0 ] && grep -q "not '99.0.0'" "$TMP/wrong.log" && [ ! -e "$OUT/flotilla_99.0.0_$ARCH.deb" ]
check $? "build-deb.sh refuses a version the binary does not have" || show "$TMP/wrong.log"

# ---- rpm
if ! command -v rpmbuild >/dev/null 2>&1 && [ "$(id -u)" -ne 0 ]; then
	skip "rpm: rpmbuild missing and not root"
	echo "1..$n"
	exit 0
fi
sh "$TOP/packaging/build-rpm.sh" "$VERSION" "$BUILD" "$OUT" >"$TMP/build-rpm.log" 2>&1
rc=$?
RPMV=$(echo "$VERSION" | tr - '~')
RPMF=$(ls "$OUT"/flotilla-"$RPMV"-1.*.rpm 2>/dev/null | head -1)
[ $rc -eq 0 ] && [ -n "$RPMF" ]
check $? "build-rpm.sh: $(basename "${RPMF:-none}")" || show "$TMP/build-rpm.log"
mark "rpm built"

rpm -qip "$RPMF" >"$TMP/rpm-info.txt" 2>&1
rfield() { sed -n "s/^$1 *: //p" "$TMP/rpm-info.txt"; }
[ "$(rfield Name)" = flotilla ] && [ "$(rfield Version)" = "$RPMV" ] &&
    [ "$(rfield Release)" = 1 ] && [ "$(rfield Architecture)" = "$(uname -m)" ]
check $? "rpm -qip: Name, Version, Release, Architecture" || show "$TMP/rpm-info.txt"

rpm -qlvp "$RPMF" 2>/dev/null | awk '{ print $1, $3 "/" $4, $NF }' >"$TMP/rpm-contents.txt"
{
	sed -e 's|/lib/systemd/system|/usr/lib/systemd/system|' \
	    -e 's|/etc/default/flotilla|/etc/sysconfig/flotilla|' "$TMP/want-files.txt"
} | sort >"$TMP/rpm-want.txt"
grep -v '^d' "$TMP/rpm-contents.txt" | sort >"$TMP/rpm-got.txt"
diff "$TMP/rpm-want.txt" "$TMP/rpm-got.txt" >"$TMP/rpm-diff.txt"
check $? "rpm -qlvp: the deb's files and modes (unit and env file at Red Hat's paths)" ||
    show "$TMP/rpm-diff.txt"
grep -qx 'drwx------ root/root /etc/flotilla' "$TMP/rpm-contents.txt" &&
    grep -qx 'drwx------ root/root /var/lib/flotilla' "$TMP/rpm-contents.txt"
check $? "rpm: /etc/flotilla and /var/lib/flotilla owned, 0700"
[ "$(rpm -qp --configfiles "$RPMF" 2>/dev/null)" = /etc/sysconfig/flotilla ]
check $? "rpm: /etc/sysconfig/flotilla is the config file"

rpm -qp --requires "$RPMF" >"$TMP/rpm-requires.txt" 2>/dev/null
bad=0
for b in "$BUILD/bin/flotilla" $(for p in $PLUGINS; do echo "$BUILD/bin/$p"; done); do
	for so in $(objdump -p "$b" | awk '$1 == "NEEDED" { print $2 }'); do
		grep -qxF "$so()(64bit)" "$TMP/rpm-requires.txt" ||
		    { echo "# missing $so()(64bit)"; bad=1; }
	done
done
grep -Eq '^lib[a-z0-9.-]+[0-9]$' "$TMP/rpm-requires.txt" && bad=1
check $bad "rpm Requires: every linked soname, no Debian package names"
grep -qx ca-certificates "$TMP/rpm-requires.txt"
check $? "rpm Requires: ca-certificates"

bad=0
for s in PREIN POSTIN PREUN POSTUN; do
	rpm -qp --qf "%{$s}" "$RPMF" 2>/dev/null >"$TMP/scriptlet.sh"
	[ "$(cat "$TMP/scriptlet.sh")" = "(none)" ] && continue
	sh -n "$TMP/scriptlet.sh" || { echo "# $s"; bad=1; }
done
for s in POSTIN PREUN POSTUN; do
	[ "$(rpm -qp --qf "%{$s}" "$RPMF" 2>/dev/null)" != "(none)" ] || bad=1
done
check $bad "rpm scriptlets: %post, %preun, %postun present, valid sh"

sha_deb=$(sha256sum "$TMP/x/usr/bin/flotilla" | cut -d' ' -f1)
sha_rpm=$(rpm -qp --dump "$RPMF" 2>/dev/null | awk '$1 == "/usr/bin/flotilla" { print $4 }')
[ -n "$sha_rpm" ] && [ "$sha_deb" = "$sha_rpm" ]
check $? "rpm: /usr/bin/flotilla is the deb's (the binary that ran --version)"
mark finished
echo "1..$n"
