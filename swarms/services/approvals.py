"""Runs paused for operators: approval gates (decisions on tool calls, their deadline, the run
resumed once none is pending) and budget pauses (the budget raised, or the run failed at its
deadline).

The pause itself is the engine's (nothing in flight, every paid call checkpointed) and
`run_pause` records it; no worker holds the run meanwhile. A decision on the last pending call
queues the run again: the next attempt (any worker) replays what was paid and reads the
decisions by each call's key. A call left undecided past its deadline is denied.
"""

import json
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from sverm.api.errors import Conflict, InvalidRequest
from swarms import jobs
from swarms.engine import RunResult
from swarms.engine.events import APPROVAL_DECIDED, RUN_BUDGET_RAISED
from swarms.engine.gates import AGENT_STEP, AGENT_STEP_SCHEMA
from swarms.engine.tools import schema_error
from swarms.models import Approval, ApprovalStatus, Run, RunStatus
from swarms.services.lifecycle import run_event_add, run_fail
from tools.selectors import workspace_tools

EXPIRED_REASON = "no decision within {seconds:g} s of the request"


@transaction.atomic
def run_pause(*, run_id: str, lease: int, result: RunResult) -> bool:
    """The attempt holding the run stopped: to wait for `result.pending` (`awaiting_approval`,
    one `Approval` per request), or for a bigger budget (`awaiting_budget`, until its deadline).
    No worker holds it meanwhile; its partial output and cost are kept. False when the attempt
    holds the run no more."""
    changes = {
        "status": RunStatus.AWAITING_APPROVAL,
        "output": result.output,
        "current_cost_usd": result.total_cost_usd,
        "agents_active": 0,
        "pauses": F("pauses") + 1,
    }
    if not result.pending:
        changes.update(
            status=RunStatus.AWAITING_BUDGET,
            budget_needed_usd=result.budget_short_usd,
            pause_deadline_at=timezone.now()
            + timedelta(seconds=settings.SVERM_BUDGET_PAUSE_TIMEOUT_SECONDS),
        )
    paused = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempt=lease).update(
        **changes
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
) -> Approval:
    """Approve (with `arguments` instead of the model's, checked against the tool's schema:
    400; for an agent's step, `{"note": ...}` for its prompt) or deny a pending call, with an
    `approval.decided` event. 409 when it was decided already or its run ended. The last
    decision of a pause queues the run again."""
    edited = ""
    if arguments is not None:
        if not approved:
            raise InvalidRequest.for_field("arguments", "Only an approval takes arguments.")
        schema = _arguments_schema(approval)
        detail = None if schema is None else schema_error(schema, arguments)
        if detail is not None:
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
        _approval_audit("approval.decide", run, current)
    return current


def _approval_audit(action: str, run: Run, approval: Approval) -> None:
    after = {"status": approval.status, "reason": approval.reason}
    if approval.edited_arguments:
        after["edited_arguments"] = json.loads(approval.edited_arguments)
    audit_record(
        action=action, workspace_id=run.workspace_id, target_type="approval",
        target_id=approval.pk, before={"status": ApprovalStatus.PENDING}, after=after,
    )  # fmt: skip


def _arguments_schema(approval: Approval) -> dict | None:
    """What edited arguments must fit: an agent step's note, or the tool's JSON schema (None
    when the workspace has the tool no more)."""
    if approval.tool == AGENT_STEP:
        return AGENT_STEP_SCHEMA
    tool = workspace_tools(workspace_id=approval.run.workspace_id).get(approval.tool)
    return None if tool is None else dict(tool.spec.parameters)


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
                _approval_audit("approval.expire", run, approval)
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


def run_budget_raise(*, run: Run, max_budget_usd: Decimal, raised_by: User | None) -> Run:
    """Raise a queued run's budget, or a paused-for-budget one's, which is then queued again
    (any worker resumes it from its checkpoints). 400 when it is not higher; 409 when the run
    runs or ended (a running run's budget is raised when it pauses for it)."""
    with transaction.atomic():
        current = Run.objects.select_for_update().get(pk=run.pk)
        if current.status not in (RunStatus.QUEUED, RunStatus.AWAITING_BUDGET):
            raise Conflict(
                f"Run {run.pk} is {current.status}: a budget is raised while the run is queued "
                "or paused for budget (start runs with pauseOnBudget to pause rather than fail)."
            )
        if max_budget_usd <= current.max_budget_usd:
            raise InvalidRequest.for_field(
                "maxBudgetUsd",
                f"Must be above the current budget of ${format(current.max_budget_usd, 'f')}.",
            )
        data = {
            "from_usd": format(current.max_budget_usd, "f"),
            "to_usd": format(max_budget_usd, "f"),
            "by": raised_by.pk if raised_by else "",
        }
        resume = current.status == RunStatus.AWAITING_BUDGET
        Run.objects.filter(pk=run.pk).update(
            max_budget_usd=max_budget_usd,
            budget_needed_usd=None,
            pause_deadline_at=None,
            **({"status": RunStatus.QUEUED} if resume else {}),
        )
        run_event_add(run_id=run.pk, type=RUN_BUDGET_RAISED, agent_id="", data=data)
        audit_record(
            action="run.budget_raise", workspace_id=current.workspace_id, target_type="run",
            target_id=run.pk,
            before={"max_budget_usd": current.max_budget_usd, "status": current.status},
            after={"max_budget_usd": max_budget_usd,
                   "status": RunStatus.QUEUED if resume else current.status},
        )  # fmt: skip
        if resume:
            transaction.on_commit(lambda: jobs.enqueue(jobs.EXECUTE_RUN, run.pk))
    run.refresh_from_db()
    return run


def budget_pauses_expire() -> list[str]:
    """Fail runs paused for budget past their deadline (`budget_exceeded`, their partial
    output and cost kept); the reaper calls this. Their ids."""
    failed = []
    due = Run.objects.filter(
        status=RunStatus.AWAITING_BUDGET, pause_deadline_at__lt=timezone.now()
    ).values_list("pk", "max_budget_usd", "budget_needed_usd")
    for run_id, budget, needed in due:
        message = (
            f"Run stopped at its budget of ${format(budget, 'f')}: it paused for a bigger one "
            f"(${format(needed or 0, 'f')} more) and none came within "
            f"{settings.SVERM_BUDGET_PAUSE_TIMEOUT_SECONDS:g} s."
        )
        if run_fail(run_id=run_id, code="budget_exceeded", message=message):
            failed.append(run_id)
    return failed
