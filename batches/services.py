"""Batch writes: creating one (its inputs checked, its budget split or capped, the plan's hourly
limit), dispatching its items as runs up to its concurrency, recording each item's end, and
cancelling it.

Dispatch (`batch_advance`) holds the batch row's lock for one pass: it records the items whose
runs ended, starts pending items while the concurrency, the budget and the workspace's run quotas
allow, and ends the batch once no item is pending or running, writing the batch's numbered
events in the same transaction as each change. Passes are asked for when the batch is created,
when one of its runs ends (`swarms.signals.run_ended`, apps.py), and every few seconds by a
periodic pass over open batches (sverm/periodic.py), which also picks up what a lost signal or a
refused quota left. A pass that finds nothing to do changes nothing, so asking twice is safe.

Lock order: the batch row, then the workspace row (a run's quota lock, taken by the run
creations of a pass), then run rows (cancel); a run's end commits before its signal asks for a
pass, so no writer holds a run row while it waits for a batch.
"""

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts import services as accounts_services
from accounts.models import User, Workspace
from accounts.roles import Role
from accounts.selectors import plan_limits
from accounts.tenancy import Caller
from audit.services import audit_record
from batches.models import (
    DISPATCHING_STATUSES,
    ITEM_EVENT_OF,
    ITEM_STATUS_OF_RUN,
    TERMINAL_EVENT_OF,
    Batch,
    BatchEvent,
    BatchEventType,
    BatchItem,
    BatchStatus,
    BudgetMode,
    ItemStatus,
)
from batches.realtime import publish_batch_events
from sverm.api.errors import (
    ApplicationError,
    BudgetExceeded,
    Conflict,
    InvalidRequest,
    RateLimited,
)
from sverm.money import MONEY_PLACES, money, money_exact, usd
from swarms import jobs
from swarms.engine import Definition, minimum_cost
from swarms.models import TERMINAL_STATUSES, Run, Swarm, SwarmVersion
from swarms.providers import price_map
from swarms.services import run_cancel, run_create_for_swarm, run_create_from_source

logger = logging.getLogger(__name__)

# The job that runs one dispatch pass (the Celery task batches.tasks.advance_batch_task; in the
# embedded mode a thread of this process, registered in apps.py).
ADVANCE_BATCH = "batches.advance_batch"
# The periodic pass over open batches (sverm/periodic.py declares its schedule).
ADVANCE_OPEN_BATCHES = "batches.advance_open_batches"
# At most this many items run at once when the request names no concurrency (and never more
# than the plan's concurrent runs): a batch leaves room for the workspace's other runs.
DEFAULT_CONCURRENCY = 4
QUOTA_WINDOW = timedelta(hours=1)
# What an item that never started because the money ran out says.
BUDGET_EXHAUSTED = "batch_budget_exhausted"


@dataclass(frozen=True)
class BatchInput:
    """One input: the task its run is given, and the caller's id for it (optional)."""

    task: str
    custom_id: str = ""


@dataclass(frozen=True)
class BatchSource:
    """What every item of a batch runs: a swarm's version, or a template (with its definition,
    for the cost checks)."""

    workspace_id: str
    definition: dict
    swarm: Swarm | None = None
    version: SwarmVersion | None = None
    template_id: str = ""


# ---------------------------------------------------------------------------------------------
# Creating a batch
# ---------------------------------------------------------------------------------------------
def batch_split_budget(*, total_usd: Decimal, items: int) -> Decimal:
    """Each item's share of `total_usd` in split mode: total / items rounded down to the
    micro-dollar, so `items` shares never add up to more than the total."""
    if items < 1:
        raise ValueError("a batch has at least one item")
    return (Decimal(total_usd) / items).quantize(MONEY_PLACES, rounding=ROUND_DOWN)


def batch_concurrency(*, plan: str, requested: int | None) -> int:
    """The items a batch may run at once: as requested, up to the plan's concurrent runs (400
    above it); by default DEFAULT_CONCURRENCY, or the plan's limit when lower."""
    allowed = plan_limits(plan=plan).concurrent_runs
    if requested is None:
        return max(1, min(DEFAULT_CONCURRENCY, allowed))
    if requested > allowed:
        raise InvalidRequest.for_field(
            "concurrency",
            f"At most {allowed}: the {plan} plan runs {allowed} runs of a workspace at once.",
        )
    return requested


