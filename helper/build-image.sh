#!/bin/sh
# Build the helper image without a registry and without a Docker engine:
# a root filesystem assembled from this machine's installed Debian packages
# (busybox-static, git, ca-certificates, and the shared libraries they
# and flotilla-helper need), written as a `docker save` tar that
# `docker load` (or the manager, through the Engine API) takes as is.
#
#   sh helper/build-image.sh BIN OUT.tar VERSION
#
# BIN is build/bin/flotilla-helper; the image is tagged
# flotilla-helper:VERSION.  The output is deterministic for the same
# inputs: fixed mtimes (SOURCE_DATE_EPOCH, default 0), owner root, sorted
# entries.  Needs: sh, cp, ldd, python3 (standard library), dpkg.
set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 BIN OUT.tar VERSION" >&2
	exit 2
fi
BIN=$1
OUT=$2
VERSION=$3
NAME=flotilla-helper
BUSYBOX=${BUSYBOX:-/bin/busybox}
GIT=/usr/bin/git
GITCORE=/usr/lib/git-core
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

die() { echo "build-image: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN: no such program"
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing: install busybox-static"
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is not static: install busybox-static"
[ -x "$GIT" ] || die "$GIT missing: install git"
[ -r /etc/ssl/certs/ca-certificates.crt ] || die "no CA bundle: install ca-certificates"
ARCH=$(dpkg --print-architecture 2>/dev/null) || die "dpkg --print-architecture failed"

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-helper-root.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
trap 'exit 1' INT TERM HUP

# ---- the tree: merged /usr as Debian 12's ----
mkdir -p "$ROOT/usr/bin" "$ROOT/usr/sbin" "$ROOT/usr/lib" "$ROOT/usr/lib64" \
    "$ROOT/etc/ssl" "$ROOT/root" "$ROOT/tmp" \
    "$ROOT/usr/share/git-core/templates" "$ROOT/usr/lib/git-core"
ln -s usr/bin "$ROOT/bin"
ln -s usr/sbin "$ROOT/sbin"
ln -s usr/lib "$ROOT/lib"
ln -s usr/lib64 "$ROOT/lib64"
chmod 1777 "$ROOT/tmp"
chmod 700 "$ROOT/root"

# busybox and its applets (sh, ls, tar, ...) as links.
cp "$BUSYBOX" "$ROOT/usr/bin/busybox"
for a in $("$ROOT/usr/bin/busybox" --list-full); do
	[ -e "$ROOT/$a" ] || [ -L "$ROOT/$a" ] || ln -s /usr/bin/busybox "$ROOT/$a"
done

# git: the main program, the builtins' links, and the programs clone,
# fetch, checkout and submodules run over http(s).  No perl, no daemons,
# no docs.
cp "$GIT" "$ROOT/usr/bin/git"
ln -s ../../bin/git "$ROOT/usr/lib/git-core/git"
for f in "$GITCORE"/*; do
	b=${f##*/}
	[ "$b" = git ] && continue
	if [ -L "$f" ]; then
		cp -P "$f" "$ROOT/usr/lib/git-core/$b"
		continue
	fi
	case $b in
	git-remote-http|git-http-fetch|git-sh-i18n--envsubst|\
	git-submodule|git-sh-setup|git-sh-i18n)
		cp "$f" "$ROOT/usr/lib/git-core/$b" ;;
	*)
		# builtins hard-linked to git become links to it
		[ "$(stat -Lc %d:%i "$f")" = "$(stat -Lc %d:%i "$GIT")" ] &&
		    ln -s git "$ROOT/usr/lib/git-core/$b"
		;;
	esac
