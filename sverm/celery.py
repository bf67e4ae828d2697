"""The Celery app, configured from Django settings (`CELERY_*`), and what a worker does besides
its tasks: its heartbeat for `/readyz` while it is up, and its metrics' bookkeeping as it ends."""

import os

from celery import Celery
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sverm.settings")

app = Celery("sverm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _heartbeat_start(sender=None, **kwargs) -> None:
    """Ready to take tasks: beat now and every SVERM_WORKER_HEARTBEAT_SECONDS (a thread of the
    worker's main process, whatever its pool)."""
    from sverm.worker_heartbeat import heartbeat_start

    heartbeat_start(node=getattr(sender, "hostname", "") or "celery")


@worker_shutdown.connect
def _heartbeat_stop(**kwargs) -> None:
    from sverm.worker_heartbeat import heartbeat_stop

    heartbeat_stop()


@worker_process_shutdown.connect
def _metrics_process_dead(**kwargs) -> None:
    """A prefork pool process leaves with os._exit, which runs no atexit handler: remove its
    live gauges here (sverm/metrics/multiprocess.py)."""
    from sverm.metrics import multiprocess

    multiprocess.mark_process_dead(multiprocess.process_identifier())
