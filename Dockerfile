# syntax=docker/dockerfile:1.7
# Platform image: the recsys package with the API, monitor and rollback
# services and the MLflow server. The PyFlink stream jobs have their own
# environment (requirements/flink.lock) and are not in this image.
#
#   docker build -t recsys:dev .
#   docker run --rm -p 8000:8000 recsys:dev                      # API
#   docker run --rm recsys:dev python -m monitoring              # monitor
#
# Base image pinned to an exact Python patch release and Debian release.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Metadata and the lock first; every dependency version comes from the lock
# (a constraint file), so the image matches what CI tested.
COPY pyproject.toml README.m[d] ./
COPY requirements/main.lock requirements/main.lock
COPY recsys ./recsys
COPY feature_repo ./feature_repo
COPY stream_jobs ./stream_jobs
COPY retrieval ./retrieval
COPY ranking ./ranking
COPY api ./api
COPY monitoring ./monitoring
COPY rollback ./rollback

RUN pip install -c requirements/main.lock . \
    && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="recsys-platform" \
      org.opencontainers.image.description="Real-time recommendation platform: API, drift monitor, rollback service, MLflow server" \
      org.opencontainers.image.licenses="Apache-2.0"

# libgomp1: OpenMP runtime that LightGBM and implicit load at import time.
# Unpinned on purpose: it follows the security updates of the pinned Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 recsys \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/recsys --create-home \
       --shell /usr/sbin/nologin recsys \
    && mkdir -p /var/lib/recsys/state /var/lib/recsys/data /var/lib/recsys/mlflow-artifacts \
    && chown -R 10001:10001 /var/lib/recsys

COPY --from=builder /opt/venv /opt/venv

# Settings come from RECSYS_* variables (recsys/settings.py). In a container
# nothing is started on the side: Redis, the broker and MLflow are services.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECSYS_API_HOST=0.0.0.0 \
    RECSYS_API_PORT=8000 \
    RECSYS_STATE_DIR=/var/lib/recsys/state \
    RECSYS_DATA_DIR=/var/lib/recsys/data \
    RECSYS_BROKER_AUTOSTART=false \
    RECSYS_REDIS_AUTOSTART=false \
    RECSYS_MLFLOW_AUTOSTART=false \
    HEALTHCHECK_URL=http://127.0.0.1:8000/health

WORKDIR /home/recsys
USER 10001:10001

EXPOSE 8000

# No curl in the image: the standard library does the probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]

CMD ["python", "-m", "api"]
