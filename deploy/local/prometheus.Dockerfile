# A Prometheus image for `make compose-test` on a machine that reaches no Docker registry: the real Prometheus
# server and promtool from Debian's `prometheus` package (copied in by deploy/compose_test.sh) on the local
# debootstrap base, laid out like prom/prometheus (entrypoint /bin/prometheus, data in /prometheus, user
# nobody), so docker-compose.yml's `command:` and volumes work unchanged. Not used where the registry is
# reachable: there the compose file's pinned prom/prometheus tag is pulled.
ARG BASE_IMAGE=local/debian-python:bookworm
FROM ${BASE_IMAGE}
COPY prometheus promtool /bin/
RUN mkdir -p /etc/prometheus /prometheus \
    && chown nobody:nogroup /prometheus
USER 65534:65534
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
