#!/usr/bin/env bash
# Builds the etcd-aws container image: a static (musl) etcd-aws plus Debian's
# etcd, etcdctl and etcdutl and exactly the loader and libraries they need
# (from Debian's libc6), all from the packages pinned in debian-packages.lock,
# staged into a small build context and put on `FROM scratch`.
#
#   bootstrap/image/build.sh [IMAGE]     IMAGE defaults to etcd-aws:<version>,
#                                        also tagged etcd-aws:latest
#   ETCD_RELEASE=3.5.16                  which of the lock's etcd releases
#
# Needs the pinned .deb files (`make setup` fetches them) and Docker. Installs
# the musl target and musl-gcc when they are missing (aws-lc, under rustls, is
# C), and binutils (readelf) to read what the etcd binaries link against.
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGET=x86_64-unknown-linux-musl
# The Debian architecture of TARGET: the lock's lines the image is built from.
DEB_ARCH=amd64
ETCD_RELEASE=${ETCD_RELEASE:-3.5.16}
LOCK=bootstrap/image/debian-packages.lock
DEBS=.tools/apt/$DEB_ARCH/debs
STAGING=target/image-debs
CONTEXT=target/image-context
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' bootstrap/Cargo.toml | head -1)
IMAGE=${1:-etcd-aws:$VERSION}
# The agent's user in the image: numeric, since scratch has no useradd.
AGENT_UID=10001

rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
command -v musl-gcc >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools
}
command -v readelf >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binutils
}

started=$(date +%s)
# IMAGE_PROFILE=ci-image (make test) trades optimisation for a build that fits
# CI's budget; releases use the release profile.
profile=${IMAGE_PROFILE:-release}
cargo build --profile "$profile" --locked -p etcd-aws --target "$TARGET"
agent=target/$TARGET/$profile/etcd-aws

# The image's etcd and libc6 come straight from the pinned packages, each
# checked against the lock again here, not from whatever .tools/ holds now.
rm -rf "$STAGING"
mkdir -p "$STAGING/etcd" "$STAGING/libc6"
packages=$(awk -v arch="$DEB_ARCH" -v etcd="etcd/$ETCD_RELEASE" \
  '$1 == arch && ($3 == etcd || $3 == "libc6") { print $3, $4, $5 }' "$LOCK")
for dest in "etcd/$ETCD_RELEASE" libc6; do
  grep -q "^$dest " <<<"$packages" || { echo "build.sh: $LOCK pins no $DEB_ARCH package for $dest" >&2; exit 1; }
done
while read -r dest sha file; do
  echo "$sha  $DEBS/$file" | sha256sum --quiet --check >/dev/null 2>&1 || {
    echo "build.sh: $DEBS/$file is missing or does not match its pinned SHA-256 in $LOCK; run \`make setup\`" >&2
    exit 1
  }
  dpkg-deb -x "$DEBS/$file" "$STAGING/${dest%%/*}"
done <<<"$packages"
etcd_bin=$STAGING/etcd/usr/bin
# What the image's etcd must say it is (checked below, inside the image).
etcd_version=$ETCD_RELEASE

rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/rootfs/usr/local/bin" "$CONTEXT/rootfs/etc/ssl/certs" "$CONTEXT/data"
cp "$agent" "$CONTEXT/rootfs/usr/local/bin/etcd-aws"
for tool in etcd etcdctl etcdutl; do
  cp "$etcd_bin/$tool" "$CONTEXT/rootfs/usr/local/bin/$tool"
done

