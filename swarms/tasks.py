"""Celery tasks: interfaces that take ids and call the executor."""

from celery import shared_task

from swarms.executor import execute_run


@shared_task(name="swarms.execute_run", acks_late=True, reject_on_worker_lost=True)
def execute_run_task(run_id: str) -> None:
    # Claiming is idempotent (queued -> running once), so a redelivered task is harmless.
    execute_run(run_id)
