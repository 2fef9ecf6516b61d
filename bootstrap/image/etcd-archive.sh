#!/usr/bin/env bash
# Builds the etcd release archive the nodes install, from the pinned Debian
# packages, and checks it against its pinned SHA-256:
#
#   bootstrap/image/etcd-archive.sh ARCH OUT_DIR     ARCH: amd64 or arm64
#
# writes OUT_DIR/etcd-v<version>-linux-<ARCH>.tar.gz, laid out like etcd's own
# release archives (one directory holding etcd, etcdctl and etcdutl), which is
# what the stack's user data unpacks. The archive is reproducible (sorted
# entries, fixed owner, mode and time, gzip without a name or time), so the
# same packages always give the same bytes and the checksum can be pinned in
# template/generator/etcd-archives.lock, where the template takes its default
# EtcdSha256 from. A mismatch stops here: a changed package, a changed tool,
# or a pin to update after checking why (`ETCD_ARCHIVE_REPIN=1` prints the line
# to pin instead of failing).
set -euo pipefail
cd "$(dirname "$0")/../.."

ARCHIVE_LOCK=template/generator/etcd-archives.lock

die() {
  echo "etcd-archive.sh: $*" >&2
  exit 1
}

[ $# -eq 2 ] || die "usage: $0 amd64|arm64 OUT_DIR"
arch=$1
out=$2
case "$arch" in amd64 | arm64) ;; *) die "architecture $arch is neither amd64 nor arm64" ;; esac

# The release the lock pins for ARCH: its version and checksum.
read -r version sha < <(awk -v arch="$arch" '$1 !~ /^#/ && NF == 4 && $1 == arch { print $2, $3 }' "$ARCHIVE_LOCK") ||
  die "$ARCHIVE_LOCK pins no archive for $arch"
name=etcd-v$version-linux-$arch

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bootstrap/image/debian-etcd.sh extract "$arch" "etcd/$version" "$work/debs"
bin=$work/debs/usr/bin
for tool in etcd etcdctl etcdutl; do
  [ -x "$bin/$tool" ] || die "the Debian packages of etcd $version for $arch hold no usr/bin/$tool"
done
mkdir -p "$work/$name" "$out"
# Modes from this machine's umask would change the bytes.
chmod 0755 "$work/$name"
install -m 0755 "$bin/etcd" "$bin/etcdctl" "$bin/etcdutl" "$work/$name/"
tar --sort=name --format=ustar --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "$work" -cf - "$name" | gzip -n -9 >"$work/$name.tar.gz"

actual=$(sha256sum "$work/$name.tar.gz" | cut -d' ' -f1)
if [ "$actual" != "$sha" ]; then
  if [ "${ETCD_ARCHIVE_REPIN:-}" = 1 ]; then
    printf '%s  %s  %s  %s\n' "$arch" "$version" "$actual" "$name.tar.gz"
    exit 0
  fi
  die "$name.tar.gz has SHA-256 $actual, but $ARCHIVE_LOCK pins $sha: the Debian packages or this machine's tar/gzip changed; check why, then re-pin (ETCD_ARCHIVE_REPIN=1 $0 $arch DIR prints the line)"
fi
mv "$work/$name.tar.gz" "$out/$name.tar.gz"
echo "$out/$name.tar.gz: etcd $version for $arch, SHA-256 $sha (pinned in $ARCHIVE_LOCK)"
