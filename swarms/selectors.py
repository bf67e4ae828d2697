"""Reads for runs: where one starts, its result, what streams replay, what a resume takes over."""

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Sum

from accounts.roles import Role
from accounts.tenancy import Caller
from billing.models import UsageRecord
from sverm.api.errors import InvalidRequest, NotFound, ServiceUnavailable
from sverm.money import money_shares
from swarms.engine import Step, Usage
from swarms.engine.checkpoints import TOOL_MODEL_PREFIX
from swarms.engine.events import (
    AGENT_COMPLETED,
    AGENT_DELEGATED,
    AGENT_MESSAGE,
    TERMINAL_EVENTS,
    TOOL_CALLED,
    TOOL_RESULT,
)
from swarms.engine.types import Decision
from swarms.models import (
    PAUSED_STATUSES,
    TERMINAL_STATUSES,
    Approval,
    ApprovalStatus,
    Run,
    RunEvent,
    RunStep,
    RunStepStatus,
    Swarm,
)

LOG_ACTIONS = {AGENT_DELEGATED: "delegate", AGENT_MESSAGE: "message",
               AGENT_COMPLETED: "complete", TOOL_CALLED: "tool_call"}  # fmt: skip


def run_workspace_for_swarm(*, caller: Caller, swarm: Swarm, workspace_id: str | None) -> str:
    """The workspace a run of `swarm` is made in: `workspace_id`, else the swarm's own, which a
    caller who sees the swarm through an integration must name (400). The caller must be an
    operator there (404 when no member, 403), and the swarm visible from it (404)."""
    if workspace_id is None:
        workspace_id = swarm.workspace_id
        if caller.role_in(workspace_id) is None:
            raise InvalidRequest(
                "This swarm is shared with you through an integration: pass the `workspaceId` "
                "to run it in."
            )
    caller.require_role(workspace_id, Role.OPERATOR)
    if (
        workspace_id != swarm.workspace_id
        and not Swarm.objects.visible_in([workspace_id]).filter(pk=swarm.pk).exists()
    ):
        raise NotFound(f"Swarm {swarm.pk} is not visible from workspace {workspace_id}.")
    return workspace_id


@dataclass(frozen=True)
class AgentCost:
    agent_id: str
    model: str
    cost_usd: Decimal
    tokens_in: int
    tokens_out: int
    tool_calls: int = 0
    tool_duration_ms: int = 0


@dataclass(frozen=True)
class ToolUse:
    """One tool's calls in a run: how many, how many failed (refusals among them), how long."""

    tool: str
    calls: int
    errors: int
    refused: int
    duration_ms: int


@dataclass(frozen=True)
class CostReport:
    total_usd: Decimal
    total_tokens: int
    agents: list[AgentCost]
    tools: list[ToolUse] = field(default_factory=list)


def run_cost_report(*, run: Run) -> CostReport:
    """Per agent and model, from the ledger. The total is the exact total rounded down to
    6 decimals (as the run's current cost shows it); agent costs are rounded so that they add
    up to it exactly (largest remainders get the leftover micro-dollars)."""
    rows = list(
        UsageRecord.objects.filter(run_id=run.pk)
        .values("agent_id", "model")
        .annotate(cost=Sum("cost_usd"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"))
        .order_by("agent_id", "model")
    )
    total, shown = money_shares([Decimal(r["cost"]) for r in rows])
    calls, duration, tools = _tool_uses(run)
    # A tool's calls are counted on its ledger row (`tool:<name>`), an LLM's rows count none.
    agents = [
        AgentCost(
            r["agent_id"], r["model"], shown[i], r["tokens_in"], r["tokens_out"],
            calls[(r["agent_id"], r["model"])], duration[(r["agent_id"], r["model"])],
        )
        for i, r in enumerate(rows)
    ]  # fmt: skip
    return CostReport(
        total_usd=total,
        total_tokens=sum(a.tokens_in + a.tokens_out for a in agents),
        agents=agents,
        tools=tools,
    )


def _tool_uses(
    run: Run,
) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]], list[ToolUse]]:
    """Tool calls (count, milliseconds) per agent and ledger model (`tool:<name>`), and per
    tool, from the run's `tool.result` events (one query)."""
    calls: Counter[tuple[str, str]] = Counter()
    duration: Counter[tuple[str, str]] = Counter()
    by_tool: dict[str, Counter[str]] = {}
    results = RunEvent.objects.filter(run_id=run.pk, type=TOOL_RESULT).values_list(
        "agent_id", "data"
    )
    for agent_id, data in results:
        spent = int(data.get("duration_ms") or 0)
        row = (agent_id, f"{TOOL_MODEL_PREFIX}{data.get('tool', '')}")
        calls[row] += 1
        duration[row] += spent
        tool = by_tool.setdefault(str(data.get("tool", "")), Counter())
        tool["calls"] += 1
        tool["errors"] += 1 if data.get("error") else 0
        tool["refused"] += 1 if data.get("rule_source") else 0
        tool["duration_ms"] += spent
    tools = [
        ToolUse(name, c["calls"], c["errors"], c["refused"], c["duration_ms"])
        for name, c in sorted(by_tool.items())
    ]
    return calls, duration, tools


