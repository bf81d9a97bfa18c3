# syntax=docker/dockerfile:1
# ZartsAlgo Ops image: one image for every process (web, migrate, Celery worker, beat);
# docker-compose.yml picks the command. The default CMD serves the site with gunicorn.

# --- builder: compile mysqlclient and resolve the dependencies from pyproject.toml ------------
FROM python:3.12-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# mysqlclient has no manylinux wheel: it builds against the MariaDB client headers,
# found through pkg-config. None of this reaches the final image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb-dev pkg-config gcc \
    && rm -rf /var/lib/apt/lists/*

# A venv is one directory the final stage can copy whole (same base image, same paths).
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY . .
# The pip cache mount keeps the compiled mysqlclient wheel between builds, so a source
# change does not recompile it. The project itself is then uninstalled again: the code runs
# from /app (settings' BASE_DIR must be the source tree, which holds templates/ and static/
# that are not packaged), and a second copy in site-packages could shadow it.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install . \
    && pip uninstall -y zartsalgo-ops

# --- final: runtime libraries, the venv and the source; no compiler ---------------------------
FROM python:3.12-slim

# PYTHONPATH=/app: gunicorn and celery import the project from the source tree whatever
# their working directory. WEB_CONCURRENCY is gunicorn's default worker count; (2 x CPUs) + 1
# is the usual sizing, so set it per host in the environment rather than rebuilding.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=zartsalgo.settings \
    WEB_CONCURRENCY=3

# Only the MariaDB client shared library that mysqlclient links against.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Source and collected static files stay owned by root: the app user can read but not
# rewrite its own code. Nothing at runtime writes under /app (MariaDB holds the data,
# beat keeps its schedule in /tmp).
COPY . .

# Static files are built into the image (served by WhiteNoise with the manifest storage that
# ENVIRONMENT=production selects). Settings refuse production without a >= 50-character
# SECRET_KEY and ALLOWED_HOSTS, so this one command gets throwaway values; they are not ENV
# or ARG, so they are not in the image's environment. The real ones come from the runtime
# environment (.env / docker-compose.yml).
RUN ENVIRONMENT=production \
    SECRET_KEY=build-time-placeholder-for-collectstatic-only-not-a-secret-0000 \
    ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput

USER app

EXPOSE 8000

# --timeout: a sync worker silent this long is killed and restarted (slow admin pages get
# 60 s; anything longer belongs in a Celery task). --graceful-timeout: time to finish
# in-flight requests on SIGTERM, inside Compose's stop grace period.
# /dev/shm for the worker heartbeat files: /tmp can be a slow overlay/disk in containers.
CMD ["gunicorn", "zartsalgo.wsgi:application", \
     "--bind", "0.0.0.0:8000", \
     "--timeout", "60", \
     "--graceful-timeout", "30", \
     "--keep-alive", "5", \
     "--max-requests", "1000", \
     "--max-requests-jitter", "100", \
     "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-"]
