"""Retention: finished runs lose their events and output after their tier's window, and swarms
left in the trash are purged; the billing ledger and its rollups are never touched.

- A run's tier is its swarm's `retention_tier`; runs without a swarm (`/v1` template and inline
  runs) are `standard`. Windows are `SVERM_RETENTION_DAYS`, counted from `completed_at`.
- Pruning keeps the run row (status, cost, timestamps, error, task), so lists, usage, status and
  the cost report (read from the ledger) keep working. It deletes every event except the
  terminal one, blanks the output in the run and in that terminal event, and deletes the run's
  webhook delivery log once no retry is pending. The terminal event stays because it is what
  ends a stream: a client following a pruned run gets it and a normal close, not a silent socket.
- Running and queued runs are never touched; a trashed swarm with a running run waits.
- Every delete is a bounded statement (`batch_size` rows), so millions of rows never become one
  huge transaction or one huge list in memory.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from swarms.engine.events import TERMINAL_EVENTS
from swarms.models import (
    TERMINAL_STATUSES,
    RetentionTier,
    Run,
    RunEvent,
    RunStatus,
    RunStep,
    Swarm,
    WebhookDelivery,
)
from swarms.services.swarms import swarm_purge

logger = logging.getLogger("sverm.retention")

DEFAULT_TIER = RetentionTier.STANDARD  # runs without a swarm
DEFAULT_BATCH_SIZE = 1000
# Terminal events are rewritten this many at a time: each may hold a whole run's output.
REWRITE_BATCH = 100


@dataclass
class PruneReport:
    runs: int = 0  # runs that had something pruned
    events_deleted: int = 0
    outputs_cleared: int = 0
    steps_deleted: int = 0  # call checkpoints (each holds its call's text)
    webhook_deliveries_deleted: int = 0
    dry_run: bool = False


@dataclass
class PurgeReport:
    swarms: int = 0
    runs_deleted: int = 0
    events_deleted: int = 0
    skipped: list[str] = field(default_factory=list)  # swarms with a run still running
    dry_run: bool = False


@dataclass
class RetentionReport:
    prune: PruneReport
    purge: PurgeReport

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------
def _days(name: str, value) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"{name} must be a positive whole number of days, not {value!r}."
        )
    return timedelta(days=value)


def retention_windows() -> dict[str, timedelta]:
    """Tier -> how long a finished run keeps its events and output."""
    configured = settings.SVERM_RETENTION_DAYS
    missing = [tier for tier in RetentionTier.values if tier not in configured]
    if missing:
        raise ImproperlyConfigured(f"SVERM_RETENTION_DAYS has no window for {', '.join(missing)}.")
    return {
        tier: _days(f"SVERM_RETENTION_DAYS[{tier!r}]", configured[tier])
        for tier in RetentionTier.values
    }


def trash_window() -> timedelta:
    return _days("SVERM_TRASH_DAYS", settings.SVERM_TRASH_DAYS)


# ---------------------------------------------------------------------------------------------
# Pruning runs
# ---------------------------------------------------------------------------------------------
def _expired_runs(now: datetime) -> QuerySet[Run]:
    """Finished runs older than their tier's window."""
    expired = Q()
    for tier, window in retention_windows().items():
        cutoff = now - window
        in_tier = Q(swarm__retention_tier=tier)
        if tier == DEFAULT_TIER:
            in_tier |= Q(swarm__isnull=True)
        # A finished run always has completed_at; should one lack it, its creation counts.
        older = Q(completed_at__lt=cutoff) | Q(completed_at__isnull=True, created_at__lt=cutoff)
        expired |= in_tier & older
    return Run.objects.filter(status__in=TERMINAL_STATUSES).filter(expired)


def _prunable(now: datetime) -> Q:
    """A run with something left to prune (so a pruned run is not visited again)."""
    events = RunEvent.objects.filter(run=OuterRef("pk")).exclude(type__in=TERMINAL_EVENTS)
    deliveries = WebhookDelivery.objects.filter(run=OuterRef("pk"))
    pending = deliveries.filter(next_attempt_at__gt=now)
    steps = RunStep.objects.filter(run=OuterRef("pk"))
    return ~Q(output="") | Exists(events) | Exists(steps) | (Exists(deliveries) & ~Exists(pending))


def _pk_batches(queryset: QuerySet, size: int) -> Iterator[list[str]]:
    """The primary keys of `queryset`, `size` at a time in key order, each batch read after the
    previous one was handled (so rows it changed are seen as they are now)."""
    last = ""
    while pks := list(
        queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size]
    ):
        yield pks
        last = pks[-1]


def _delete_in_batches(
    queryset: QuerySet, batch_size: int, still: Callable[[], bool] | None = None
) -> int:
    """Delete `queryset`'s rows `batch_size` at a time (each its own statement); stop early when
    `still()` turns false. Returns how many rows of its model were deleted."""
    model = queryset.model
    deleted = 0
    while still is None or still():
        pks = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not pks:
            break
        _total, per_model = model.objects.filter(pk__in=pks).delete()
        deleted += per_model.get(model._meta.label, 0)
    return deleted


def _blank_terminal_outputs(run_ids: list[str]) -> None:
    """`run.completed` carries the output too: blank it there, keeping the event's shape."""
    events = (
        RunEvent.objects.filter(run_id__in=run_ids, type__in=TERMINAL_EVENTS)
        .filter(data__has_key="output")
        .exclude(data__output="")
        .only("pk", "data")
    )
    while batch := list(events.order_by("pk")[:REWRITE_BATCH]):
        for event in batch:
            event.data = {**event.data, "output": ""}
        RunEvent.objects.bulk_update(batch, ["data"])