def run_agent_logs(*, run: Run) -> list[dict]:
    events = RunEvent.objects.filter(run=run, type__in=list(LOG_ACTIONS)).order_by("seq")
    logs = []
    for event in events:
        data = event.data or {}
        summary = data.get("summary") or (data.get("output") or "")[:200]
        if event.type == TOOL_CALLED:
            summary = _clip(data.get("arguments") or "", 200)
        logs.append(
            {
                "agent_id": event.agent_id,
                "timestamp": event.created_at,
                "action": LOG_ACTIONS[event.type],
                "target": data.get("target") or data.get("tool"),
                "summary": summary,
            }
        )
    return logs


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_result(*, run: Run) -> dict:
    """A run's result (`/api/runs/{id}/result`, `/v1/swarms/{id}/result`): the run with its cost
    report, agent log and elapsed time."""
    return {
        "run": run,
        "cost_report": run_cost_report(run=run),
        "agent_logs": run_agent_logs(run=run),
        "elapsed_seconds": run_elapsed_seconds(run=run),
    }


def run_elapsed_seconds(*, run: Run) -> float | None:
    if run.started_at is None:
        return None
    end = run.completed_at
    if end is None:
        from django.utils import timezone

        end = timezone.now()
    return round((end - run.started_at).total_seconds(), 3)


def run_for_stream(*, caller: Caller, run_id: str, workspace_id: str | None = None) -> Run:
    """The run a stream may follow: visible to the caller (viewer is enough), and in
    `workspace_id` when the stream acts in one workspace (`/v1`). NotFound otherwise."""
    runs = Run.objects.for_caller(caller, Role.VIEWER)
    if workspace_id is not None:
        runs = runs.in_workspace(workspace_id)
    run = runs.filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"Run {run_id} not found.")
    return run


def run_events_after(*, run_id: str, after: int, upto: int | None = None, limit: int = 500):
    """Stored events with seq in (after, upto], oldest first, at most `limit`."""
    events = RunEvent.objects.filter(run_id=run_id, seq__gt=after)
    if upto is not None:
        events = events.filter(seq__lte=upto)
    return list(events.order_by("seq")[:limit])


def run_terminal_seq(*, run_id: str) -> int | None:
    """The seq of the run's terminal event, when it has one."""
    return (
        RunEvent.objects.filter(run_id=run_id, type__in=TERMINAL_EVENTS)
        .values_list("seq", flat=True)
        .first()
    )


# The most active runs a workspace stream's first message (its snapshot) lists.
WORKSPACE_SNAPSHOT_LIMIT = 200


def workspace_active_runs(*, workspace_id: str, limit: int = WORKSPACE_SNAPSHOT_LIMIT) -> list[Run]:
    return list(
        Run.objects.filter(workspace_id=workspace_id, status__in=["queued", "running"]).order_by(
            "created_at"
        )[:limit]
    )


