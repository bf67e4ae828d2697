"""Celery tasks: interfaces that take ids and call the executor."""

import logging

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerUnreachable

from sverm.api.errors import ServiceUnavailable
from swarms.executor import execute_run

logger = logging.getLogger("sverm.executor")
# What a 503 for an unreachable broker tells the client to wait before trying again.
BROKER_RETRY_AFTER_SECONDS = 5


class RunStartTask(Task):
    """A run's start: the run is committed before it is sent (on commit), so a broker that cannot
    be reached then fails nothing: the run stays queued, and the reaper sends its start again
    (swarms/services/dispatch.py). The request that created it still answers 201."""

    def apply_async(self, args=None, kwargs=None, **options):
        try:
            return super().apply_async(args, kwargs, **options)
        except BrokerUnreachable as error:
            logger.warning(
                "run %s: its start was not sent, the broker is unreachable (%s); the reaper "
                "sends it again", (args or [None])[0], error,
            )  # fmt: skip
            return None


class WebhookAttemptTask(Task):
    """A webhook attempt: sent when asked (a manual redelivery, a retry's schedule), so a broker
    that cannot be reached answers the request 503 with nothing recorded, not 500."""

    def apply_async(self, args=None, kwargs=None, **options):
        try:
            return super().apply_async(args, kwargs, **options)
        except BrokerUnreachable as error:
            raise ServiceUnavailable(
                "The task queue is unreachable, so nothing was sent; try again shortly.",
                headers={"Retry-After": str(BROKER_RETRY_AFTER_SECONDS)},
            ) from error


# One retry policy: a lost worker redelivers the task (acks late), and a database that is briefly
# unreachable before the run is claimed is retried with backoff. Claiming is idempotent (queued ->
# running once), so a redelivered or retried task never runs a run twice.
@shared_task(
    base=RunStartTask,
    name="swarms.execute_run",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=3,
)
def execute_run_task(run_id: str, resume: bool = False) -> None:
    execute_run(run_id, resume=resume)


# One webhook delivery attempt; the attempt itself records its outcome and schedules the next
# one (countdown), so the task is not retried by Celery.
@shared_task(base=WebhookAttemptTask, name="swarms.deliver_webhook", ignore_result=True)
def deliver_webhook_task(run_id: str, message_id: str, attempt: int, manual: bool = False) -> None:
    from swarms.webhooks import webhook_attempt

    webhook_attempt(run_id, message_id, attempt, manual)


@shared_task(name="swarms.reap_stale_runs")
def reap_stale_runs_task() -> list[str]:
    """Celery beat, every 30 s: resume (or fail) runs whose worker stopped sending heartbeats,
    and send again the start of runs queued for long (it may not have reached the broker)."""
    from swarms.services.dispatch import runs_redispatch_queued
    from swarms.services.lifecycle import runs_reap_stale

    reaped = runs_reap_stale()
    runs_redispatch_queued()
    return reaped


@shared_task(name="swarms.prune_retention")
def prune_retention_task() -> dict:
    """Celery beat, hourly: prune expired runs' events and output, purge the expired trash."""
    from swarms.services.retention import retention_enforce

    return retention_enforce().as_dict()
