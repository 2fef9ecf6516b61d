#!/usr/bin/env bash
# Builds the test node image: a Debian bookworm root filesystem that boots
# like an EC2 instance, with systemd as PID 1 and cloud-init reading its
# user-data from a NoCloud seed (the harness mounts one at
# /var/lib/cloud/seed/nocloud; tests/src/boot_node.rs), plus the AWS CLI,
# curl, unzip, tar, iproute2 and iptables the user-data and the harness use.
# It is imported with `docker import` (no image registry): a root filesystem
# made here by debootstrap, not a base image from elsewhere.
#
#   bootstrap/boot-image/build.sh          builds etcd-aws-boot:<hash> (and
#                                          etcd-aws-boot:latest) unless that
#                                          image already exists; prints its name
#   bootstrap/boot-image/build.sh pin      builds it and rewrites the lock from
#                                          what the suite serves now
#   bootstrap/boot-image/build.sh tag      prints the image name only
#
# <hash> is the SHA-256 of this script, the lock and the files copied into the
# image: nothing changed, nothing rebuilt.
#
# Why bookworm: this machine's Docker runs on cgroup v1 (hybrid), which
# trixie's systemd 257 refuses to boot on; bookworm's systemd 252 is also the
# release Amazon Linux 2023 ships.
#
# Pinned as far as Debian allows: a suite serves only the current version of
# each package, so debootstrap cannot be told versions. The lock instead lists
# every package the image holds, with its version and the SHA-256 of its .deb,
# and the build refuses an image whose packages differ from it (then `pin`,
# after reading what changed). Downloads stay in .tools/boot-image/debs, so a
# rebuild (a changed file under files/) fetches nothing. The mirror is the one
# this machine's apt uses for its own release (DEBIAN_MIRROR overrides it), the
# keyring Debian's (DEBIAN_KEYRING). Needs root (debootstrap chroots) and
# Docker; installs debootstrap from Debian's packages when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

SUITE=bookworm
ARCH=amd64
NAME=etcd-aws-boot
HERE=bootstrap/boot-image
LOCK=$HERE/packages.lock
FILES=$HERE/files
# What the user-data and the harness run, beyond debootstrap's minimal base
# (python3-cffi-backend by name: debootstrap does not resolve the virtual
# package python3-cryptography depends on).
INCLUDE=systemd,systemd-sysv,dbus,cloud-init,awscli,curl,ca-certificates,unzip,tar,iproute2,iptables,procps,python3-cffi-backend
CACHE=$REPO/.tools/boot-image/debs
WORK=$REPO/target/boot-image
KEYRING=${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

die() {
  echo "boot-image/build.sh: $*" >&2
  exit 1
}

image_tag() {
  local hash
  hash=$({
    cat "$0" "$LOCK" 2>/dev/null
    (cd "$FILES" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16)
  echo "$NAME:$hash"
}

# The URI of the Debian archive this machine's apt uses for its own release
# (as bootstrap/image/debian-etcd.sh finds it).
mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
    return
  fi
  local codename uri
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "cannot read this machine's Debian release from /etc/os-release; set DEBIAN_MIRROR to a Debian archive URI"
  uri=$(apt-get indextargets --format '$(REPO_URI)' "Release: $codename" 'Component: main' 'Created-By: Packages' 2>/dev/null | awk 'NR == 1')
  [ -n "$uri" ] || die "this machine's apt has no source for Debian $codename main to take the mirror from; set DEBIAN_MIRROR to a Debian archive URI"
  echo "$uri"
}

# "package version arch sha256" for every package installed in the root
# filesystem, the SHA-256 of the .deb debootstrap installed it from.
installed_packages() {
  local rootfs=$1 package version arch deb
  dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f '${Package} ${Version} ${Architecture}\n' | sort |
    while read -r package version arch; do
      deb=$CACHE/${package}_${version//:/%3a}_${arch}.deb
      [ -f "$deb" ] || die "no .deb for $package $version in $CACHE (debootstrap names them so)"
      echo "$package $version $arch $(sha256sum "$deb" | cut -d' ' -f1)"
    done
}

mode=${1:-build}
case "$mode" in
  build | pin) ;;
  tag) image_tag; exit 0 ;;
  *) die "usage: $0 [build|pin|tag]" ;;
esac

