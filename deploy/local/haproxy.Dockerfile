# The load balancer of deploy/compose.scale.yml: HAProxy from Debian's package on a Debian base (the local
# debootstrap image in `make compose-scale-test`, which reaches no Docker registry; debian:bookworm-slim
# elsewhere). The configuration is mounted: deploy/haproxy.cfg.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# policy-rc.d: the package's postinst must not start a haproxy inside the build
# hadolint ignore=DL3008
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
    && haproxy -vv | grep 'Available services : prometheus-exporter'
# the package's system user (its uid is whatever adduser gave it in this image)
# hadolint ignore=DL3066
USER haproxy
EXPOSE 8080 8404
# -W: master-worker (a reload keeps the listeners), -db: foreground, logs on stdout
ENTRYPOINT ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
