"""Retention test helpers: finished runs with events, output, webhook log and ledger rows, made
at chosen moments relative to one fixed `NOW` that every pass is given."""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum

from accounts.models import Workspace
from billing.models import MonthlyUsage, UsageRecord
from billing.services import usage_record_add
from swarms.models import Run, RunEvent, RunStatus, Swarm, WebhookDelivery
from tests.factories import make_run

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
OUTPUT = "## Findings\n\nHydrogen in Norway is mostly grey today."
_messages = itertools.count(1)


def finished_run(
    workspace: Workspace,
    *,
    ago: timedelta,
    swarm: Swarm | None = None,
    status: str = RunStatus.COMPLETED,
    output: str = OUTPUT,
    events: int = 4,
    cost: str = "0.0123",
) -> Run:
    """A run that ended `ago` before NOW: `events` agent events then its terminal event (which
    carries the output when completed), and one ledger row of `cost` (through the service, so
    the monthly rollup counts it too)."""
    completed_at = NOW - ago
    run = make_run(
        workspace,
        swarm=swarm,
        version=swarm.default_version if swarm else None,
        template_id="" if swarm else "research-swarm-v1",
        swarm_type="custom" if swarm else "research-swarm-v1",
        status=status,
        progress=1.0 if status == RunStatus.COMPLETED else 0.5,
        estimated_cost_usd=Decimal("0.05"),
        current_cost_usd=Decimal(cost),
        output=output,
        error_code="budget_exceeded" if status == RunStatus.FAILED else "",
        error_message="Stopped by its budget." if status == RunStatus.FAILED else "",
        created_at=completed_at - timedelta(minutes=5),
        started_at=completed_at - timedelta(minutes=4),
        completed_at=completed_at,
    )
    for seq in range(1, events + 1):
        RunEvent.objects.create(
            run=run, seq=seq, type="agent.completed", agent_id=f"agent-{seq}",
            data={"output": f"part {seq}", "cost_usd": "0.001"}, created_at=completed_at,
        )  # fmt: skip
    terminal = {"cost_usd": cost}
    if status == RunStatus.COMPLETED:
        terminal["output"] = output
    RunEvent.objects.create(
        run=run, seq=events + 1, type=f"run.{status}", data=terminal, created_at=completed_at
    )
    Run.objects.filter(pk=run.pk).update(last_seq=events + 1)
    usage_record_add(
        workspace_id=workspace.pk, run_id=run.pk, swarm_id=swarm.pk if swarm else "",
        swarm_type=run.swarm_type, agent_id="manager", model="gpt-4o-mini", provider="openai",
        tokens_in=100, tokens_out=50, cost_usd=Decimal(cost), created_at=completed_at,
    )  # fmt: skip
    run.refresh_from_db()
    return run


def active_run(workspace: Workspace, status: str, *, ago: timedelta) -> Run:
    """A queued or running run created `ago` before NOW, with output and events so far."""
    run = make_run(
        workspace, task="Still going", status=status, estimated_cost_usd=Decimal("0.05"),
        output="partial", created_at=NOW - ago,
        started_at=None if status == RunStatus.QUEUED else NOW - ago,
    )  # fmt: skip
    for seq in (1, 2):
        RunEvent.objects.create(run=run, seq=seq, type="agent.started", data={})
    return run


def delivery(run: Run, *, next_attempt_at: datetime | None = None) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        run=run, workspace_id=run.workspace_id, message_id=f"msg_{next(_messages)}", attempt=1,
        url="https://hooks.example.com/sverm", event_type=f"run.{run.status}", status_code=500,
        next_attempt_at=next_attempt_at,
    )  # fmt: skip


def event_types(run: Run) -> list[str]:
    return list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))


def assert_pruned(run: Run) -> None:
    """Only the terminal event is left, and neither it nor the run holds output; the rest of
    the row is as it was."""
    before = run
    after = Run.objects.get(pk=run.pk)
    assert after.output == ""
    events = list(RunEvent.objects.filter(run=run))
    assert [event.type for event in events] == [f"run.{before.status}"]
    assert events[0].data.get("output", "") == ""
    assert "cost_usd" in events[0].data  # the rest of the terminal event is kept
    assert not WebhookDelivery.objects.filter(run=run).exists()
    for name in ("status", "current_cost_usd", "completed_at", "started_at", "error_code",
                 "error_message", "task", "progress", "last_seq"):  # fmt: skip
        assert getattr(after, name) == getattr(before, name), name


def assert_untouched(run: Run, events: int = 5) -> None:
    after = Run.objects.get(pk=run.pk)
    assert after.output == run.output != ""
    assert RunEvent.objects.filter(run=run).count() == events


def billing_snapshot() -> tuple:
    """Everything billing holds, to compare before and after a pass."""
    ledger = UsageRecord.objects.aggregate(cost=Sum("cost_usd"), tokens=Sum("tokens_in"))
    rows = list(
        UsageRecord.objects.order_by("pk").values_list("pk", "run_id", "swarm_id", "cost_usd")
    )
    rollup = list(
        MonthlyUsage.objects.order_by("pk").values_list("pk", "runs", "tokens_in", "cost_usd")
    )
    return ledger["cost"], ledger["tokens"], rows, rollup
