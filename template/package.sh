#!/usr/bin/env bash
# Builds what a deployment ships, for each architecture asked for (default:
# arm64, the stack's default, and x86_64):
#
#   template/package.sh [arm64] [x86_64]
#
# into $DIST/<arch>/ (DIST defaults to dist):
#   etcd-aws-lifecycle.zip, etcd-aws-backup.zip   the functions, `bootstrap` in a zip
#   etcd-aws                                       the node agent
#   etcd-v<version>-linux-<amd64|arm64>.tar.gz     the etcd release the nodes install
#   lambda/<function>/bootstrap                    the functions' binaries, where
#                                                  `cargo lambda deploy --lambda-dir` looks
#
# Everything is built by `cargo lambda build` (zig as the C compiler and
# linker, for Amazon Linux 2023's glibc) from the project venv, where `make
# package` installs the pinned cargo-lambda and ziglang. The Rust target of
# each architecture is added with rustup when missing. Each binary is checked
# for its architecture and for the newest glibc symbol it needs; the etcd
# archive is checked against its pinned checksum (or, for a release this
# project does not build, against the release's SHA256SUMS).
#
#   PACKAGE_PROFILE=release        the cargo profile (release: what users deploy)
#   ETCD_VERSION=3.5.30            the etcd release of the archive
set -euo pipefail
cd "$(dirname "$0")/.."

DIST=${DIST:-dist}
PROFILE=${PACKAGE_PROFILE:-release}
ETCD_VERSION=${ETCD_VERSION:-3.5.30}
ARCHIVE_LOCK=template/generator/etcd-archives.lock
CARGO_LAMBDA=.venv/bin/cargo-lambda
# Amazon Linux 2023's glibc: the instances and provided.al2023 both run on it.
MAX_GLIBC=2.34
FUNCTIONS=(etcd-aws-lifecycle etcd-aws-backup)

die() {
  echo "package.sh: $*" >&2
  exit 1
}

[ -x "$CARGO_LAMBDA" ] || die "$CARGO_LAMBDA is missing: run \`make package\`, which installs the pinned cargo-lambda and ziglang into .venv"
# cargo finds `cargo lambda` on PATH, and cargo-lambda finds zig (python-zig) there.
export PATH="$PWD/.venv/bin:$PATH"

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(arm64 x86_64)

rust_target() {
  case "$1" in
    arm64) echo aarch64-unknown-linux-gnu ;;
    x86_64) echo x86_64-unknown-linux-gnu ;;
    *) die "architecture $1 is neither arm64 nor x86_64" ;;
  esac
}

# What readelf calls the machine of an ELF file of each architecture.
elf_machine() {
  case "$1" in
    arm64) echo AArch64 ;;
    x86_64) echo "Advanced Micro Devices X86-64" ;;
  esac
}

ensure_target() {
  local target=$1
  if ! command -v rustup >/dev/null; then
    rustc --print target-libdir --target "$target" >/dev/null 2>&1 && [ -d "$(rustc --print target-libdir --target "$target")" ] ||
      die "no rustup here to add the Rust target $target, and $(rustc -V) has no standard library for it: install that target's standard library for this rustc (or use rustup, then \`rustup target add $target\`)"
    return
  fi
  rustup target list --installed | grep -qx "$target" && return
  echo "package.sh: adding the Rust target $target (rustup target add)"
  rustup target add "$target" ||
    die "\`rustup target add $target\` failed (see above): it downloads the target's standard library from the Rust distribution server; run it by hand where that server is reachable, or copy the toolchain's lib/rustlib/$target from a machine that has it, then run make package again"
}

# The newest GLIBC_x.y symbol version a binary needs (empty when it needs none).
newest_glibc() {
  readelf -V --wide "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1
}

