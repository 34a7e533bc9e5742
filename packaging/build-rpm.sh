#!/bin/sh
# Builds flotilla-VERSION-1.ARCH.rpm from a build directory with rpmbuild
# and a spec generated here: the tree is stage.sh's (the unit in
# /usr/lib/systemd/system, the environment file /etc/sysconfig/flotilla).
# rpm's automatic dependency generator is off (AutoReqProv: no): the
# Requires are written out as the sonames the binaries need, with the
# symbol versions they reference (libc.so.6(GLIBC_2.34)(64bit)), which
# is what that generator would produce, kept explicit so the package says
# exactly what was checked.  The binaries are built against Debian 12's
# libraries: the rpm installs where the same sonames exist.
#
#   sh packaging/build-rpm.sh VERSION BUILD_DIR OUT_DIR
#
# Needs rpmbuild: as root on Debian it installs the `rpm` package when it
# is missing.  Environment: RPM_COMPRESS (xz, the default; gzip, zstd or
# none), RPM_RELEASE (1), HELPER_TAR, PKG_MAINTAINER, SOURCE_DATE_EPOCH.
set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 VERSION BUILD_DIR OUT_DIR" >&2
	exit 2
fi
VERSION=$1
BUILD_DIR=$(cd "$2" && pwd)
OUT_DIR=$3
PKG_TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$PKG_TOP/packaging/stage.sh"

RELEASE=${RPM_RELEASE:-1}
MAINTAINER=${PKG_MAINTAINER:-flotilla developers <flotilla@example.org>}
case "${RPM_COMPRESS:-xz}" in
xz) PAYLOAD=w6T.xzdio ;;
gzip) PAYLOAD=w6.gzdio ;;
zstd) PAYLOAD=w3T.zstdio ;;
none) PAYLOAD=w0.ufdio ;;
*) stage_die "RPM_COMPRESS=$RPM_COMPRESS: xz, gzip, zstd or none" ;;
esac
stage_check_version "$VERSION" "$BUILD_DIR"
# rpm versions cannot hold "-"; "~" sorts a pre-release first, as in dpkg.
RPM_VERSION=$(echo "$VERSION" | tr - '~')

if ! command -v rpmbuild >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "${0##*/}: installing rpm (for rpmbuild)" >&2
		export DEBIAN_FRONTEND=noninteractive
		{ apt-get install -y -qq --no-install-recommends rpm >/dev/null ||
		    { apt-get update -qq && apt-get install -y -qq --no-install-recommends rpm >/dev/null; }; } ||
		    stage_die "apt-get install rpm failed"
	else
		stage_die "rpmbuild missing: apt-get install rpm (as root), or dnf install rpm-build"
	fi
fi

case "$(uname -m)" in
x86_64) ARCH=x86_64 ;;
aarch64) ARCH=aarch64 ;;
*) ARCH=$(uname -m) ;;
esac
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-rpm.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP
STAGE=$TMP/stage
stage_tree "$VERSION" "$BUILD_DIR" "$STAGE" /usr/lib/systemd/system \
    /etc/sysconfig/flotilla

# rpm_requires: one Requires line per soname the staged ELF files need and
# per symbol version they reference, "()(64bit)" marked on 64-bit ELF.
rpm_requires() {
	for f in $(stage_elves "$STAGE"); do
		objdump -p "$f" | awk -v bits="$(objdump -f "$f" |
		    sed -n 's/.*file format elf\(32\|64\).*/\1/p')" '
			function mark() { return bits == 64 ? "(64bit)" : "" }
			$1 == "NEEDED" { print $2 "()" mark() }
			$1 == "required" && $2 == "from" {
				lib = $3; sub(/:$/, "", lib); next }
			lib != "" && NF == 4 && $1 ~ /^0x/ {
				print lib "(" $4 ")" mark() }
			/^$/ { lib = "" }'
	done | LC_ALL=C sort -u | sed 's/^/Requires: /'
}
requires=$(rpm_requires)
[ -n "$requires" ] || stage_die "no library dependencies found"

