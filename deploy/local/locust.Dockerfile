# A Locust image for `make compose-test` on a machine that reaches no Docker registry: locust from the local
# wheelhouse on the local debootstrap base, laid out like locustio/locust (entrypoint `locust`, user locust),
# so docker-compose.yml's `command:` works unchanged. Where the registry is reachable, the compose file's
# pinned locustio/locust tag is pulled instead.
ARG BASE_IMAGE=local/debian-python:bookworm
FROM ${BASE_IMAGE}
ARG LOCUST_VERSION=2.32.4
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/locust \
    && /opt/locust/bin/pip install "locust==${LOCUST_VERSION}" \
    && useradd --create-home --uid 1000 --user-group --shell /usr/sbin/nologin locust
ENV PATH=/opt/locust/bin:$PATH
USER 1000:1000
WORKDIR /home/locust
EXPOSE 8089 5557
ENTRYPOINT ["locust"]
