# The node agent as a container: a static etcd-aws, Debian's etcd, etcdctl and
# etcdutl, and the loader and libc they are linked against (from Debian's
# libc6), nothing else. Built from a context that bootstrap/image/build.sh
# stages from the pinned packages (run `make image`); see that script for what
# goes in and why.
#
# Run it with the host's network: etcd-aws binds etcd on the instance's private
# IP, which only exists in the host's network namespace.
FROM scratch

# The copies come first: Docker's classic builder gives the image of a step
# such as LABEL or ENV its own platform, and then refuses to copy onto it when
# building the image of another architecture (make image's arm64 one).
# Ownership is set here, not in the context, so a build by a non-root user
# still gives the data volume to the agent's user.
COPY --chown=0:0 rootfs/ /
COPY --chown=10001:10001 data/ /var/lib/etcd-aws/

ARG VERSION=dev
ARG ETCD_VERSION=unknown
LABEL org.opencontainers.image.title="etcd-aws" \
      org.opencontainers.image.description="Self-healing etcd cluster on an AWS autoscaling group: the node agent and etcd" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      io.etcd.version="${ETCD_VERSION}"

# The image has no shell and no other programs: PATH is where the agent finds
# etcd and etcdutl by name.
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    ETCD_DATA_DIR=/var/lib/etcd-aws/etcd

# The data dir is a subdirectory of the volume, not the mount point itself:
# a removed member's data is renamed aside beside it, and a mount point
# cannot be renamed.
VOLUME ["/var/lib/etcd-aws"]
EXPOSE 2379 2380 2381
USER 10001:10001
ENTRYPOINT ["etcd-aws"]