# Debian links etcd dynamically against glibc: the image gets the loader each
# tool asks for and the libraries they (and those libraries) need, taken from
# the pinned libc6 at the paths Debian installs them, and nothing else (today:
# ld-linux-x86-64.so.2 and libc.so.6). Debian's merged /usr layout (/lib64 ->
# usr/lib64) lets the loader's path in the binaries resolve.
libc_root=$STAGING/libc6
rootfs=$CONTEXT/rootfs
# Copies a file of the libc6 package, and what its symlinks point to, into the rootfs.
copy_from_libc6() {
  local path=$1
  while :; do
    [ -e "$libc_root/$path" ] || { echo "build.sh: libc6 has no $path" >&2; exit 1; }
    (cd "$libc_root" && cp -a --parents "$path" "$OLDPWD/$rootfs/")
    [ -L "$libc_root/$path" ] || break
    path=$(realpath --relative-to="$libc_root" -m "$libc_root/$(dirname "$path")/$(readlink "$libc_root/$path")")
  done
}
pending=("$agent" "$etcd_bin/etcd" "$etcd_bin/etcdctl" "$etcd_bin/etcdutl")
declare -A copied=()
while [ ${#pending[@]} -gt 0 ]; do
  elf=${pending[0]}
  pending=("${pending[@]:1}")
  interp=$(readelf -l "$elf" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p')
  if [ -n "$interp" ] && [ -z "${copied[$interp]:-}" ]; then
    copied[$interp]=1
    # Merged /usr: the package ships /lib64/... as usr/lib64/...
    if [ -e "$libc_root$interp" ]; then copy_from_libc6 "${interp#/}"; else copy_from_libc6 "usr$interp"; fi
  fi
  for lib in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -z "${copied[$lib]:-}" ] || continue
    copied[$lib]=1
    found=$(cd "$libc_root" && ls usr/lib/*-linux-gnu/"$lib" 2>/dev/null | head -1)
    [ -n "$found" ] || {
      echo "build.sh: $elf needs $lib, which the pinned libc6 does not ship: pin the Debian package that does in $LOCK and copy it here" >&2
      exit 1
    }
    copy_from_libc6 "$found"
    pending+=("$libc_root/$found")
  done
done
for dir in lib lib64; do
  if [ -d "$rootfs/usr/$dir" ]; then ln -s "usr/$dir" "$rootfs/$dir"; fi
done
# rustls reads the system roots for S3 and the other AWS endpoints.
cp -L /etc/ssl/certs/ca-certificates.crt "$CONTEXT/rootfs/etc/ssl/certs/"
# Names for the numeric user, for `ps` and `ls -l` on the host side.
printf 'root:x:0:0:root:/:/sbin/nologin\netcd:x:%s:%s:etcd-aws:/var/lib/etcd-aws:/sbin/nologin\n' \
  "$AGENT_UID" "$AGENT_UID" >"$CONTEXT/rootfs/etc/passwd"
printf 'root:x:0:\netcd:x:%s:\n' "$AGENT_UID" >"$CONTEXT/rootfs/etc/group"
# etcd and etcdutl write temporary files; the image has no other /tmp.
mkdir -p "$CONTEXT/rootfs/tmp"
chmod 1777 "$CONTEXT/rootfs/tmp"

image_id=$(docker build --quiet \
  --build-arg "VERSION=$VERSION" --build-arg "ETCD_VERSION=$etcd_version" \
  -f Dockerfile "$CONTEXT")

# An image whose tools cannot start (a library or the loader missing) is
# refused here, not when a container starts: each one runs inside it, as the
# image's user, before the image gets its names.
check() {
  local tool=$1 expected=$2 output
  shift 2
  if ! output=$(docker run --rm --network none --entrypoint "/usr/local/bin/$tool" "$image_id" "$@" 2>&1) ||
    ! grep -q "$expected" <<<"$output"; then
    echo "build.sh: $tool cannot run in the image (expected \"$expected\"): $output" >&2
    docker image rm "$image_id" >/dev/null 2>&1 || true
    exit 1
  fi
}
check etcd-aws "^etcd-aws $VERSION" --version
check etcd "^etcd Version: $etcd_version" --version
check etcdctl "^etcdctl version: $etcd_version" version
check etcdutl "^etcdutl version: $etcd_version" version
docker tag "$image_id" "$IMAGE"
docker tag "$image_id" etcd-aws:latest

size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "built $IMAGE (etcd-aws $VERSION, etcd $etcd_version from Debian): $((size / 1000000)) MB in $(($(date +%s) - started)) s"