def _item_budget(
    *, mode: str, total_usd: Decimal, per_item_usd: Decimal | None, items: int
) -> Decimal:
    if mode == BudgetMode.SPLIT:
        share = batch_split_budget(total_usd=total_usd, items=items)
        if share < MONEY_PLACES:
            raise InvalidRequest.for_field(
                "totalBudgetUsd",
                f"{usd(total_usd)} split over {items} items leaves less than $0.000001 each.",
            )
        return share
    if per_item_usd is None:
        raise InvalidRequest.for_field("perItemBudgetUsd", "Required with budgetMode per_item.")
    if per_item_usd > total_usd:
        raise InvalidRequest.for_field(
            "perItemBudgetUsd", "Must not be above totalBudgetUsd, which caps the whole batch."
        )
    return per_item_usd


def _minimum_costs_check(
    source: BatchSource, inputs: Sequence[BatchInput], item_budget: Decimal
) -> None:
    """422 `budget_exceeded` naming the first item whose run could not complete within its
    budget (the run API's check, made for every item before anything is created). A definition
    the engine cannot price is left to the runs, which refuse it item by item."""
    prices = price_map()
    floor = settings.SVERM_MIN_OUTPUT_TOKENS
    try:
        parsed = Definition.from_dict(source.definition)
        least = [minimum_cost(parsed, item.task, prices, floor) for item in inputs]
    except (ValueError, KeyError, TypeError):
        return
    for index, cost in enumerate(least):
        if cost > item_budget:
            fitting = cost.quantize(MONEY_PLACES, rounding=ROUND_UP)
            raise BudgetExceeded(
                f"inputs[{index}]: its run needs at least {usd(fitting)}, more than the "
                f"{usd(item_budget)} each item gets.",
                details={
                    "index": index,
                    "item_budget": float(item_budget),
                    "minimum_cost": float(fitting),
                },
            )


def batch_quota_check(*, workspace_id: str) -> None:
    """Refuse a new batch (429 `rate_limited`, Retry-After) when the workspace created its
    plan's `batches_per_hour` in the last hour. Call it inside the creating transaction: like
    the run quotas (accounts.services.workspace_run_quota_check) it counts rows under a lock on
    the workspace row, held until the new batch commits, so two creations cannot both take
    the last one. `SVERM_RATE_LIMITS` off turns it off with the other limits."""
    if not settings.SVERM_RATE_LIMITS:
        return
    plan = accounts_services.workspace_quota_lock(workspace_id=workspace_id)
    allowed = plan_limits(plan=plan).batches_per_hour
    now = accounts_services.quota_clock()  # patched by tests that move the clock
    recent = list(
        Batch.objects.filter(workspace_id=workspace_id, created_at__gt=now - QUOTA_WINDOW)
        .order_by("created_at")
        .values_list("created_at", flat=True)
    )
    if len(recent) < allowed:
        return
    # A slot frees when the batch that takes the count below the limit leaves the window.
    frees_at = recent[len(recent) - allowed] + QUOTA_WINDOW if allowed else now + QUOTA_WINDOW
    wait = max(math.ceil((frees_at - now).total_seconds()), 1)
    raise RateLimited(
        f"Hourly batches limit of {allowed} reached (plan {plan}); try again in {wait} s.",
        details={"limit": "batches_per_hour", "plan": plan, "allowed": allowed},
        headers={"Retry-After": str(wait)},
    )