def _prune_batch(run_ids: list[str], *, now: datetime, batch_size: int, report: PruneReport):
    events = RunEvent.objects.filter(run_id__in=run_ids).exclude(type__in=TERMINAL_EVENTS)
    pending = WebhookDelivery.objects.filter(run_id__in=run_ids, next_attempt_at__gt=now)
    deliveries = WebhookDelivery.objects.filter(run_id__in=run_ids).exclude(
        run_id__in=pending.values("run_id")
    )
    # Only finished runs, checked again in the statement itself.
    outputs = Run.objects.filter(pk__in=run_ids, status__in=TERMINAL_STATUSES).exclude(output="")
    steps = RunStep.objects.filter(run_id__in=run_ids, run__status__in=TERMINAL_STATUSES)
    report.runs += len(run_ids)
    if report.dry_run:
        report.steps_deleted += steps.count()
        report.events_deleted += events.count()
        report.webhook_deliveries_deleted += deliveries.count()
        report.outputs_cleared += outputs.count()
        return
    # The run's own output goes last: a pass cut short leaves the run prunable for the next one.
    report.events_deleted += _delete_in_batches(events, batch_size)
    report.steps_deleted += _delete_in_batches(steps, batch_size)
    _blank_terminal_outputs(run_ids)
    report.webhook_deliveries_deleted += _delete_in_batches(deliveries, batch_size)
    report.outputs_cleared += outputs.update(output="")


def runs_prune_expired(
    *, now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False
) -> PruneReport:
    """Prune the events, output and webhook log of finished runs older than their tier's
    window. Idempotent: a second pass finds nothing (a run whose webhook is still being retried
    keeps its delivery log until the retries end). `dry_run` counts without changing anything."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    now = now or timezone.now()
    report = PruneReport(dry_run=dry_run)
    candidates = _expired_runs(now).filter(_prunable(now))
    for run_ids in _pk_batches(candidates, batch_size):
        _prune_batch(run_ids, now=now, batch_size=batch_size, report=report)
    return report


# ---------------------------------------------------------------------------------------------
# Purging the trash
# ---------------------------------------------------------------------------------------------
def _purge_one(swarm_id: str, *, cutoff: datetime, batch_size: int, report: PurgeReport):
    runs = Run.objects.filter(swarm_id=swarm_id)
    if runs.filter(status=RunStatus.RUNNING).exists():
        report.skipped.append(swarm_id)
        return
    events = RunEvent.objects.filter(run__swarm_id=swarm_id)
    if report.dry_run:
        report.swarms += 1
        report.runs_deleted += runs.count()
        report.events_deleted += events.count()
        return

    def still_in_trash() -> bool:
        # Checked before every batch: a swarm restored meanwhile keeps what is left.
        return Swarm.objects.filter(pk=swarm_id, deleted_at__lt=cutoff).exists()

    # The runs' rows first, in bounded statements, so a swarm with a huge history never becomes
    # one huge cascade; then the swarm and its versions through the one purge path.
    report.events_deleted += _delete_in_batches(events, batch_size, still_in_trash)
    deliveries = WebhookDelivery.objects.filter(run__swarm_id=swarm_id)
    _delete_in_batches(deliveries, batch_size, still_in_trash)
    while still_in_trash():
        pks = list(runs.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not pks:
            break
        _total, per_model = Run.objects.filter(pk__in=pks).delete()
        report.runs_deleted += per_model.get(Run._meta.label, 0)
        report.events_deleted += per_model.get(RunEvent._meta.label, 0)
    with transaction.atomic():
        swarm = Swarm.objects.select_for_update().filter(pk=swarm_id, deleted_at__lt=cutoff).first()
        if swarm is None:  # restored (or purged by someone else) meanwhile
            return
        swarm_purge(swarm=swarm)
    report.swarms += 1


def swarms_purge_trash(
    *, now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False
) -> PurgeReport:
    """Hard-delete swarms soft-deleted more than SVERM_TRASH_DAYS ago, with their versions, runs
    and events. Usage records keep plain copies of the run and swarm ids, so the ledger and the
    monthly rollups are untouched. A swarm with a running run is skipped until it finishes."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    now = now or timezone.now()
    cutoff = now - trash_window()
    report = PurgeReport(dry_run=dry_run)
    expired = Swarm.objects.deleted().filter(deleted_at__lt=cutoff)
    for swarm_ids in _pk_batches(expired, batch_size):
        for swarm_id in swarm_ids:
            _purge_one(swarm_id, cutoff=cutoff, batch_size=batch_size, report=report)
    return report


# ---------------------------------------------------------------------------------------------
# Both, on a schedule
# ---------------------------------------------------------------------------------------------
def retention_enforce(
    *, now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False
) -> RetentionReport:
    """One retention pass: prune expired runs, then purge the expired trash."""
    now = now or timezone.now()
    report = RetentionReport(
        prune=runs_prune_expired(now=now, batch_size=batch_size, dry_run=dry_run),
        purge=swarms_purge_trash(now=now, batch_size=batch_size, dry_run=dry_run),
    )
    if not dry_run and (report.prune.runs or report.purge.swarms or report.purge.skipped):
        logger.info("retention pass: %s", report.as_dict())
    return report
