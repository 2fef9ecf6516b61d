#!/usr/bin/env bash
# Builds the etcd-aws container image of each architecture: the agent plus
# Debian's etcd, etcdctl and etcdutl and exactly the loader and libraries they
# need (from Debian's libc6), all from the packages pinned in
# debian-packages.lock, staged into a small build context and put on `FROM
# scratch`. Nothing runs inside the image to build it (only copies), so the
# arm64 image builds on an x86_64 machine without emulation.
#
#   bootstrap/image/build.sh [IMAGE]     IMAGE defaults to etcd-aws:<version>:
#                                        the amd64 image is IMAGE (and
#                                        etcd-aws:latest), the arm64 one
#                                        IMAGE-arm64 (and etcd-aws:latest-arm64)
#   IMAGE_ARCHS="amd64 arm64"            which architectures (default: both)
#   ETCD_RELEASE=3.5.30                  which of the lock's etcd releases
#
# amd64: a static (musl) etcd-aws built here; installs the musl target and
# musl-gcc when they are missing (aws-lc, under rustls, is C).
# arm64: the etcd-aws of `template/package.sh arm64` (cargo lambda and zig,
# linked against glibc, whose loader and libc come from the pinned arm64
# libc6 like etcd's). Its tools are run before the image gets its names: in a
# container when the kernel runs arm64 programs (a binfmt_misc handler, such
# as qemu-user-static's, is registered), else from the staged image files
# under qemu-aarch64-static with the image's root as their only library path.
#
# Needs the pinned .deb files (`make setup` fetches this machine's; another
# architecture's are fetched here) and Docker; binutils (readelf) reads what
# the binaries link against.
set -euo pipefail
cd "$(dirname "$0")/../.."

ETCD_RELEASE=${ETCD_RELEASE:-3.5.30}
LOCK=bootstrap/image/debian-packages.lock
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' bootstrap/Cargo.toml | head -1)
IMAGE=${1:-etcd-aws:$VERSION}
IMAGE_ARCHS=${IMAGE_ARCHS:-amd64 arm64}
# The agent's user in the image: numeric, since scratch has no useradd.
AGENT_UID=10001
NATIVE_ARCH=$(dpkg --print-architecture)

command -v readelf >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binutils
}

# Builds the static amd64 agent and prints its path.
musl_agent() {
  local target=x86_64-unknown-linux-musl
  rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
  command -v musl-gcc >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools
  } >&2
  # IMAGE_PROFILE=ci-image (make test) trades optimisation for a build that fits
  # CI's budget; releases use the release profile.
  local profile=${IMAGE_PROFILE:-release}
  cargo build --profile "$profile" --locked -p etcd-aws --target "$target" >&2
  echo "target/$target/$profile/etcd-aws"
}

build_image() {
local DEB_ARCH=$1
local DEBS=.tools/apt/$DEB_ARCH/debs
local STAGING=target/image-debs-$DEB_ARCH
local CONTEXT=target/image-context-$DEB_ARCH
local image=$IMAGE latest=etcd-aws:latest
if [ "$DEB_ARCH" != amd64 ]; then
  image=$IMAGE-$DEB_ARCH
  latest=etcd-aws:latest-$DEB_ARCH
fi

started=$(date +%s)
case "$DEB_ARCH" in
  amd64) agent=$(musl_agent) ;;
  arm64)
    # The same build as `make package` (one cargo invocation with the
    # functions, so nothing is compiled twice for another feature set).
    template/package.sh arm64 >&2
    agent=${DIST:-dist}/arm64/etcd-aws
    ;;
  *) echo "build.sh: no image for architecture $DEB_ARCH (amd64 or arm64)" >&2; exit 1 ;;
esac
if [ "$DEB_ARCH" != "$NATIVE_ARCH" ]; then
  # `make setup` fetches only this machine's packages.
  bootstrap/image/debian-etcd.sh fetch "$DEB_ARCH" >&2
fi

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

platform=()
# Only another architecture's image names its platform: the classic builder
# warns about --platform, and the native image is built as it always was
# (the Dockerfile's copies come first for the other one; see there).
if [ "$DEB_ARCH" != "$NATIVE_ARCH" ]; then platform=(--platform "linux/$DEB_ARCH"); fi
image_id=$(docker build --quiet "${platform[@]}" \
  --build-arg "VERSION=$VERSION" --build-arg "ETCD_VERSION=$etcd_version" \
  -f Dockerfile "$CONTEXT")

# An image whose tools cannot start (a library or the loader missing) is
# refused here, not when a container starts: each one runs inside it, as the
# image's user, before the image gets its names. Another architecture's image
# runs in a container only when the kernel can run its programs; otherwise its
# tools run from the staged files under user-mode emulation, with the image's
# root as their root for the loader and libraries, which finds what the image
# lacks just as a container would.
local how=container
if [ "$DEB_ARCH" != "$NATIVE_ARCH" ] && ! kernel_runs "$DEB_ARCH"; then
  how=emulated
  command -v "$(qemu_for "$DEB_ARCH")" >/dev/null || {
    echo "build.sh: the kernel cannot run $DEB_ARCH programs and $(qemu_for "$DEB_ARCH") is missing to check the image's tools: apt-get install --no-install-recommends qemu-user-static (make package-check does)" >&2
    docker image rm "$image_id" >/dev/null 2>&1 || true
    exit 1
  }
  echo "build.sh: no binfmt_misc handler runs $DEB_ARCH programs here, so the $DEB_ARCH image is not started as a container; its tools run from its files under $(qemu_for "$DEB_ARCH") instead" >&2
fi
check() {
  local tool=$1 expected=$2 output
  shift 2
  if [ "$how" = container ]; then
    output=$(docker run --rm --network none "${platform[@]}" --entrypoint "/usr/local/bin/$tool" "$image_id" "$@" 2>&1) || true
  else
    output=$("$(qemu_for "$DEB_ARCH")" -L "$rootfs" "$rootfs/usr/local/bin/$tool" "$@" 2>&1) || true
  fi
  if ! grep -q "$expected" <<<"$output"; then
    echo "build.sh: $tool cannot run in the $DEB_ARCH image ($how; expected \"$expected\"): $output" >&2
    docker image rm "$image_id" >/dev/null 2>&1 || true
    exit 1
  fi
}
check etcd-aws "^etcd-aws $VERSION" --version
check etcd "^etcd Version: $etcd_version" --version
check etcdctl "^etcdctl version: $etcd_version" version
check etcdutl "^etcdutl version: $etcd_version" version
docker tag "$image_id" "$image"
docker tag "$image_id" "$latest"

size=$(docker image inspect --format '{{.Size}}' "$image")
echo "built $image ($DEB_ARCH, etcd-aws $VERSION, etcd $etcd_version from Debian; tools checked: $how): $((size / 1000000)) MB in $(($(date +%s) - started)) s"
}

# Whether the kernel runs ARCH's programs (natively or through a registered
# binfmt_misc handler), as a container of that architecture needs.
kernel_runs() {
  local handler
  for handler in /proc/sys/fs/binfmt_misc/*; do
    [ -f "$handler" ] || continue
    # The handler's magic is the ELF header up to e_machine: 0xb7 is AArch64.
    if grep -qx enabled "$handler" && grep -q '^magic 7f454c460201010000000000000000000200b700' "$handler"; then
      [ "$1" = arm64 ] && return 0
    fi
  done
  return 1
}

qemu_for() {
  case "$1" in
    arm64) echo qemu-aarch64-static ;;
    *) echo "qemu-$1-static" ;;
  esac
}

for arch in $IMAGE_ARCHS; do
  build_image "$arch"
done
