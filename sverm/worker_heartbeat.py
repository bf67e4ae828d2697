"""The Celery workers' sign of life, which `/readyz` and `/metrics` read: a thread of each worker
writes the time into the cache (Redis in production) every SVERM_WORKER_HEARTBEAT_SECONDS, so
how old the newest heartbeat is says whether any worker is still there to execute runs.

A worker killed outright (SIGKILL, the OOM killer, a lost host) says nothing as it goes: its
heartbeat simply ages. The time is the wall clock, compared across processes and containers of
one host (or NTP-synchronised hosts)."""

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

CACHE_KEY = "sverm:worker-heartbeat"
# Long past any age that matters, so a stack whose workers are gone for good does not keep it.
CACHE_TTL_SECONDS = 86400


def worker_heartbeat_record(*, node: str) -> None:
    """This worker is alive now."""
    cache.set(CACHE_KEY, {"at": time.time(), "node": node}, timeout=CACHE_TTL_SECONDS)


def worker_heartbeat_age() -> tuple[float | None, str]:
    """Seconds since the newest heartbeat of any worker (None: none recorded) and the node
    that wrote it."""
    beat = cache.get(CACHE_KEY)
    if not isinstance(beat, dict) or "at" not in beat:
        return None, ""
    return max(time.time() - float(beat["at"]), 0.0), str(beat.get("node", ""))


class HeartbeatThread(threading.Thread):
    """Records the worker's heartbeat at once, then every SVERM_WORKER_HEARTBEAT_SECONDS until
    `stop()`. A failed write (Redis away) is logged and tried again at the next beat."""

    def __init__(self, node: str) -> None:
        super().__init__(name="sverm-worker-heartbeat", daemon=True)
        self.node = node
        self.stopping = threading.Event()

    def beat(self) -> None:
        try:
            worker_heartbeat_record(node=self.node)
        except Exception:
            logger.warning("could not record the worker heartbeat", exc_info=True)

    def run(self) -> None:
        while not self.stopping.wait(settings.SVERM_WORKER_HEARTBEAT_SECONDS):
            self.beat()

    def stop(self) -> None:
        self.stopping.set()


_thread: HeartbeatThread | None = None


def heartbeat_start(*, node: str) -> None:
    """Start this process's heartbeat (a worker, once it is ready to take tasks); the first
    one is recorded before this returns."""
    global _thread
    heartbeat_stop()
    _thread = HeartbeatThread(node)
    _thread.beat()
    _thread.start()


def heartbeat_stop() -> None:
    global _thread
    if _thread is not None:
        _thread.stop()
        _thread = None


class WorkerHeartbeatCollector:
    """`sverm_worker_heartbeat_age_seconds` at scrape time, with the Celery executor (absent
    until a worker has beaten once, and in the embedded mode, which has no worker)."""

    names = ("sverm_worker_heartbeat_age_seconds",)

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        if settings.SVERM_EXECUTOR != "celery":
            return []
        age, _node = worker_heartbeat_age()
        if age is None:
            return []
        return [
            GaugeMetricFamily(
                self.names[0], "Seconds since the newest Celery worker heartbeat.", value=age
            )
        ]