def batch_create(
    *,
    source: BatchSource,
    inputs: Sequence[BatchInput],
    budget_mode: str,
    total_budget_usd: Decimal,
    per_item_budget_usd: Decimal | None,
    concurrency: int | None,
    created_by: User | None,
) -> Batch:
    """A batch of `inputs` through `source` (the caller's access to it checked by the caller of
    this), its items pending; its first items start once it commits. 400 for a budget that
    cannot be split or a concurrency above the plan's, 422 `budget_exceeded` for an item whose
    run could not complete within its share, 429 over the plan's batches per hour. Nothing is
    created on any error."""
    workspace_id = source.workspace_id
    plan = Workspace.objects.filter(pk=workspace_id).values_list("plan", flat=True).get()
    concurrency = batch_concurrency(plan=plan, requested=concurrency)
    item_budget = _item_budget(
        mode=budget_mode, total_usd=total_budget_usd, per_item_usd=per_item_budget_usd,
        items=len(inputs),
    )  # fmt: skip
    _minimum_costs_check(source, inputs, item_budget)
    with transaction.atomic():
        batch_quota_check(workspace_id=workspace_id)
        batch = Batch.objects.create(
            workspace_id=workspace_id, swarm=source.swarm, version=source.version,
            template_id=source.template_id, budget_mode=budget_mode,
            total_budget_usd=total_budget_usd, item_budget_usd=item_budget,
            concurrency=concurrency, items_total=len(inputs), items_pending=len(inputs),
            created_by=created_by,
        )  # fmt: skip
        BatchItem.objects.bulk_create(
            [
                BatchItem(batch=batch, index=index, task=item.task, custom_id=item.custom_id)
                for index, item in enumerate(inputs)
            ],
            batch_size=500,
        )
        events = [(BatchEventType.BATCH_PROGRESS, _counts(batch, running_cost=Decimal(0)))]
        _events_write(batch, events)
        batch.save(update_fields=["last_seq"])
        audit_record(
            action="batch.create",
            workspace_id=workspace_id,
            target_type="batch",
            target_id=batch.pk,
            after={
                "status": batch.status, "swarm_id": batch.swarm_id,
                "version_id": batch.version_id, "template_id": batch.template_id,
                "items_total": batch.items_total, "budget_mode": batch.budget_mode,
                "total_budget_usd": batch.total_budget_usd,
                "item_budget_usd": batch.item_budget_usd, "concurrency": batch.concurrency,
            },
        )  # fmt: skip
        transaction.on_commit(lambda: batch_advance_soon(batch.pk), robust=True)
    return batch


# ---------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------
def batch_advance_soon(batch_id: str) -> None:
    """Ask for a dispatch pass of the batch (a job: a Celery task, or a thread here). Never
    raises: a pass that cannot be asked for now is made by the periodic one."""
    try:
        jobs.enqueue(ADVANCE_BATCH, batch_id)
    except Exception:
        logger.warning(
            "batch %s: could not ask for a dispatch pass; the periodic pass makes it",
            batch_id, exc_info=True,
        )  # fmt: skip


