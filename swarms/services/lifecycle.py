"""A run's life after its creation: the executor's leases and records, the reaper, its end.

Each attempt at executing a run holds a lease: the run's `attempt` number when it claimed the
run. Every write an attempt makes (events, steps and their ledger rows, heartbeats, the result)
checks the lease under the run row's lock and is refused with LeaseLost once another attempt
has taken the run over, so two attempts of one run never both charge or emit. `run_end` is the
one way a run ends (finished, failed or cancelled).
"""

import copy
import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import UsageRecord
from swarms import jobs
from swarms.engine import RunResult, Step
from swarms.engine.events import RUN_FAILED
from swarms.models import Run, RunEvent, RunStatus, RunStep, RunStepStatus
from swarms.services.recorders import (
    EventTuple,
    recorder_for,
    run_events_append,
    run_update_returning,
)
from swarms.signals import run_ended
from swarms.webhooks.delivery import webhook_schedule

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This attempt no longer holds the run (it was resumed elsewhere, or it ended)."""


def run_claim(*, run_id: str) -> int | None:
    """queued -> running, exactly once: the lease (1) of the first attempt, or None when the
    run is not queued any more (a redelivered task finds nothing to claim)."""
    now = timezone.now()
    return run_update_returning(
        runs=Run.objects.filter(pk=run_id, status=RunStatus.QUEUED),
        # A run queued again after a pause for approvals keeps when it first started.
        values={"status": RunStatus.RUNNING, "started_at": Coalesce("started_at", Value(now)),
                "heartbeat_at": now, "attempt": F("attempt") + 1},
        field="attempt",
    )  # fmt: skip


def _stale_filter(cutoff: datetime) -> Q:
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)


def runs_silent_filter(*, now: datetime | None = None) -> Q:
    """Running runs whose worker has been silent longer than SVERM_STALE_AFTER_SECONDS: those
    the reaper takes for lost (the admin's "stuck" filter shows them)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.SVERM_STALE_AFTER_SECONDS)
    return Q(status=RunStatus.RUNNING) & _stale_filter(cutoff)


def run_resume_claim(*, run_id: str) -> int | None:
    """Take over a running run whose worker went silent: the next lease, or None when the run
    is not stale any more (another attempt beat us to it, or its worker came back), it ended,
    or it has used all its attempts. Calls the lost attempt left in flight become
    `interrupted`: what they reserved stays held against the budget."""
    stale_after = timedelta(seconds=settings.SVERM_STALE_AFTER_SECONDS)
    with transaction.atomic():
        run = (
            Run.objects.select_for_update()
            .filter(
                pk=run_id,
                status=RunStatus.RUNNING,
                attempt__lt=settings.SVERM_RUN_MAX_ATTEMPTS + F("pauses"),
            )
            .filter(_stale_filter(timezone.now() - stale_after))
            .only("attempt")
            .first()
        )
        if run is None:
            return None
        lease = run.attempt + 1
        Run.objects.filter(pk=run_id).update(attempt=lease, heartbeat_at=timezone.now())
        RunStep.objects.filter(run_id=run_id, status=RunStepStatus.RESERVED).update(
            status=RunStepStatus.INTERRUPTED, updated_at=timezone.now()
        )
    return lease


def run_heartbeat(*, run_id: str, lease: int | None = None) -> bool:
    """A sign of life from the attempt holding the run; False when it holds it no more."""
    runs = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING)
    if lease is not None:
        runs = runs.filter(attempt=lease)
    return bool(runs.update(heartbeat_at=timezone.now()))


def run_record(
    *, run: Run, lease: int, steps: list[Step], events: list[EventTuple]
) -> list[RunEvent]:
    """What an attempt of a run reports, in one transaction under its lease (LeaseLost once it
    holds the run no more): call checkpoints (a settled one with its ledger row, so a crash
    never leaves one without the other: a call charged but replayed as unpaid, or paid twice)
    and events `(type, agent_id, data)`. The executor calls this for every batch of a run; the
    recorder (recorders.py) is the connection's, one statement on PostgreSQL."""
    rows = recorder_for(connection, steps=steps).record(
        run=run, lease=lease, steps=steps, events=events
    )
    if rows is None:
        raise LeaseLost(f"run {run.pk} is no longer held by attempt {lease}")
    return rows


