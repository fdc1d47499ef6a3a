# syntax=docker/dockerfile:1
#
# Desk in one image: `docker build -t desk .` then
#   docker run -p 8000:8000 -v desk-data:/data desk
# `desk serve` applies migrations before it listens. SQLite lives in /data by default;
# set DESK_DATABASE_URL (postgresql+psycopg://…) and DESK_REDIS_URL to run several containers as one desk.

# --- front-end dependencies: Node exists only in this stage --------------------------------------------------
FROM node:22-bookworm-slim AS vendor
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund \
 && mkdir -p vendor \
 && cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx-ext-ws/dist/ws.min.js vendor/

# --- the server ----------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

# Dependencies first, from the pinned lock file only: this layer is rebuilt only when the lock changes.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY migrations/ migrations/
COPY templates/ templates/
COPY static/ static/
COPY --from=vendor /build/vendor/ static/vendor/
COPY desk/ desk/
# Editable on purpose: Desk finds alembic.ini, migrations/, static/ and templates/ next to the `desk` package,
# so the package must be imported from /app/desk, not from a copy in site-packages.
RUN pip install --no-deps -e . \
 && python -m compileall -q desk migrations

# Code stays root-owned and read-only for the server; only /data is writable.
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin desk \
 && mkdir -p /data \
 && chown desk:desk /data
USER desk

ENV DESK_HOST=0.0.0.0 \
    DESK_PORT=8000 \
    DESK_DATABASE_URL=sqlite:////data/desk.db
VOLUME ["/data"]
EXPOSE 8000

# No curl in the slim image: the standard library does the probe. urlopen raises on anything but 2xx.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DESK_PORT', '8000'), timeout=4)"]

CMD ["desk", "serve"]