if [ "$mode" = build ]; then
  [ -f "$LOCK" ] || die "$LOCK is missing: create it with \`$0 pin\`"
  image=$(image_tag)
  if docker image inspect "$image" >/dev/null 2>&1; then
    docker tag "$image" "$NAME:latest"
    echo "$image is up to date (built from this script, $LOCK and $FILES as they are)" >&2
    echo "$image"
    exit 0
  fi
fi

[ "$(id -u)" = 0 ] || die "needs root: debootstrap installs the packages in a chroot"
[ -r "$KEYRING" ] || die "Debian's archive keyring $KEYRING is missing (apt-get install debian-archive-keyring, or set DEBIAN_KEYRING)"
command -v debootstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
} >&2

started=$(date +%s)
rootfs=$WORK/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs" "$CACHE"
log=$WORK/debootstrap.log
echo "debootstrap $SUITE ($ARCH) into $rootfs; log in $log" >&2
debootstrap --variant=minbase --arch="$ARCH" --include="$INCLUDE" --cache-dir="$CACHE" \
  --keyring="$KEYRING" "$SUITE" "$rootfs" "$(mirror)" >"$log" 2>&1 ||
  die "debootstrap failed; the end of $log: $(tail -5 "$log")"
bootstrapped=$(date +%s)

packages=$(installed_packages "$rootfs")
if [ "$mode" = pin ]; then
  {
    echo "# Every package of the test node image (bootstrap/boot-image/build.sh):"
    echo "# package, version, architecture and the SHA-256 of its .deb, as Debian $SUITE"
    echo "# served them when pinned. Rewritten by \`build.sh pin\`; the build refuses"
    echo "# an image whose packages differ."
    echo "$packages"
  } >"$LOCK"
  image=$(image_tag)
  echo "pinned $(wc -l <<<"$packages") packages in $LOCK" >&2
elif ! diff <(grep -v '^#' "$LOCK") <(echo "$packages") >"$WORK/lock.diff"; then
  die "Debian $SUITE now serves other packages than $LOCK pins (< pinned, > served now):
$(cat "$WORK/lock.diff")
The image would not be the pinned one. Read what changed, then re-pin with \`$0 pin\`."
fi

# What makes it a test node: cloud-init's NoCloud configuration, and no units
# that only make sense on a long-lived machine (apt's daily runs, periodic
# filesystem checks) or on a console.
cp -a "$FILES/." "$rootfs/"
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer getty@tty1.service; do
  ln -sfn /dev/null "$rootfs/etc/systemd/system/$unit"
done
# Each boot gets a machine id of its own, as each EC2 instance does.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
# What a booted node does not need: the package cache, indices and docs.
rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log \
  "$rootfs"/usr/share/man "$rootfs"/usr/share/info
find "$rootfs/usr/share/doc" -type f ! -name copyright -delete

# `docker import` records what a Dockerfile would: systemd is PID 1. It
# shuts down cleanly on SIGRTMIN+3, not on SIGTERM, and import cannot say so
# (no STOPSIGNAL change): a one-line build on the imported image does, so
# `docker stop` halts the node as a shutdown would.
imported=$NAME:imported
tar -C "$rootfs" --numeric-owner --sort=name -c . |
  docker import \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=docker' \
    --message "etcd-aws test node: Debian $SUITE, systemd, cloud-init (NoCloud), AWS CLI" \
    - "$imported" >/dev/null
# (Its output only on failure: the CLI's notice that the classic builder is
# deprecated is noise here.)
built=$(printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$imported" | docker build --quiet --tag "$image" - 2>&1) ||
  die "setting the stop signal on $imported failed: $built"
docker image rm "$imported" >/dev/null

# The tools the user-data runs must start in the image, before it gets its names.
versions=$(docker run --rm --network none --entrypoint /bin/sh "$image" -c \
  'aws --version && cloud-init --version && systemctl --version | head -1 && curl --version | head -1' 2>&1) || {
  docker image rm "$image" >/dev/null 2>&1 || true
  die "a tool of the image does not run: $versions"
}
docker tag "$image" "$NAME:latest"
rm -rf "$rootfs"

size=$(docker image inspect --format '{{.Size}}' "$image")
echo "built $image: $((size / 1000000)) MB, $(wc -l <<<"$packages") packages, in $(($(date +%s) - started)) s (debootstrap $((bootstrapped - started)) s)" >&2
tr '\n' ';' <<<"$versions" | sed 's/;$/\n/' >&2
echo "$image"
