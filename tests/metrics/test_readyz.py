"""`/readyz` with the Celery executor also needs a recent worker heartbeat: a worker beats from
the moment it is ready (Celery's `worker_ready` signal) until it shuts down, and readiness fails
once the newest beat is older than SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS. The embedded executor
has no worker, and no such check."""

import time

import pytest
from celery.signals import worker_ready, worker_shutdown
from django.core.cache import cache

from sverm.celery import app  # noqa: F401  (connects the worker signals' receivers)
from sverm.worker_heartbeat import CACHE_KEY, heartbeat_stop
from tests.metrics.conftest import scrape
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db

AGE = "sverm_worker_heartbeat_age_seconds"


class Consumer:
    """What Celery's `worker_ready` is sent by: the worker's consumer, named by its node."""

    hostname = "celery@worker-1"


@pytest.fixture
def celery_executor(settings):
    """The Celery executor (the broker stays in memory: no broker check), quick heartbeats."""
    settings.SVERM_EXECUTOR = "celery"
    settings.SVERM_WORKER_HEARTBEAT_SECONDS = 0.05
    settings.SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS = 0.5
    yield settings
    heartbeat_stop()


def test_the_embedded_executor_has_no_worker_check(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "channelLayer": "ok"}}
    assert AGE not in scrape().names()


def test_without_a_worker_heartbeat_celery_is_not_ready(celery_executor, client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["worker"] == "error: RuntimeError: no Celery worker heartbeat recorded"
    assert body["workerHeartbeat"] == {"ageSeconds": None, "maxAgeSeconds": 0.5, "node": ""}
    assert AGE not in scrape().names()


def test_a_ready_worker_beats_until_it_shuts_down(celery_executor, client):
    worker_ready.send(sender=Consumer())
    # Beating: ready at every look over several heartbeat intervals.
    for _ in range(5):
        response = client.get("/readyz")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["checks"] == {"database": "ok", "channelLayer": "ok", "worker": "ok"}
        beat = body["workerHeartbeat"]
        assert beat["node"] == "celery@worker-1"
        assert 0 <= beat["ageSeconds"] < beat["maxAgeSeconds"] == 0.5
        time.sleep(0.1)
    assert 0 <= scrape().total(AGE) < 0.5

    stopped = time.monotonic()
    worker_shutdown.send(sender=None)
    response = wait_for(
        lambda: (answer := client.get("/readyz")).status_code == 503 and answer,
        "readiness failing after the worker stopped",
        interval=0.05,
    )
    # Once the newest beat is past the limit, not before (the last beat may have come up to
    # one interval before the stop).
    assert time.monotonic() - stopped >= 0.5 - 0.05
    worker = response.json()["checks"]["worker"]
    assert worker.startswith("error: RuntimeError: the newest Celery worker heartbeat")
    assert "(celery@worker-1)" in worker and "over 0.5 s" in worker
    assert scrape().total(AGE) > 0.5


def test_a_heartbeat_from_another_clock_in_the_future_reads_as_fresh(celery_executor, client):
    cache.set(CACHE_KEY, {"at": time.time() + 5, "node": "celery@ahead"})
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["workerHeartbeat"]["ageSeconds"] == 0