def batch_advance(*, batch_id: str) -> Batch | None:
    """One dispatch pass (see the module): record the items whose runs ended, start pending
    items as far as the batch may, end it when nothing is left. Returns the batch as it stands
    (None when it does not exist)."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None or batch.completed_at is not None:
            return batch
        before = _snapshot(batch)
        events: list[tuple[str, dict]] = []
        _items_reconcile(batch, events)
        if batch.status in DISPATCHING_STATUSES:
            _items_start(batch, events)
        _batch_save(batch, before, events)
    return batch


def batches_advance_open() -> int:
    """The periodic pass: a dispatch pass of every batch that has not ended (each on its own,
    so one that fails does not hold up the others). Returns how many it looked at."""
    batch_ids = list(
        Batch.objects.filter(completed_at__isnull=True).order_by("created_at")
        .values_list("pk", flat=True)
    )  # fmt: skip
    for batch_id in batch_ids:
        try:
            batch_advance(batch_id=batch_id)
        except Exception:
            logger.exception("batch %s: the dispatch pass failed; it is tried again", batch_id)
    return len(batch_ids)


def batch_run_ended(*, run_id: str) -> None:
    """A run ended (`run_ended`, after its commit): a pass of its batch, if it is an item's,
    which records the item and starts the next; and of the workspace's batches waiting for a
    run quota, as a slot may have come free."""
    batch_ids = set(
        BatchItem.objects.filter(run_id=run_id, status=ItemStatus.RUNNING).values_list(
            "batch_id", flat=True
        )
    )
    batch_ids.update(
        Batch.objects.filter(
            completed_at__isnull=True,
            workspace__runs__id=run_id,
            status__in=DISPATCHING_STATUSES,
            items_pending__gt=0,
        )
        .exclude(blocked_reason="")
        .values_list("pk", flat=True)
    )
    for batch_id in sorted(batch_ids):
        batch_advance_soon(batch_id)


RUN_END_FIELDS = ("run__status", "run__current_cost_usd", "run__error_code",
                  "run__error_message", "run__completed_at")  # fmt: skip


def _items_reconcile(batch: Batch, events: list) -> None:
    """Record the end of every running item whose run ended (or is gone)."""
    ended = (
        BatchItem.objects.filter(batch=batch, status=ItemStatus.RUNNING)
        .filter(Q(run__status__in=TERMINAL_STATUSES) | Q(run__isnull=True))
        .select_related("run")
        .only("id", "index", "custom_id", "run", *RUN_END_FIELDS)
        .order_by("index")
    )
    for item in ended:
        run = item.run
        if run is None:
            status, cost, code = ItemStatus.FAILED, Decimal(0), "run_deleted"
            message, ended_at = "Its run was deleted.", timezone.now()
        else:
            status, cost = ITEM_STATUS_OF_RUN[run.status], run.current_cost_usd
            code, message = run.error_code, run.error_message
            ended_at = run.completed_at or timezone.now()
        changed = BatchItem.objects.filter(pk=item.pk, status=ItemStatus.RUNNING).update(
            status=status, cost_usd=cost, error_code=code, error_message=message,
            completed_at=ended_at,
        )  # fmt: skip
        if not changed:
            continue
        _count_move(batch, ItemStatus.RUNNING, status)
        batch.spent_usd += cost
        batch.shown_spent_usd += money(cost)
        data = {
            **_item_data(item),
            "run_id": item.run_id,
            "status": str(status),
            "cost_usd": money_exact(cost),
        }
        if status == ItemStatus.FAILED:
            data.update(error_code=code, error_message=message)
        events.append((ITEM_EVENT_OF[status], data))


def _fits_budget(batch: Batch) -> bool:
    """Whether one more item may start: always when split (the shares add up to at most the
    total); per item, when what the batch spent, the caps of its running items and this one's
    cap fit the total."""
    if batch.budget_mode == BudgetMode.SPLIT:
        return True
    reserved = batch.item_budget_usd * (batch.items_running + 1)
    return batch.spent_usd + reserved <= batch.total_budget_usd


class _ClaimLost(Exception):
    """Another pass started the item first."""


def _pending_items(batch: Batch):
    """The batch's pending items in input order, read a few at a time as the pass goes."""
    after = -1
    while True:
        chunk = list(
            BatchItem.objects.filter(batch=batch, status=ItemStatus.PENDING, index__gt=after)
            .only("id", "index", "custom_id", "task")
            .order_by("index")[: max(batch.concurrency, 1)]
        )
        yield from chunk
        if not chunk:
            return
        after = chunk[-1].index


def _items_start(batch: Batch, events: list) -> None:
    """Start pending items, in input order, while the concurrency and the budget allow (an item
    that fails to start frees its slot for the next)."""
    if batch.items_running >= batch.concurrency or batch.items_pending == 0:
        return
    swarm = Swarm.objects.get(pk=batch.swarm_id) if batch.swarm_id else None
    for item in _pending_items(batch):
        if batch.items_running >= batch.concurrency:
            return
        if not _fits_budget(batch):
            if batch.items_running == 0:
                # Nothing running will give money back: the rest can never start.
                _items_skip(
                    batch, BUDGET_EXHAUSTED,
                    f"The batch's total budget of {usd(batch.total_budget_usd)} cannot fit "
                    f"another item's {usd(batch.item_budget_usd)}.",
                )  # fmt: skip
            return
        try:
            with transaction.atomic():
                run = _run_start(batch, swarm, item)
                claimed = BatchItem.objects.filter(pk=item.pk, status=ItemStatus.PENDING).update(
                    status=ItemStatus.RUNNING, run=run, started_at=run.created_at
                )
                if not claimed:
                    raise _ClaimLost()
        except _ClaimLost:
            continue
        except RateLimited as refused:
            # The workspace's concurrent or daily runs: the item waits for a later pass.
            batch.blocked_reason = refused.message
            return
        except BudgetExceeded as refused:
            _item_fail_unstarted(batch, item, refused, events)
            continue
        except ApplicationError as refused:
            # What every item runs cannot run any more (the swarm deleted, the template gone,
            # its definition or tools refused): the batch fails, its other items are skipped.
            _item_fail_unstarted(batch, item, refused, events)
            batch.status = BatchStatus.FAILED
            batch.error_code, batch.error_message = refused.code, refused.message
            _items_skip(batch, refused.code, f"Not started: {refused.message}")
            return
        batch.blocked_reason = ""
        _count_move(batch, ItemStatus.PENDING, ItemStatus.RUNNING)
        if batch.status == BatchStatus.QUEUED:
            batch.status, batch.started_at = BatchStatus.RUNNING, timezone.now()
        events.append((BatchEventType.ITEM_STARTED, {**_item_data(item), "run_id": run.pk}))