# The scriptlets do what the deb's maintainer scripts do ($1 is the
# number of packages of this name left after the operation: 1 on the
# first installation, 2 on an upgrade, 0 on erase): enable on the first
# installation, start only with a config.toml, restart a running service
# on upgrade without waiting for its jobs, stop it on erase (gracefully);
# nothing when systemd is not running.
mkdir -p "$TMP/top"
cat >"$TMP/flotilla.spec" <<EOF
Name: flotilla
Version: $RPM_VERSION
Release: $RELEASE
Summary: Autoscaling GitLab CI runner (docker-autoscaler executor)
License: Unspecified
Packager: $MAINTAINER
Group: System Environment/Daemons
BuildArch: $ARCH
AutoReqProv: no
$requires
Requires: ca-certificates
Suggests: openssh-server, docker

%global _binary_payload $PAYLOAD
%global _build_id_links none
%global debug_package %{nil}
%global __os_install_post %{nil}
%global __brp_mangle_shebangs %{nil}

%description
flotilla takes CI jobs from GitLab and runs each in Docker containers on a
fleet of cloud instances that it sizes to the demand, following GitLab
Runner's docker-autoscaler rules.  It reads GitLab Runner's config.toml.
Each cloud is a plugin process: fleeting-plugin-aws, -googlecompute,
-azure, and -local.  The package includes the helper image loaded onto
instances and a systemd unit.

%install
cp -a "$STAGE/." "%{buildroot}/"
mkdir -p -m 0700 "%{buildroot}/etc/flotilla" "%{buildroot}/var/lib/flotilla"

%files
%defattr(-,root,root,-)
/usr/bin/flotilla
/usr/lib/flotilla
%dir %attr(0700,root,root) /etc/flotilla
%dir %attr(0700,root,root) /var/lib/flotilla
%config(noreplace) %attr(0600,root,root) /etc/sysconfig/flotilla
/usr/lib/systemd/system/flotilla.service
%doc /usr/share/doc/flotilla
$( [ -f "$STAGE/usr/share/man/man8/flotilla.8.gz" ] && echo /usr/share/man/man8/flotilla.8.gz )

%post
if [ \$1 -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
	systemctl enable flotilla.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ \$1 -eq 1 ] && [ -f /etc/flotilla/config.toml ]; then
		systemctl --no-block start flotilla.service || :
	fi
fi
if [ \$1 -eq 1 ] && [ ! -f /etc/flotilla/config.toml ]; then
	echo "flotilla: register a runner to start the service (see /usr/share/doc/flotilla/README.packaging.md)"
fi

%preun
if [ \$1 -eq 0 ]; then
	if [ -d /run/systemd/system ] && systemctl --quiet is-active flotilla.service; then
		echo "flotilla: stopping the service; running jobs finish first."
		systemctl stop flotilla.service || :
	fi
	command -v systemctl >/dev/null 2>&1 &&
	    { systemctl disable flotilla.service >/dev/null 2>&1 || :; }
fi
:

%postun
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ \$1 -ge 1 ] && systemctl --quiet is-active flotilla.service; then
		echo "flotilla: restarting the service once its running jobs have finished"
		systemctl --no-block try-restart flotilla.service || :
	fi
fi
:
EOF
SDE=0
[ -n "${SOURCE_DATE_EPOCH:-}" ] && SDE=1
rpmbuild -bb --quiet \
    --define "_topdir $TMP/top" \
    --define "_rpmdir $TMP/rpms" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "_buildhost localhost" \
    --define "use_source_date_epoch_as_buildtime $SDE" \
    --define "clamp_mtime_to_source_date_epoch $SDE" \
    "$TMP/flotilla.spec" >"$TMP/rpmbuild.log" 2>&1 ||
    { cat "$TMP/rpmbuild.log" >&2; stage_die "rpmbuild failed"; }
RPM=$OUT_DIR/flotilla-$RPM_VERSION-$RELEASE.$ARCH.rpm
mv "$TMP/rpms/flotilla-$RPM_VERSION-$RELEASE.$ARCH.rpm" "$RPM"
echo "$RPM"
