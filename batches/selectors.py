"""Reads for batches: what a caller may follow, a batch's events after a seq, its results."""

import json
from collections.abc import Iterator
from decimal import Decimal

from django.db.models import DecimalField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.roles import Role
from accounts.tenancy import Caller
from batches.models import BATCH_TERMINAL_EVENTS, Batch, BatchEvent, BatchItem, ItemStatus
from batches.services import BatchSource
from sverm.api.errors import Conflict, InvalidRequest, NotFound
from sverm.money import money_json
from swarms.models import Swarm
from swarms.selectors import run_workspace_for_swarm
from swarms.services.runs import run_definition_for
from templates_app.selectors import template_get

RESULTS_CHUNK = 200


def batches_with_running_cost(queryset):
    """Batches annotated with `running_cost`: what the runs of their running items have spent
    so far (one subquery, so a page of batches costs no query per row)."""
    running = (
        BatchItem.objects.filter(batch=OuterRef("pk"), status=ItemStatus.RUNNING)
        .values("batch")
        .annotate(total=Sum("run__current_cost_usd"))
        .values("total")
    )
    money = DecimalField(max_digits=20, decimal_places=10)
    return queryset.annotate(
        running_cost=Coalesce(Subquery(running, output_field=money), Value(Decimal(0)),
                              output_field=money)
    )  # fmt: skip


def batch_source(
    *,
    caller: Caller,
    workspace_id: str | None,
    swarm_id: str | None,
    version_id: str | None,
    template_id: str | None,
) -> BatchSource:
    """What a new batch runs and where, as the run API decides it for one run: a swarm the
    caller sees (404 otherwise) in its own workspace or the one named (an operator's there,
    403 otherwise; see `run_workspace_for_swarm`), at the version named or its default (409
    for a deleted swarm or one without a version); or a template the caller may read in the
    workspace (404). For a template the workspace defaults to the caller's only one."""
    if swarm_id is not None:
        swarm = Swarm.objects.for_caller(caller, Role.VIEWER).filter(pk=swarm_id).first()
        if swarm is None:
            raise NotFound(f"Swarm {swarm_id} not found.")
        workspace_id = run_workspace_for_swarm(
            caller=caller, swarm=swarm, workspace_id=workspace_id
        )
        if swarm.deleted_at is not None:
            raise Conflict(f"Swarm {swarm.pk} is deleted; restore it before running it.")
        version = run_definition_for(swarm=swarm, version_id=version_id)
        return BatchSource(workspace_id, version.definition, swarm=swarm, version=version)
    if workspace_id is None:
        if len(caller.roles) == 1 and not caller.is_staff:  # an API key's, or a sole member's
            (workspace_id,) = caller.roles
        else:
            raise InvalidRequest.for_field(
                "workspaceId", "Name the workspace the template's runs are made in."
            )
    caller.require_role(workspace_id, Role.OPERATOR)
    template = template_get(caller=caller, template_id=template_id, workspace_id=workspace_id)
    return BatchSource(workspace_id, template.definition, template_id=template.pk)


def batch_for_stream(*, caller: Caller, batch_id: str) -> Batch:
    """The batch a stream may follow: visible to the caller (viewer is enough)."""
    batch = Batch.objects.for_caller(caller, Role.VIEWER).filter(pk=batch_id).first()
    if batch is None:
        raise NotFound(f"Batch {batch_id} not found.")
    return batch


def batch_events_after(*, batch_id: str, after: int, upto: int | None = None, limit: int = 500):
    """Stored events with seq in (after, upto], oldest first, at most `limit`."""
    events = BatchEvent.objects.filter(batch_id=batch_id, seq__gt=after)
    if upto is not None:
        events = events.filter(seq__lte=upto)
    return list(events.order_by("seq")[:limit])


def batch_terminal_seq(*, batch_id: str) -> int | None:
    """The seq of the batch's terminal event, once it ended."""
    return (
        BatchEvent.objects.filter(batch_id=batch_id, type__in=BATCH_TERMINAL_EVENTS)
        .values_list("seq", flat=True)
        .first()
    )


def item_cost(item: BatchItem) -> Decimal:
    """What the item's run spent: as recorded when it ended, else its run's cost so far."""
    if item.completed_at is not None or item.run_id is None or item.run is None:
        return item.cost_usd
    return item.run.current_cost_usd


def result_line(item: BatchItem) -> dict:
    """One item's line of the results (`GET /api/batches/{id}/results`)."""
    run = item.run
    error = None
    if item.error_code or item.error_message:
        error = {"code": item.error_code, "message": item.error_message}
    return {
        "index": item.index,
        "customId": item.custom_id or None,
        "input": item.task,
        "status": item.status,
        "runId": item.run_id,
        "costUsd": money_json(item_cost(item)),
        "output": run.output if run is not None else "",
        "error": error,
    }


def batch_results_chunks(*, batch_id: str) -> Iterator[bytes]:
    """The results as JSON lines, one per item in input order, RESULTS_CHUNK items (one query,
    keyset on the index) a chunk, so a batch of any size streams in bounded memory."""
    after = -1
    while True:
        chunk = list(
            BatchItem.objects.filter(batch_id=batch_id, index__gt=after)
            .select_related("run")
            .only("id", "index", "custom_id", "task", "status", "cost_usd", "error_code",
                  "error_message", "completed_at", "run", "run__output",
                  "run__current_cost_usd")
            .order_by("index")[:RESULTS_CHUNK]
        )  # fmt: skip
        if chunk:
            lines = [json.dumps(result_line(item), ensure_ascii=False) for item in chunk]
            yield ("\n".join(lines) + "\n").encode()
        if len(chunk) < RESULTS_CHUNK:
            return
        after = chunk[-1].index
