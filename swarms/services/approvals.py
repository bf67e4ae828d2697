"""Approval gates: a run that paused for operators' decisions on its tool calls, the decisions,
their deadline, and the run's resumption once none is pending.

The pause itself is the engine's (nothing in flight, every paid call checkpointed) and
`run_pause` records it; no worker holds the run meanwhile. A decision on the last pending call
queues the run again: the next attempt (any worker) replays what was paid and reads the
decisions by each call's key. A call left undecided past its deadline is denied.
"""

import json
from datetime import timedelta

import jsonschema
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from sverm.api.errors import Conflict, InvalidRequest
from swarms import jobs
from swarms.engine import RunResult
from swarms.engine.events import APPROVAL_DECIDED
from swarms.models import Approval, ApprovalStatus, Run, RunStatus
from swarms.services.lifecycle import run_event_add

EXPIRED_REASON = "no decision within {seconds:g} s of the request"


@transaction.atomic
def run_pause(*, run_id: str, lease: int, result: RunResult) -> bool:
    """The attempt holding the run stopped to wait for `result.pending`: the run waits for
    them (`awaiting_approval`, no worker, its partial output and cost kept), one `Approval` per
    request. False when the attempt holds the run no more."""
    paused = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempt=lease).update(
        status=RunStatus.AWAITING_APPROVAL,
        output=result.output,
        current_cost_usd=result.total_cost_usd,
        agents_active=0,
        pauses=F("pauses") + 1,
    )
    if not paused:
        return False
    deadline = timezone.now() + timedelta(seconds=settings.SVERM_APPROVAL_TIMEOUT_SECONDS)
    for request in result.pending:
        Approval.objects.get_or_create(
            run_id=run_id,
            key=request.key,
            defaults={
                "agent_id": request.agent_id, "tool": request.tool, "call_id": request.call_id,
                "arguments": request.arguments, "deadline_at": deadline,
            },
        )  # fmt: skip
    return True


def approval_decide(
    *,
    approval: Approval,
    approved: bool,
    arguments: dict | None = None,
    reason: str = "",
    decided_by: User | None,
    schema: dict | None = None,
) -> Approval:
    """Approve (with `arguments` instead of the model's, checked against the tool's `schema`
    when given: 400) or deny a pending call, with an `approval.decided` event. 409 when it was
    decided already or its run ended. The last decision of a pause queues the run again."""
    edited = ""
    if arguments is not None:
        if not approved:
            raise InvalidRequest.for_field("arguments", "Only an approval takes arguments.")
        if schema is not None:
            error = jsonschema.exceptions.best_match(
                jsonschema.Draft202012Validator(schema).iter_errors(arguments)
            )
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path)
                detail = f"{where}: {error.message}" if where else error.message
                raise InvalidRequest.for_field(
                    "arguments", detail, message=f"The arguments do not fit the tool: {detail}"
                )
        edited = json.dumps(arguments)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=approval.run_id)
        current = Approval.objects.select_for_update().get(pk=approval.pk)
        if current.status != ApprovalStatus.PENDING:
            raise Conflict(f"Approval {approval.pk} was {current.status} already.")
        if run.status != RunStatus.AWAITING_APPROVAL:
            raise Conflict(f"Run {run.pk} is {run.status}: it waits for no decision.")
        current.status = ApprovalStatus.APPROVED if approved else ApprovalStatus.DENIED
        current.edited_arguments = edited
        current.reason = reason
        current.decided_by = decided_by
        current.decided_at = timezone.now()
        current.save()
        _decided(run, current, by=decided_by.pk if decided_by else "")
    return current


def approvals_expire() -> list[str]:
    """Deny every pending call whose deadline passed (the reaper calls this); the ids of the
    runs that resumed for it."""
    resumed = []
    due = Approval.objects.filter(status=ApprovalStatus.PENDING, deadline_at__lt=timezone.now())
    for run_id in set(due.values_list("run_id", flat=True)):
        with transaction.atomic():
            run = Run.objects.select_for_update().filter(pk=run_id).first()
            expired = list(
                Approval.objects.select_for_update().filter(
                    run_id=run_id, status=ApprovalStatus.PENDING, deadline_at__lt=timezone.now()
                )
            )
            if run is None or not expired:
                continue
            reason = EXPIRED_REASON.format(seconds=settings.SVERM_APPROVAL_TIMEOUT_SECONDS)
            for approval in expired:
                approval.status = ApprovalStatus.EXPIRED
                approval.reason = reason
                approval.decided_at = timezone.now()
                approval.save()
                waiting = run.status == RunStatus.AWAITING_APPROVAL
                if waiting and _decided(run, approval, by="deadline"):
                    resumed.append(run_id)
    return resumed


def _decided(run: Run, approval: Approval, *, by: str) -> bool:
    """The decision's event; when none is pending any more, the run is queued again (sent to
    a worker once this commits). Returns whether it was. Inside the caller's transaction."""
    data = {"approval_id": approval.pk, "key": approval.key, "tool": approval.tool,
            "decision": approval.status, "by": by}  # fmt: skip
    if approval.reason:
        data["reason"] = approval.reason
    if approval.edited_arguments:
        data["arguments"] = approval.edited_arguments
    run_event_add(run_id=run.pk, type=APPROVAL_DECIDED, agent_id=approval.agent_id, data=data)
    if Approval.objects.filter(run_id=run.pk, status=ApprovalStatus.PENDING).exists():
        return False
    Run.objects.filter(pk=run.pk, status=RunStatus.AWAITING_APPROVAL).update(
        status=RunStatus.QUEUED
    )
    transaction.on_commit(lambda: jobs.enqueue(jobs.EXECUTE_RUN, run.pk))
    return True
