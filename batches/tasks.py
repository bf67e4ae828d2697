"""Celery tasks: interfaces that take ids and call a service, sent by name (batches/services.py
ADVANCE_BATCH) or by Celery beat (sverm/periodic.py)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from batches import services


# A pass is idempotent (it changes only what it finds to change, under the batch's lock), so a
# redelivered or retried task does no harm.
@shared_task(
    name=services.ADVANCE_BATCH,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=3,
)
def advance_batch_task(batch_id: str) -> None:
    services.batch_advance(batch_id=batch_id)


@shared_task(name=services.ADVANCE_OPEN_BATCHES)
def advance_open_batches_task() -> int:
    """A pass of every batch that has not ended: what a lost signal or a refused quota left."""
    return services.batches_advance_open()
