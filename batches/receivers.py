"""What batches do when runs end (`swarms.signals.run_ended`, connected in apps.py) and the
dispatch job's entry point: interfaces that take ids and call a service."""

import logging

from batches import services

logger = logging.getLogger(__name__)


def on_run_ended(sender, run_id: str, status: str, **kwargs) -> None:
    """A run's end committed: a pass of its batch (and of batches waiting for a run quota in
    its workspace). Never raises: the periodic pass makes any pass missed here."""
    try:
        services.batch_run_ended(run_id=run_id)
    except Exception:
        logger.exception("batches: run %s ended, but no pass was asked for", run_id)


def advance_batch(batch_id: str) -> None:
    """The dispatch job: one pass of the batch."""
    services.batch_advance(batch_id=batch_id)