done
# Drop links whose target we did not take (git-remote-https -> ...http).
for f in "$ROOT/usr/lib/git-core"/*; do
	[ -e "$f" ] || rm -f "$f"
done

cp "$BIN" "$ROOT/usr/bin/flotilla-helper"
strip --strip-unneeded "$ROOT/usr/bin/flotilla-helper" 2>/dev/null || true

# The CA certificates: the bundle, the hashed links and what they name.
cp -a /etc/ssl/certs "$ROOT/etc/ssl/certs"
if [ -d /usr/share/ca-certificates ]; then
	mkdir -p "$ROOT/usr/share"
	cp -a /usr/share/ca-certificates "$ROOT/usr/share/ca-certificates"
fi

# Shared libraries of every ELF program in the tree, and the loader,
# copied (dereferenced) under the name the program asks for.
find "$ROOT/usr/bin" "$ROOT/usr/lib/git-core" -type f | while read -r f; do
	head -c 4 "$f" | grep -q ELF || continue
	ldd "$f" 2>/dev/null || true
done | awk '
	$2 == "=>" && $3 ~ /^\// { print $3 }
	$1 ~ /^\// { print $1 }
' | sort -u >"$ROOT/.libs"
while read -r lib; do
	dir=${lib%/*}
	mkdir -p "$ROOT$dir"
	cp -L "$lib" "$ROOT$lib"
done <"$ROOT/.libs"
rm -f "$ROOT/.libs"

cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$ROOT/etc/nsswitch.conf"
echo "$VERSION" >"$ROOT/etc/flotilla-helper-version"

# The image runs: every program finds its libraries (a chroot needs root).
if [ "$(id -u)" -eq 0 ]; then
	mkdir "$ROOT/dev"
	mknod -m 666 "$ROOT/dev/null" c 1 3
	chroot "$ROOT" /usr/bin/flotilla-helper --version >/dev/null ||
	    die "flotilla-helper does not run in the image"
	chroot "$ROOT" /usr/bin/git --version >/dev/null ||
	    die "git does not run in the image"
	rc=0
	chroot "$ROOT" /usr/lib/git-core/git-remote-http >/dev/null 2>&1 || rc=$?
	[ $rc -ne 127 ] || die "git-remote-http does not run in the image"
	rm -rf "${ROOT:?}/dev"	# the engine provides /dev
fi

# ---- the docker-save tar ----
mkdir -p "$(dirname "$OUT")"
"$PY" - "$ROOT" "$OUT" "$NAME" "$VERSION" "$ARCH" <<'PYEOF'
import hashlib, io, json, os, stat, sys, tarfile, tempfile

root, out, name, version, arch = sys.argv[1:6]
epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
created = "%04d-%02d-%02dT%02d:%02d:%02dZ" % __import__("time").gmtime(epoch)[:6]

def norm(ti):
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.mtime = epoch
    return ti

def layer(path):
    """The root filesystem as a tar: sorted, root-owned, fixed mtimes."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
        entries = []
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for n in sorted(dirs + files):
                entries.append(os.path.join(d, n))
        for full in sorted(entries, key=lambda p: os.path.relpath(p, root)):
            rel = os.path.relpath(full, root)
            ti = norm(t.gettarinfo(full, arcname=rel))
            if ti.isreg():
                with open(full, "rb") as f:
                    t.addfile(ti, f)
            else:
                t.addfile(ti)

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()

tmp = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(out)))
try:
    lpath = os.path.join(tmp, "layer.tar")
    layer(lpath)
    diff = sha256(lpath)
    cfg = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "Labels": {"org.opencontainers.image.title": name,
                       "org.opencontainers.image.version": version},
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]},
        "history": [{"created": created,
                     "created_by": "helper/build-image.sh " + version}],
    }
    cfg_bytes = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
    cfg_id = hashlib.sha256(cfg_bytes).hexdigest()
    # The legacy layer id (docker save's directory name).
    layer_id = hashlib.sha256((diff + cfg_id).encode()).hexdigest()
    manifest = [{"Config": cfg_id + ".json",
                 "RepoTags": ["%s:%s" % (name, version)],
                 "Layers": [layer_id + "/layer.tar"]}]
    legacy = {"id": layer_id, "created": created, "os": "linux",
              "architecture": arch, "config": cfg["config"]}
    repos = {name: {version: layer_id}}

    part = out + ".part"
    with tarfile.open(part, "w", format=tarfile.GNU_FORMAT) as t:
        def add_bytes(arc, data):
            ti = norm(tarfile.TarInfo(arc))
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
        d = norm(tarfile.TarInfo(layer_id))
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        t.addfile(d)
        add_bytes(layer_id + "/VERSION", b"1.0")
        add_bytes(layer_id + "/json", json.dumps(legacy, sort_keys=True).encode())
        ti = norm(t.gettarinfo(lpath, arcname=layer_id + "/layer.tar"))
        ti.mode = 0o644
        with open(lpath, "rb") as f:
            t.addfile(ti, f)
        add_bytes(cfg_id + ".json", cfg_bytes)
        add_bytes("manifest.json", json.dumps(manifest).encode())
        add_bytes("repositories", json.dumps(repos).encode())
    os.replace(part, out)
    print("%s:%s %s sha256:%s layer %d bytes" % (name, version, out, cfg_id,
                                                  os.path.getsize(lpath)))
finally:
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
PYEOF