def run_step_record(*, run: Run, lease: int, step: Step) -> None:
    """Put a call's checkpoint on record for the attempt holding the run."""
    run_record(run=run, lease=lease, steps=[step], events=[])


@transaction.atomic
def run_event_add(
    *, run_id: str, type: str, agent_id: str, data: dict, lease: int | None = None
) -> RunEvent:
    """Append the next numbered event (seq 1, 2, 3…) and fold progress into the run row; with
    a lease, only while that attempt holds the run (LeaseLost otherwise)."""
    held = None if lease is None else Q(attempt=lease, status=RunStatus.RUNNING)
    rows = run_events_append(run_id=run_id, events=[(type, agent_id, data)], where=held)
    if rows is None:
        if lease is not None:
            raise LeaseLost(f"run {run_id} is no longer held by attempt {lease}")
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    return rows[0]


# ---------------------------------------------------------------------------------------------
# How runs end
# ---------------------------------------------------------------------------------------------
def run_end(
    *,
    run_id: str,
    where: Q,
    changes: dict[str, Any],
    terminal: tuple[str, dict] | None,
    lease: int | None = None,
    run: Run | None = None,
) -> bool:
    """End a run: its row gets `changes` (the terminal status and what goes with it) and its
    terminal event `(type, data)` is appended, together, so a run never has its last event
    without its status or the other way round (whoever reads one sees both, and a crash leaves
    neither); its webhook is scheduled once that commits. Only a run matching `where` (the
    states it may end from) and, with a lease, held by that attempt; returns whether it ended
    it.

    An attempt ending its run (`lease` and `run`, its copy of the row, which also spares
    reading the row again for the workspace stream's status and the webhook URL) writes through
    its recorder, like its other batches (one statement on PostgreSQL), whose condition, that
    the attempt holds the run and it is running, is then `where`'s. Anyone else (a cancel, the
    reaper, a run that broke outside the engine) writes through the ORM, in one transaction."""
    events = [] if terminal is None else [(terminal[0], "", terminal[1])]
    final = None
    if run is not None:
        final = copy.copy(run)
        for name, value in changes.items():
            setattr(final, name, value)
    if lease is not None and final is not None:
        # The run-ending batch of a running attempt: atomic by itself.
        rows = recorder_for(connection).record(
            run=final, lease=lease, steps=[], events=events, ending=changes
        )
    else:
        if lease is not None:
            where &= Q(attempt=lease)
        with transaction.atomic():
            rows = run_events_append(
                run_id=run_id, events=events, where=where, changes=changes, run=final
            )
    if rows is None:
        return False
    if run is None or run.webhook_url:
        transaction.on_commit(lambda: webhook_schedule(run_id), robust=True)
    status = changes.get("status", "")
    transaction.on_commit(lambda: _announce_end(run_id, status), robust=True)
    return True


def _announce_end(run_id: str, status: str) -> None:
    for receiver, error in run_ended.send_robust(sender=Run, run_id=run_id, status=status):
        if isinstance(error, Exception):
            logger.error("run_ended receiver %r failed for %s", receiver, run_id, exc_info=error)


def run_finish(
    *,
    run_id: str,
    result: RunResult,
    lease: int | None = None,
    terminal: tuple[str, dict] | None = None,
    run: Run | None = None,
) -> bool:
    """Record the engine's result (the cost is the ledger's, which the engine reported) and its
    terminal event (see run_end): a resumed attempt never ends a run twice. Does nothing when
    the run ended meanwhile or, with a lease, another attempt holds it; returns whether it did.
    `run` is the attempt's copy of the row."""
    changes: dict[str, Any] = {
        "status": result.status,
        "output": result.output,
        "error_code": result.error_code or "",
        "error_message": result.error_message or "",
        "current_cost_usd": result.total_cost_usd,
        "agents_active": 0,
        "completed_at": timezone.now(),
    }
    if result.status == RunStatus.COMPLETED:
        changes["progress"] = 1.0
    return run_end(
        run_id=run_id,
        where=Q(status=RunStatus.RUNNING),
        changes=changes,
        terminal=terminal,
        lease=lease,
        run=run,
    )


