# One image for every process of the platform; the process is chosen by the
# arguments after the `ppa` entrypoint:
#   docker run ppa-platform:latest api <service> --host 0.0.0.0 --port 8000
#   docker run ppa-platform:latest worker <service> --health-port 8081
# (see docker-compose.yml and deploy/k8s/ for the full list).
# Needs BuildKit (the default builder since Docker 23) for the RUN --mount lines.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install uv

WORKDIR /app

# 1) Third-party dependencies only, from the lock file: this layer is rebuilt
#    only when pyproject.toml or uv.lock change, not on every source edit.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-workspace

# 2) The workspace itself (root project, libs, services).
COPY pyproject.toml uv.lock ./
COPY libs/ ./libs/
COPY services/ ./services/
COPY src/ ./src/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# Unprivileged runtime user with a numeric id, so Kubernetes' runAsNonRoot can
# verify it. The embedded runtime's data dir (/app/.ppa by default) is the only
# place the app writes to; in the distributed runtime nothing is written locally.
RUN groupadd --system --gid 10001 ppa \
    && useradd --system --uid 10001 --gid ppa --home-dir /home/ppa --create-home --shell /usr/sbin/nologin ppa \
    && mkdir -p /app/.ppa \
    && chown ppa:ppa /app/.ppa

ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PPA_ENV=prod

USER 10001:10001

# API processes listen on 8000, workers serve /livez, /readyz and /metrics on 8081.
EXPOSE 8000 8081

ENTRYPOINT ["ppa"]
CMD ["--help"]