def _run_start(batch: Batch, swarm: Swarm | None, item: BatchItem) -> Run:
    """The item's run, through the run API's own creation (its checks and the plan's run
    quotas, 429 when they refuse); it is dispatched once the pass commits."""
    created_by = batch.created_by
    if swarm is not None:
        return run_create_for_swarm(
            swarm=swarm,
            workspace_id=batch.workspace_id,
            version_id=batch.version_id,
            task=item.task,
            max_budget_usd=batch.item_budget_usd,
            webhook_url="",
            created_by=created_by,
        )
    # The batch acts in its own workspace, as an operator there did when creating it.
    caller = Caller(user_id=batch.created_by_id, roles={batch.workspace_id: Role.OPERATOR})
    return run_create_from_source(
        caller=caller,
        workspace_id=batch.workspace_id,
        source=batch.template_id,
        task=item.task,
        max_budget_usd=batch.item_budget_usd,
        webhook_url="",
        created_by=created_by,
    )


def _item_fail_unstarted(
    batch: Batch, item: BatchItem, refused: ApplicationError, events: list
) -> None:
    now = timezone.now()
    changed = BatchItem.objects.filter(pk=item.pk, status=ItemStatus.PENDING).update(
        status=ItemStatus.FAILED, error_code=refused.code, error_message=refused.message,
        started_at=now, completed_at=now,
    )  # fmt: skip
    if changed:
        _count_move(batch, ItemStatus.PENDING, ItemStatus.FAILED)
        events.append(
            (
                BatchEventType.ITEM_FAILED,
                {**_item_data(item), "run_id": None, "status": str(ItemStatus.FAILED),
                 "cost_usd": "0", "error_code": refused.code, "error_message": refused.message},
            )
        )  # fmt: skip


def _items_skip(batch: Batch, code: str, message: str) -> None:
    """Every pending item of the batch ends skipped (one statement; the batch's terminal or
    progress event counts them)."""
    skipped = BatchItem.objects.filter(batch=batch, status=ItemStatus.PENDING).update(
        status=ItemStatus.SKIPPED, error_code=code, error_message=message,
        completed_at=timezone.now(),
    )  # fmt: skip
    _count_move(batch, ItemStatus.PENDING, ItemStatus.SKIPPED, skipped)


