#!/bin/sh
# Builds flotilla_VERSION_ARCH.deb from a build directory with plain
# dpkg-deb: no debian/ source package, no debhelper, no fakeroot (every
# file is owned by root through --root-owner-group).  The tree is
# stage.sh's; Depends comes from dpkg-shlibdeps run on the staged
# binaries (the library packages and minimum versions of the libraries
# they link), plus ca-certificates for TLS towards GitLab.
#
#   sh packaging/build-deb.sh VERSION BUILD_DIR OUT_DIR
#
# Environment: DEB_COMPRESS (xz, the default; gzip, zstd or none: xz
# takes about a minute for the 70 MB helper image), HELPER_TAR (another
# helper image tar), PKG_MAINTAINER, SOURCE_DATE_EPOCH.
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

COMPRESS=${DEB_COMPRESS:-xz}
MAINTAINER=${PKG_MAINTAINER:-flotilla developers <flotilla@example.org>}
case "$COMPRESS" in
xz|gzip|zstd|none) ;;
*) stage_die "DEB_COMPRESS=$COMPRESS: xz, gzip, zstd or none" ;;
esac
for t in dpkg-deb dpkg-shlibdeps; do
	command -v $t >/dev/null 2>&1 ||
	    stage_die "$t missing: apt-get install dpkg-dev"
done
stage_check_version "$VERSION" "$BUILD_DIR"
ARCH=$(dpkg --print-architecture)
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-deb.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP
# dpkg-shlibdeps wants a source tree: debian/control, and the package's
# files under debian/PACKAGE.
ROOT=$TMP/debian/flotilla
stage_tree "$VERSION" "$BUILD_DIR" "$ROOT" /lib/systemd/system \
    /etc/default/flotilla

mkdir -m 0755 "$ROOT/DEBIAN"
for s in postinst prerm postrm; do
	install -m 0755 "$PKG_TOP/packaging/deb/$s" "$ROOT/DEBIAN/$s"
done
echo /etc/default/flotilla >"$ROOT/DEBIAN/conffiles"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' |
    grep -vxF etc/default/flotilla | LC_ALL=C sort |
    xargs md5sum) >"$ROOT/DEBIAN/md5sums"

printf 'Source: flotilla\n\nPackage: flotilla\nArchitecture: any\n' \
    >"$TMP/debian/control"
# shellcheck disable=SC2046
shlibs=$(cd "$TMP" && dpkg-shlibdeps -O $(stage_elves debian/flotilla | sed 's/^/-e/') 2>"$TMP/shlibdeps.err") ||
    { cat "$TMP/shlibdeps.err" >&2; stage_die "dpkg-shlibdeps failed"; }
depends=$(echo "$shlibs" | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || stage_die "dpkg-shlibdeps found no dependencies"
rm -rf "$TMP/debian/control"
size=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)

cat >"$ROOT/DEBIAN/control" <<EOF
Package: flotilla
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: $depends, ca-certificates
Suggests: openssh-server, docker.io
Section: admin
Priority: optional
Description: autoscaling GitLab CI runner (docker-autoscaler executor)
 flotilla takes CI jobs from GitLab and runs each in Docker containers on
 a fleet of cloud instances that it sizes to the demand, following GitLab
 Runner's docker-autoscaler rules.  It reads GitLab Runner's config.toml.
 .
 Each cloud is a plugin process: fleeting-plugin-aws, -googlecompute,
 -azure, and -local (instances are sshd processes on this machine, which
 then needs openssh-server and docker.io).  The package includes the
 helper image loaded onto instances and a systemd unit.
EOF
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"
touch -d "@${SOURCE_DATE_EPOCH:-$(stat -c %Y "$ROOT/usr/bin/flotilla")}" "$ROOT"

DEB=$OUT_DIR/flotilla_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Z"$COMPRESS" --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
