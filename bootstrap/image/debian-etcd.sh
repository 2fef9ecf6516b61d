#!/usr/bin/env bash
# Fetches the Debian packages pinned in bootstrap/image/debian-packages.lock
# (etcd 3.5.30 from forky, 3.5.16 from trixie, 3.4.23 from bookworm, trixie's libc6 for the
# image) with `apt-get download`, checks each against its pinned SHA-256 and
# extracts it under .tools/.
#
#   bootstrap/image/debian-etcd.sh fetch [ARCH]   the pinned packages of ARCH (default:
#                                                 this machine's) into .tools/ (another
#                                                 architecture's into .tools/ARCH/)
#   bootstrap/image/debian-etcd.sh extract ARCH DEST DIR
#                                                 the pinned packages of one lock
#                                                 destination (etcd/3.5.16) into DIR
#   bootstrap/image/debian-etcd.sh pins [ARCH]    lock lines for what the suites serve
#                                                 now, for re-pinning
#
# Nothing outside the repository changes: apt runs with its own sources list,
# state, lists and cache under .tools/apt/ARCH/, installs nothing, and needs no
# root. The mirror is the one this machine's apt already uses for its own
# distribution (DEBIAN_MIRROR overrides it); the archive keyring is Debian's
# (DEBIAN_KEYRING overrides it), which on bookworm already holds trixie's keys.
# Debian serves only the current version of a package in each suite: when a
# pinned version is replaced there, `fetch` says so, and `pins` gives new lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

