"""Queued runs whose start may have been lost on its way to a worker, sent again.

A run is committed first and its task sent to the broker after (on commit); the database is the
truth. A task can miss its worker: the broker was unreachable when the run was created, or a
Redis restarted without persistence forgot its queue. Such a run would stay `queued` forever, so
the reaper's pass sends the task again for a run queued longer than SVERM_STALE_AFTER_SECONDS.
A run that is only waiting behind busy workers gets a copy too, which finds nothing to claim
when its turn comes (claiming is once); so copies are spaced out: each after as long again as
the run has waited since it was created (1, 2, 4, 8... stale periods), a few per run whatever
the wait. `resume_requested_at` records when the last copy was sent.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from swarms import jobs
from swarms.models import Run, RunStatus

logger = logging.getLogger("sverm.executor")


def runs_redispatch_queued() -> list[str]:
    """Send the start of every queued run that is due for another (see the module); returns
    their ids."""
    stale_after = timedelta(seconds=settings.SVERM_STALE_AFTER_SECONDS)
    now = timezone.now()
    waiting = Run.objects.filter(status=RunStatus.QUEUED, created_at__lte=now - stale_after)
    due = []
    for run_id, created_at, sent_at in waiting.values_list(
        "pk", "created_at", "resume_requested_at"
    ):
        last = sent_at or created_at
        if now - last < max(stale_after, last - created_at):
            continue
        # Once per due time, whichever reaper gets there first.
        if Run.objects.filter(
            pk=run_id, status=RunStatus.QUEUED, resume_requested_at=sent_at
        ).update(resume_requested_at=now):
            due.append(run_id)
            logger.info("run %s still queued: its start is sent again", run_id)
            transaction.on_commit(lambda run_id=run_id: jobs.enqueue(jobs.EXECUTE_RUN, run_id))
    return due