@dataclass(frozen=True)
class Checkpoints:
    """What earlier attempts of a run left: settled steps to replay, money held by calls they
    left in flight, the `agent.delegated` events already emitted (not to emit them twice), and
    operators' decisions on the tool calls it paused for, by key."""

    steps: dict[str, Step]
    held_usd: Decimal
    delegations: Counter
    approvals: dict[str, Decision] = field(default_factory=dict)


def run_checkpoints(*, run_id: str) -> Checkpoints:
    steps: dict[str, Step] = {}
    held = Decimal(0)
    for row in RunStep.objects.filter(run_id=run_id).order_by("id"):
        if row.status == RunStepStatus.SETTLED:
            usage = Usage(
                agent_id=row.agent_id,
                model=row.model,
                provider=row.provider,
                tokens_in=row.tokens_in,
                tokens_out=row.tokens_out,
                cost_usd=row.cost_usd,
            )
            steps[row.key] = Step(
                row.key, row.agent_id, row.model, row.status, row.reserved_usd, usage, row.output
            )
        elif row.status == RunStepStatus.INTERRUPTED:
            held += row.reserved_usd
    delegations = Counter(
        delegation_key(event.agent_id, event.data)
        for event in RunEvent.objects.filter(run_id=run_id, type=AGENT_DELEGATED)
    )
    decided = Approval.objects.filter(run_id=run_id).exclude(status=ApprovalStatus.PENDING)
    approvals = {
        approval.key: Decision(
            approved=approval.status == ApprovalStatus.APPROVED,
            arguments=approval.edited_arguments or None,
            reason=approval.reason,
        )
        for approval in decided
    }
    return Checkpoints(steps=steps, held_usd=held, delegations=delegations, approvals=approvals)


def delegation_key(agent_id: str | None, data: dict) -> str:
    return json.dumps([agent_id or "", data], sort_keys=True)


def first_pending_approval(*, run_id: str) -> Approval | None:
    """The oldest call of the run waiting for a decision, with `pending`: how many wait."""
    pending = list(Approval.objects.filter(run_id=run_id, status=ApprovalStatus.PENDING)[:100])
    if not pending:
        return None
    first = pending[0]
    first.pending = len(pending)
    return first


# --- waiting for a run (`GET /api/runs/{id}/wait`) -----------------------------------------------
# A waiting request holds its own thread (Django runs each sync request on a thread of its own
# under ASGI) but no database connection between looks; at most this many wait at once in one
# process, the next is refused with 503 and Retry-After.
_WAITERS = threading.BoundedSemaphore(settings.SVERM_WAIT_MAX_WAITERS)
# Looks at the run's status start this often and slow down to the cap: a run that ends is seen
# within WAIT_POLL_MAX_SECONDS.
WAIT_POLL_FIRST_SECONDS = 0.05
WAIT_POLL_MAX_SECONDS = 0.5


def run_settled(status: str) -> bool:
    """A waiter's answer is due: the run has finished, or it waits for an operator."""
    return status in TERMINAL_STATUSES or status in PAUSED_STATUSES


def run_wait(*, run: Run, timeout: float) -> Run:
    """`run` once it has finished or paused for an operator, or as it is when `timeout` seconds
    have passed. Between looks the thread's database connection goes back to the pool (or is
    closed), so a thousand waiters do not hold a thousand connections."""
    if run_settled(run.status) or timeout <= 0:
        return run
    if not _WAITERS.acquire(blocking=False):
        raise ServiceUnavailable(
            "Too many requests are waiting for runs in this server process; retry shortly.",
            headers={"Retry-After": "1"},
        )
    try:
        deadline = time.monotonic() + timeout
        pause = WAIT_POLL_FIRST_SECONDS
        status = run.status
        while not run_settled(status):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _release_connection()
            time.sleep(min(pause, left))
            pause = min(pause * 1.5, WAIT_POLL_MAX_SECONDS)
            status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
            if status is None:  # purged meanwhile
                raise NotFound(f"Run {run.pk} not found.")
        run.refresh_from_db()
        return run
    finally:
        _WAITERS.release()


def _release_connection() -> None:
    """Give the thread's connection back (to the pool, or closed) unless a transaction holds it
    (a test's, or a caller's atomic block): the next query takes one again."""
    if not connection.in_atomic_block:
        connection.close()