LOCK=bootstrap/image/debian-packages.lock
KEYRING=${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

die() {
  echo "debian-etcd.sh: $*" >&2
  exit 1
}

native_arch() {
  dpkg --print-architecture 2>/dev/null || die "needs dpkg (a Debian machine) to know its architecture"
}

# The lock's lines for one architecture: suite, destination, sha256, file.
lock_lines() {
  awk -v arch="$1" '$1 !~ /^#/ && NF == 5 && $1 == arch { print $2, $3, $4, $5 }' "$LOCK"
}

# The URI of the Debian archive this machine's apt uses for its own release.
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

# Runs apt-get or apt-cache with the project-local configuration of one
# architecture. Only the package indices are fetched (no translations, no
# DEP-11 metadata the machine's own apt configuration may ask for).
apt_local() {
  local tool=$1 arch=$2
  shift 2
  local dir=$REPO/.tools/apt/$arch
  "$tool" \
    -o "Dir::Etc::SourceList=$dir/sources.list" \
    -o "Dir::Etc::SourceParts=$dir/sources.list.d" \
    -o "Dir::State=$dir/state" \
    -o "Dir::State::Lists=$dir/lists" \
    -o "Dir::State::status=$dir/state/status" \
    -o "Dir::Cache=$dir/cache" \
    -o "APT::Architecture=$arch" \
    -o "APT::Architectures=$arch" \
    -o "Acquire::Languages=none" \
    -o "APT::Sandbox::User=root" \
    "$@"
}

# Writes the local apt configuration for the lock's suites and reads their indices.
apt_update() {
  local arch=$1 dir=.tools/apt/$1 uri suite
  [ -r "$KEYRING" ] || die "Debian's archive keyring $KEYRING is missing (apt-get install debian-archive-keyring, or set DEBIAN_KEYRING)"
  uri=$(mirror)
  mkdir -p "$dir/sources.list.d" "$dir/state" "$dir/lists/partial" "$dir/cache/archives/partial"
  : >"$dir/state/status"
  : >"$dir/sources.list"
  for suite in $(lock_lines "$(lock_arch "$arch")" | awk '{ print $1 }' | sort -u); do
    echo "deb [signed-by=$KEYRING target=Packages] $uri $suite main" >>"$dir/sources.list"
  done
  apt_local apt-get "$arch" update -qq || die "apt-get update of $(tr '\n' ';' <"$dir/sources.list") failed (see above)"
}

# The architecture whose lock lines `pins` starts from: ARCH's own, or amd64's
# package list for an architecture not pinned yet.
lock_arch() {
  if [ -n "$(lock_lines "$1")" ]; then echo "$1"; else echo amd64; fi
}

# `package_version_arch.deb` -> `package=version` (apt names epochs %3a).
apt_spec() {
  local base=${1%.deb}
  local package=${base%%_*} rest=${base#*_}
  local version=${rest%_*}
  echo "$package=${version//%3a/:}"
}

# Downloads what is missing or does not match its pin into .tools/apt/ARCH/debs
# and checks every pinned file there; extracts nothing.
download() {
  local arch=$1 lines=$2 debs=.tools/apt/$1/debs
  mkdir -p "$debs"
  local missing=() suite dest sha file
  while read -r suite dest sha file; do
    if ! echo "$sha  $debs/$file" | sha256sum --quiet --check --status 2>/dev/null; then
      rm -f "$debs/$file"
      missing+=("$(apt_spec "$file")")
    fi
  done <<<"$lines"
  if [ ${#missing[@]} -gt 0 ]; then
    apt_update "$arch"
    (cd "$debs" && apt_local apt-get "$arch" download -qq "${missing[@]}") || die "cannot download ${missing[*]} from the lock's suites: a pinned version Debian no longer serves is replaced by a newer one (\`$0 pins $arch\` prints the current ones to pin)"
  fi
  while read -r suite dest sha file; do
    echo "$sha  $debs/$file" | sha256sum --quiet --check >/dev/null 2>&1 ||
      die "$debs/$file does not match its pinned SHA-256 $sha in $LOCK: a changed pin or a tampered download; either needs a look (delete the file to fetch it again)"
  done <<<"$lines"
}

fetch() {
  local arch=${1:-$(native_arch)} native
  native=$(native_arch)
  local lines root
  lines=$(lock_lines "$arch")
  [ -n "$lines" ] || die "$LOCK pins no package for $arch; add its lines (\`$0 pins $arch\` prints them)"
  if [ "$arch" = "$native" ]; then root=.tools; else root=.tools/$arch; fi
  download "$arch" "$lines"

  # Each destination afresh, so a removed file never lingers.
  local dest
  for dest in $(awk '{ print $2 }' <<<"$lines" | sort -u); do
    rm -rf "$root/$dest.new"
    mkdir -p "$root/$dest.new"
    awk -v dest="$dest" '$2 == dest { print $4 }' <<<"$lines" | while read -r file; do
      dpkg-deb -x ".tools/apt/$arch/debs/$file" "$root/$dest.new"
    done
    rm -rf "${root:?}/$dest"
    mv "$root/$dest.new" "$root/$dest"
  done
  if [ "$arch" = "$native" ]; then check_runs "$root" "$lines"; fi
  echo "Debian packages for $arch checked against $LOCK and extracted into $root/"
}

# Extracts the pinned packages of one destination (etcd/3.5.16, say) of ARCH
# into DIR, leaving .tools alone (tests may be running its binaries).
extract() {
  local arch=$1 dest=$2 into=$3 lines
  lines=$(lock_lines "$arch" | awk -v dest="$dest" '$2 == dest')
  [ -n "$lines" ] || die "$LOCK pins no $dest for $arch"
  download "$arch" "$lines"
  mkdir -p "$into"
  awk '{ print $4 }' <<<"$lines" | while read -r file; do
    dpkg-deb -x ".tools/apt/$arch/debs/$file" "$into"
  done
}

# Debian builds etcd dynamically against glibc. Measured with `objdump -T`:
# every etcd, etcdctl and etcdutl of the lock needs at most GLIBC_2.34, and
# bookworm (this project's machines) has 2.36, so the host's own loader runs
# trixie's binaries; the image carries trixie's libc6 instead (build.sh). A
# machine with an older glibc fails here, naming what the binary needs.
check_runs() {
  local root=$1 lines=$2 dest binary output
  for dest in $(awk '$2 ~ /^etcd\// { print $2 }' <<<"$lines" | sort -u); do
    binary=$root/$dest/usr/bin/etcd
    output=$("$binary" --version 2>&1) || true
    if ! grep -qx "etcd Version: ${dest#etcd/}" <<<"$output"; then
      local needs=unknown
      if command -v objdump >/dev/null; then
        needs=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sort -uV | awk 'END { print }')
      fi
      die "$binary does not run here (it needs $needs; this machine has $(getconf GNU_LIBC_VERSION 2>/dev/null || echo 'an unknown libc')): $(awk 'NR == 1' <<<"$output")"
    fi
  done
}

pins() {
  local arch=${1:-$(native_arch)} from
  from=$(lock_arch "$arch")
  apt_update "$arch"
  local suite dest sha file package uri name size checksum version
  lock_lines "$from" | while read -r suite dest sha file; do
    package=${file%%_*}
    read -r uri name size checksum < <(apt_local apt-get "$arch" download --print-uris -qq "$package/$suite") ||
      die "$suite serves no $package for $arch"
    # An etcd release's directory is named for its upstream version.
    if [[ $dest == etcd/* ]]; then
      version=${name#*_}
      version=${version%_*}
      version=${version#*%3a}
      dest=etcd/${version%%-*}
    fi
    printf '%s  %-8s  %-11s  %s  %s\n' "$arch" "$suite" "$dest" "${checksum#SHA256:}" "$name"
  done
}

case "${1:-}" in
  fetch) fetch "${2:-}" ;;
  extract) [ $# -eq 4 ] || die "usage: $0 extract ARCH DEST DIR"; extract "$2" "$3" "$4" ;;
  pins) pins "${2:-}" ;;
  *) die "usage: $0 fetch|pins [ARCH], or $0 extract ARCH DEST DIR" ;;
esac
