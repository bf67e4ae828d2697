"""Liveness (`/healthz`) and readiness (`/readyz`: database, channel layer, broker if any, and
with the Celery executor a recent worker heartbeat)."""

import asyncio
import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from sverm.worker_heartbeat import worker_heartbeat_age

logger = logging.getLogger("sverm.health")

CHECK_TIMEOUT_SECONDS = 2.0


def check_database() -> None:
    """`SELECT 1`. With the pool (PostgreSQL), on a connection taken from it within
    CHECK_TIMEOUT_SECONDS rather than DB_POOL_TIMEOUT: a pool with no connection free fails the
    check (PoolTimeout) while the probe still waits for the answer."""
    pool = getattr(connection, "pool", None)
    if pool is None or connection.connection is not None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return
    pool.open()
    with pool.connection(timeout=CHECK_TIMEOUT_SECONDS) as pooled:
        pooled.execute("SELECT 1").fetchone()


async def _channel_layer_round_trip() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel("readyz.")
    await layer.send(channel, {"type": "readyz.ping"})
    message = await asyncio.wait_for(layer.receive(channel), CHECK_TIMEOUT_SECONDS)
    if message.get("type") != "readyz.ping":
        raise RuntimeError("channel layer returned another message")


def check_channel_layer() -> None:
    async_to_sync(_channel_layer_round_trip)()


def check_broker() -> None:
    from sverm.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)


def check_worker() -> None:
    """The newest Celery worker heartbeat is at most SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS
    old (sverm/worker_heartbeat.py): some worker is there to execute runs."""
    age, node = worker_heartbeat_age()
    limit = settings.SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS
    if age is None:
        raise RuntimeError("no Celery worker heartbeat recorded")
    if age > limit:
        raise RuntimeError(f"the newest Celery worker heartbeat ({node}) is {age:.1f} s old, "
                           f"over {limit:g} s")  # fmt: skip


def worker_heartbeat_report() -> dict | None:
    """The newest heartbeat's age (seconds, None when none is recorded), the limit and its
    worker; None without the Celery executor, where no worker exists."""
    if settings.SVERM_EXECUTOR != "celery":
        return None
    try:
        age, node = worker_heartbeat_age()
    except Exception:  # the check already says what is wrong
        age, node = None, ""
    return {
        "ageSeconds": None if age is None else round(age, 3),
        "maxAgeSeconds": settings.SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS,
        "node": node,
    }


def readiness() -> tuple[bool, dict[str, str]]:
    checks = {"database": check_database, "channelLayer": check_channel_layer}
    if not settings.CELERY_BROKER_URL.startswith("memory://"):
        checks["broker"] = check_broker
    # Runs execute on Celery workers: without one alive, nothing started here would run. The
    # embedded executor runs them in this process, which is answering.
    if settings.SVERM_EXECUTOR == "celery":
        checks["worker"] = check_worker
    results: dict[str, str] = {}
    for name, check in checks.items():
        started = time.monotonic()
        try:
            check()
            results[name] = "ok"
        except Exception as exc:
            logger.warning("readiness check %s failed: %s", name, exc)
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
        else:
            logger.debug("readiness check %s took %.3fs", name, time.monotonic() - started)
    return all(value == "ok" for value in results.values()), results


HealthSerializer = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(choices=["ok", "unavailable"]),
        "checks": serializers.DictField(
            child=serializers.CharField(),
            required=False,
            help_text="`ok` or `error: …` for each of `database`, `channelLayer`, `broker` (a "
            "broker is configured) and `worker` (the Celery executor: a recent worker "
            "heartbeat).",
        ),
        "workerHeartbeat": inline_serializer(
            "WorkerHeartbeat",
            {
                "ageSeconds": serializers.FloatField(
                    allow_null=True, help_text="Since the newest heartbeat (null: none yet)."
                ),
                "maxAgeSeconds": serializers.FloatField(
                    help_text="Older than this, `worker` fails "
                    "(SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS)."
                ),
                "node": serializers.CharField(help_text="The Celery worker that wrote it."),
            },
            required=False,
            help_text="With the Celery executor only.",
        ),
    },
)


class HealthzView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    uses_database = False  # no 503 for want of a connection (sverm/api/schema.py)

    @extend_schema(
        tags=["health"], summary="Liveness: the process answers", responses=HealthSerializer
    )
    def get(self, request):
        return Response({"status": "ok"})


class ReadyzView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["health"],
        summary="Readiness: database, channel layer and broker reachable, a Celery worker alive",
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request):
        ready, checks = readiness()
        body = {"status": "ok" if ready else "unavailable", "checks": checks}
        heartbeat = worker_heartbeat_report()
        if heartbeat is not None:
            body["workerHeartbeat"] = heartbeat
        return Response(body, status=200 if ready else 503)
