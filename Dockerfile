# syntax=docker/dockerfile:1
# dicomcast container image. Build:  docker build -t dicomcast:0.1.0 .
# Configuration comes only from the environment and Key Vault at run time (nothing is baked in);
# `dicomcast run` brings the store to the newest schema before it syncs (PostgreSQL under an
# advisory lock). Exec-form ENTRYPOINT: dicomcast is PID 1 and receives SIGTERM.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first, from exact pins, so code changes reuse this layer.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY dicomcast ./dicomcast
COPY migrations ./migrations
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/pip check

FROM python:3.11-slim
LABEL org.opencontainers.image.title="dicomcast" \
      org.opencontainers.image.description="Keeps a FHIR server in step with a DICOM server's change feed" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --no-log-init --uid 10001 --user-group \
        --home-dir /var/lib/dicomcast --create-home --shell /usr/sbin/nologin dicomcast
COPY --from=build /opt/venv /opt/venv
# The default SQLite store (sqlite:///dicomcast.db) lands here; use PostgreSQL in production.
WORKDIR /var/lib/dicomcast
USER 10001:10001
ENTRYPOINT ["dicomcast"]
CMD ["run"]