# ---------------------------------------------------------------------------------------------
# Cancel
# ---------------------------------------------------------------------------------------------
def batch_cancel(*, batch: Batch) -> Batch:
    """Cancel the whole batch: nothing more starts, its pending items are skipped and its
    running runs cancelled (run_cancel: a queued one at once, a running one within moments,
    keeping its cost). The batch says `cancelled` at once; its terminal `batch.cancelled` event
    comes when its last run has stopped. Cancelling a cancelled batch is a no-op; a completed
    or failed one is 409."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.status == BatchStatus.CANCELLED:
            return batch
        if batch.status not in DISPATCHING_STATUSES:
            raise Conflict(f"Batch {batch.pk} already {batch.status}; there is nothing to cancel.")
        snapshot = _snapshot(batch)
        before = {"status": batch.status}
        batch.status, batch.cancelled_at = BatchStatus.CANCELLED, timezone.now()
        batch.blocked_reason = ""
        _items_skip(batch, "cancelled", "The batch was cancelled before it started.")
        running = Run.objects.filter(
            batch_items__batch=batch, batch_items__status=ItemStatus.RUNNING
        ).exclude(status__in=TERMINAL_STATUSES)
        for run in running:
            run_cancel(run=run)
        events: list[tuple[str, dict]] = []
        _items_reconcile(batch, events)  # the runs that were still queued ended just now
        _batch_save(batch, snapshot, events)
        audit_record(
            action="batch.cancel",
            workspace_id=batch.workspace_id,
            target_type="batch",
            target_id=batch.pk,
            before=before,
            after={"status": batch.status, "items_skipped": batch.items_skipped},
        )
    return batch


# ---------------------------------------------------------------------------------------------
# Counts and events
# ---------------------------------------------------------------------------------------------
_COUNT_FIELD = {
    ItemStatus.PENDING: "items_pending",
    ItemStatus.RUNNING: "items_running",
    ItemStatus.COMPLETED: "items_completed",
    ItemStatus.FAILED: "items_failed",
    ItemStatus.CANCELLED: "items_cancelled",
    ItemStatus.SKIPPED: "items_skipped",
}
SAVED_FIELDS = [
    "status", "items_pending", "items_running", "items_completed", "items_failed",
    "items_cancelled", "items_skipped", "spent_usd", "shown_spent_usd", "error_code",
    "error_message",
    "blocked_reason", "last_seq", "started_at", "cancelled_at", "completed_at",
]  # fmt: skip


def _count_move(batch: Batch, old: str, new: str, count: int = 1) -> None:
    old_field, new_field = _COUNT_FIELD[old], _COUNT_FIELD[new]
    setattr(batch, old_field, getattr(batch, old_field) - count)
    setattr(batch, new_field, getattr(batch, new_field) + count)


def _item_data(item: BatchItem) -> dict[str, Any]:
    return {"item_id": item.pk, "index": item.index, "custom_id": item.custom_id or None}


def batch_running_cost(*, batch_id: str) -> Decimal:
    """What the runs of its running items have spent so far."""
    total = Run.objects.filter(
        batch_items__batch_id=batch_id, batch_items__status=ItemStatus.RUNNING
    ).aggregate(total=Sum("current_cost_usd"))["total"]
    return total or Decimal(0)


def _counts(batch: Batch, *, running_cost: Decimal) -> dict[str, Any]:
    """Where the batch stands: a progress or terminal event's data."""
    return {
        "status": str(batch.status),
        "items_total": batch.items_total,
        "pending": batch.items_pending,
        "running": batch.items_running,
        "completed": batch.items_completed,
        "failed": batch.items_failed,
        "cancelled": batch.items_cancelled,
        "skipped": batch.items_skipped,
        "progress": round(batch.progress, 6),
        "cost_usd": money_exact(money(batch.shown_spent_usd + running_cost)),
        "total_budget_usd": money_exact(batch.total_budget_usd),
    }


# What a progress event reports: a change to any of these is one.
PROGRESS_FIELDS = [
    "status", "items_pending", "items_running", "items_completed", "items_failed",
    "items_cancelled", "items_skipped", "spent_usd",
]  # fmt: skip


def _snapshot(batch: Batch) -> dict[str, Any]:
    return {name: getattr(batch, name) for name in SAVED_FIELDS}


def _batch_save(batch: Batch, before: dict[str, Any], events: list[tuple[str, dict]]) -> None:
    """End the batch if nothing is pending or running, then save what changed since `before`
    (its `_snapshot`) with its events (a progress event when it goes on with other counts, the
    terminal event when it ended), which are published once the transaction commits. A pass
    that changed nothing writes nothing."""
    ended = not batch.items_pending and not batch.items_running
    if ended:
        if batch.status in DISPATCHING_STATUSES:
            batch.status = BatchStatus.COMPLETED
        batch.completed_at = timezone.now()
        data = _counts(batch, running_cost=Decimal(0))
        if batch.status == BatchStatus.FAILED:
            data.update(error_code=batch.error_code, error_message=batch.error_message)
        events.append((TERMINAL_EVENT_OF[batch.status], data))
    elif any(getattr(batch, name) != before[name] for name in PROGRESS_FIELDS):
        running_cost = batch_running_cost(batch_id=batch.pk)
        events.append((BatchEventType.BATCH_PROGRESS, _counts(batch, running_cost=running_cost)))
    _events_write(batch, events)
    changed = [name for name in SAVED_FIELDS if getattr(batch, name) != before[name]]
    if changed:
        batch.save(update_fields=changed)


def _events_write(batch: Batch, events: list[tuple[str, dict]]) -> None:
    """Store the events under the next seq numbers (the batch row is locked, or new) and
    publish them after the commit."""
    if not events:
        return
    now = timezone.now()
    rows = []
    for event_type, data in events:
        batch.last_seq += 1
        rows.append(
            BatchEvent(batch=batch, seq=batch.last_seq, type=event_type, data=data, created_at=now)
        )
    BatchEvent.objects.bulk_create(rows)
    transaction.on_commit(lambda: publish_batch_events(rows), robust=True)
