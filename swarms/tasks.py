"""Celery tasks: interfaces that take ids and call the executor or a service. They are sent by
name through swarms/jobs.py, and the periodic ones are declared in sverm/periodic.py."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from swarms import jobs
from swarms.executor import execute_run
from swarms.periodic import retention_apply, stale_runs_recover
from swarms.webhooks.delivery import webhook_attempt


# One retry policy: a lost worker redelivers the task (acks late), and a database that is briefly
# unreachable before the run is claimed is retried with backoff. Claiming is idempotent (queued ->
# running once), so a redelivered or retried task never runs a run twice.
@shared_task(
    name=jobs.EXECUTE_RUN,
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
@shared_task(name=jobs.DELIVER_WEBHOOK, ignore_result=True)
def deliver_webhook_task(run_id: str, message_id: str, attempt: int, manual: bool = False) -> None:
    webhook_attempt(run_id, message_id, attempt, manual)


@shared_task(name="swarms.reap_stale_runs")
def reap_stale_runs_task() -> list[str]:
    """Resume (or fail) runs whose worker stopped sending heartbeats, and send again the start of
    runs queued for long (it may not have reached the broker)."""
    return stale_runs_recover()


@shared_task(name="swarms.prune_retention")
def prune_retention_task() -> dict:
    """Prune expired runs' events and output, purge the expired trash."""
    return retention_apply()