def run_fail(
    *,
    run_id: str,
    code: str,
    message: str,
    only_if_stale_before: datetime | None = None,
    lease: int | None = None,
    cost_usd: Decimal | None = None,
) -> bool:
    """Fail a run the engine could not report on (it never started, broke outside the engine,
    or its worker was lost), with its `run.failed` event (see run_end) and, when given, the cost
    it ends with. Returns whether it did; a run that finished meanwhile, or (with a lease) that
    another attempt holds, is left."""
    where = Q(status__in=[RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.AWAITING_BUDGET])
    if only_if_stale_before is not None:
        # The reaper's check and write are one statement: a heartbeat in between wins.
        where &= _stale_filter(only_if_stale_before)
    changes: dict[str, Any] = {
        "status": RunStatus.FAILED,
        "error_code": code,
        "error_message": message,
        "agents_active": 0,
        "completed_at": timezone.now(),
    }
    if cost_usd is not None:
        changes["current_cost_usd"] = cost_usd
    return run_end(
        run_id=run_id,
        where=where,
        changes=changes,
        terminal=(RUN_FAILED, {"error_code": code, "error_message": message}),
        lease=lease,
    )


# ---------------------------------------------------------------------------------------------
# The reaper
# ---------------------------------------------------------------------------------------------
# A running run whose worker has not beaten for SVERM_STALE_AFTER_SECONDS is taken for lost.
WORKER_LOST_MESSAGE = (
    "The worker executing this run stopped responding ({seconds} s without a heartbeat) and "
    "{why}. Calls it finished are in the cost report and were charged once; start a new run "
    "to retry."
)


def runs_reap_stale(*, workspace_id: str | None = None) -> list[str]:
    """Deal with running runs (of one workspace, else all) whose worker went silent (killed,
    lost its database), so no run stays `running` forever or holds a concurrency slot: ask the
    executor to resume those with attempts left, and fail with `worker_lost` those without, or
    whose resume no worker took up within a stale period. Returns the ids it failed."""
    stale_after = timedelta(seconds=settings.SVERM_STALE_AFTER_SECONDS)
    now = timezone.now()
    cutoff = now - stale_after
    stale = Run.objects.filter(status=RunStatus.RUNNING).filter(_stale_filter(cutoff))
    if workspace_id is not None:
        stale = stale.filter(workspace_id=workspace_id)
    reaped = []
    for run_id, attempt, pauses, asked_at, beat_at in stale.values_list(
        "pk", "attempt", "pauses", "resume_requested_at", "heartbeat_at"
    ):
        # Attempts that ended in a pause for approvals were not lost.
        attempt -= pauses
        if attempt >= settings.SVERM_RUN_MAX_ATTEMPTS:
            why = f"all {attempt} attempts were lost"
        elif asked_at is not None and (beat_at is None or asked_at > beat_at):
            if asked_at > cutoff:
                continue  # asked recently: a worker may be on its way
            why = "no worker took it up again"
        else:
            # Asked once per loss: a claim beats, so the next loss asks anew.
            if Run.objects.filter(pk=run_id, resume_requested_at=asked_at).update(
                resume_requested_at=now
            ):
                _dispatch_resume(run_id)
            continue
        cost = UsageRecord.objects.filter(run_id=run_id).aggregate(total=Sum("cost_usd"))["total"]
        message = WORKER_LOST_MESSAGE.format(seconds=int(stale_after.total_seconds()), why=why)
        if run_fail(
            run_id=run_id,
            code="worker_lost",
            message=message,
            only_if_stale_before=cutoff,
            cost_usd=cost or Decimal(0),
        ):
            reaped.append(run_id)
    return reaped


def _dispatch_resume(run_id: str) -> None:
    transaction.on_commit(lambda: jobs.enqueue(jobs.EXECUTE_RUN, run_id, True))


def runs_cancel_requested(*, run_ids: list[str]) -> list[str]:
    """Those of the runs whose cancel was requested, in one query."""
    return list(
        Run.objects.filter(pk__in=run_ids, cancel_requested_at__isnull=False).values_list(
            "pk", flat=True
        )
    )