check_binary() {
  local arch=$1 binary=$2 machine needs
  [ -x "$binary" ] || die "cargo lambda built no $binary"
  machine=$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')
  [ "$machine" = "$(elf_machine "$arch")" ] ||
    die "$binary is built for $machine, not $arch: cargo lambda did not cross-compile (check \`cargo lambda build --target $(rust_target "$arch")\` by hand)"
  needs=$(newest_glibc "$binary")
  if [ -n "$needs" ] && [ "$(printf '%s\n%s\n' "$needs" "$MAX_GLIBC" | sort -V | tail -1)" != "$MAX_GLIBC" ]; then
    die "$binary needs glibc $needs, newer than Amazon Linux 2023's $MAX_GLIBC: it would not start there; build it with zig for glibc $MAX_GLIBC (cargo lambda build --target $(rust_target "$arch").$MAX_GLIBC)"
  fi
  echo "  $binary: $machine, $(stat -c %s "$binary") bytes, glibc ${needs:-none} or later"
}

# `bootstrap` alone in a deflated zip, as the provided.al2023 runtime wants it,
# with the binary's mode and time (as `cargo lambda deploy` zips it).
zip_bootstrap() {
  local binary=$1 zip=$2
  rm -f "$zip"
  .venv/bin/python - "$binary" "$zip" <<'EOF'
import os, sys, time, zipfile
binary, target = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", time.gmtime(os.stat(binary).st_mtime)[:6])
info.external_attr = (os.stat(binary).st_mode & 0xFFFF) << 16
info.compress_type = zipfile.ZIP_DEFLATED
with open(binary, "rb") as source, zipfile.ZipFile(target, "w") as archive:
    archive.writestr(info, source.read(), compresslevel=9)
EOF
}

etcd_archive() {
  local arch=$1 out=$2 release_arch name releases
  release_arch=$([ "$arch" = arm64 ] && echo arm64 || echo amd64)
  name=etcd-v$ETCD_VERSION-linux-$release_arch.tar.gz
  if awk -v arch="$release_arch" -v version="$ETCD_VERSION" '$1 == arch && $2 == version { found = 1 } END { exit !found }' "$ARCHIVE_LOCK"; then
    bootstrap/image/etcd-archive.sh "$release_arch" "$out"
  else
    releases=https://github.com/etcd-io/etcd/releases/download/v$ETCD_VERSION
    { [ -f "$out/$name" ] || curl -fsSL -o "$out/$name" "$releases/$name"; } ||
      die "cannot download $name from etcd's releases"
    curl -fsSL -o "$out/etcd-SHA256SUMS" "$releases/SHA256SUMS" || die "cannot download etcd $ETCD_VERSION's SHA256SUMS"
    (cd "$out" && grep " $name\$" etcd-SHA256SUMS | sha256sum --check --strict) ||
      die "$out/$name does not match etcd $ETCD_VERSION's SHA256SUMS: delete it and run again"
  fi
}

for arch in "${archs[@]}"; do
  target=$(rust_target "$arch")
  ensure_target "$target"
  out=$DIST/$arch
  mkdir -p "$out"
  started=$(date +%s)
  # `--release`, not `--profile release`: only with it does cargo lambda add
  # its release settings (-C target-cpu for Graviton2 or Haswell, and any of
  # strip, lto, codegen-units, panic the release profile leaves unset), so
  # the zips are what `cargo lambda build --release` gives a user.
  if [ "$PROFILE" = release ]; then profile_flag=(--release); else profile_flag=(--profile "$PROFILE"); fi
  # One cargo invocation for the three programs: built separately, their
  # shared dependencies would be compiled again for each feature set.
  cargo lambda build "${profile_flag[@]}" --locked --target "$target" --lambda-dir "$out/lambda" \
    -p etcd-aws-lifecycle -p etcd-aws-backup -p etcd-aws
  echo "package.sh: built for $arch ($target, profile $PROFILE) in $(($(date +%s) - started)) s:"
  check_binary "$arch" "$out/lambda/etcd-aws/bootstrap"
  cp "$out/lambda/etcd-aws/bootstrap" "$out/etcd-aws"
  for function in "${FUNCTIONS[@]}"; do
    check_binary "$arch" "$out/lambda/$function/bootstrap"
    zip_bootstrap "$out/lambda/$function/bootstrap" "$out/$function.zip"
    echo "  $out/$function.zip: $(stat -c %s "$out/$function.zip") bytes"
  done
  etcd_archive "$arch" "$out"
done
