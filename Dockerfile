# The translation service, CPU image: `docker build -t eng-pol-translator .`
# Two stages: `build` makes a virtualenv with the `serve` extra (no torch, no training tools), `runtime`
# copies that virtualenv and the shipped model onto a fresh base: no compiler, no pip cache, non-root user.
# The CUDA variant is Dockerfile.cuda. `make compose-test` builds this file offline (see deploy/compose_test.sh).
#
# Build arguments:
#   BASE_IMAGE      a Debian-like image with python3 (>= 3.10) and its venv module.
#   PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX
#                   passed to pip as its own environment variables (unset: pip's defaults, i.e. PyPI);
#                   the offline compose test sets PIP_NO_INDEX=1 and PIP_FIND_LINKS=<a local wheelhouse>.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
# The project metadata and packages only (README.md is the package's readme); the model comes later.
COPY pyproject.toml README.md LICENSE ./
COPY service/ service/
COPY export/ export/
COPY bench/ bench/
RUN /opt/venv/bin/pip install ".[serve]" \
    && /opt/venv/bin/python -c "import onnxruntime, service.app; print('onnxruntime', onnxruntime.__version__)"

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="eng-pol-translator" \
      org.opencontainers.image.description="English->Polish attention seq2seq, ONNX Runtime (CPU), LibreTranslate-compatible API" \
      org.opencontainers.image.licenses="MIT (code); model trained on Tatoeba eng-pol, CC-BY 2.0 FR"
RUN groupadd --gid 10001 translator \
    && useradd --uid 10001 --gid translator --home-dir /app --no-create-home --shell /usr/sbin/nologin translator
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root models/eng-pol /app/models/eng-pol
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRANSLATOR_MODEL_DIR=/app/models/eng-pol \
    TRANSLATOR_HOST=0.0.0.0 \
    TRANSLATOR_PORT=8000 \
    TRANSLATOR_PROVIDER=cpu
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Ready = model loaded and warmed up (and not draining for shutdown); python, since the image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('TRANSLATOR_PORT', '8000'), timeout=4)"]
# Exec form: python is PID 1 and gets SIGTERM itself (graceful shutdown, TRANSLATOR_SHUTDOWN_GRACE_S).
CMD ["python", "-m", "service"]
