# syntax=docker/dockerfile:1
# Production image for sverm. One image serves every role; docker-compose.yml picks the command:
#   web     uvicorn sverm.asgi:application ... --log-config sverm/uvicorn_logging.yaml (the default
#           CMD: Uvicorn workers, credentials in query strings redacted from its logs)
#   worker  celery -A sverm worker
#   beat    celery -A sverm.beat beat (Celery's configuration without Django's apps)
#   migrate python manage.py migrate --noinput
# The default CMD is the production server: it needs REDIS_URL (Celery runs the swarms, Redis
# carries the streams between workers). One container in the embedded mode (SQLite, no Redis)
# runs the embedded server instead, which starts the in-process executor:
#   docker run ... sverm python -m sverm.server -b 0.0.0.0 -p 8000 sverm.asgi:application
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SVERM_DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles

# An unprivileged user; /data (SQLite in embedded mode, the beat schedule) and the collected
# static files are the only paths it writes. A fresh named volume on /data inherits this owner.
RUN groupadd --system --gid 10001 sverm \
    && useradd --system --uid 10001 --gid sverm --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin sverm \
    && mkdir -p /data /app/staticfiles \
    && chown sverm:sverm /data /app/staticfiles

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself (sverm, accounts, swarms, templates_app, billing) and manage.py.
COPY . .
RUN pip install . \
    && rm -rf build *.egg-info

USER sverm

# Static assets for the admin and the API docs, served by WhiteNoise. The SECRET_KEY here exists
# only for this step (settings refuse to load without one outside DEBUG); it is not kept in the
# image, and DATABASE_URL/REDIS_URL stay unset so nothing is contacted.
RUN SECRET_KEY=build-only DEBUG=0 python manage.py collectstatic --noinput

EXPOSE 8000

# docker-compose.yml's web command and its reasons, less what Compose fills in: without --workers
# Uvicorn starts $WEB_CONCURRENCY workers, and trusts proxy headers from $FORWARDED_ALLOW_IPS
# (default 127.0.0.1 and ::1: nothing outside the container).
ENV WEB_CONCURRENCY=2
CMD ["uvicorn", "sverm.asgi:application", "--host=0.0.0.0", "--port=8000", \
     "--ws=websockets-sansio", "--lifespan=off", "--log-config=sverm/uvicorn_logging.yaml", \
     "--timeout-keep-alive=75", "--timeout-graceful-shutdown=20"]
