"""Billing's two ways of writing LLM calls into the ledger and its monthly rollup agree: the CTEs
that the run recorder composes into its one PostgreSQL statement (`usage_records_add_sql`) and
the ORM's `usage_records_add` write the same ledger rows and move the rollup by the same
amounts, whether the calls come straight from billing or as a run's settled steps."""

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import workspace_create
from billing.models import MonthlyUsage, UsageRecord
from billing.services import usage_records_add, usage_records_add_sql
from swarms.engine import Step, Usage
from swarms.models import Run, RunStatus
from swarms.services.recorders import OrmRecorder, StatementRecorder

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="billing's PostgreSQL CTEs"),
]

SWARM_TYPE = "research-swarm-v1"
# agent, model, provider, tokens in, tokens out, cost
CALLS = [
    ("manager", "gpt-4o-mini", "openai", 120, 45, Decimal("0.0021")),
    ("researcher-1", "deepseek-chat", "deepseek", 300, 80, Decimal("0.0000123456")),
    ("writer", "gpt-4o-mini", "openai", 900, 400, Decimal("0.0134")),
]


@pytest.fixture
def workspaces(user):
    return workspace_create(name="Statement", owner=user), workspace_create(name="ORM", owner=user)


def through_the_statement(workspace, calls, at) -> None:
    ledger, params = usage_records_add_sql(
        calls="calls", workspace_id=workspace.pk, run_id="run_parity", swarm_id="swm_parity",
        swarm_type=SWARM_TYPE, at=at, user_id="usr_parity", api_key_id="key_parity",
    )  # fmt: skip
    columns = list(zip(*calls, strict=True)) if calls else [[]] * 6
    names = ["agents", "models", "providers", "tins", "touts", "costs"]
    params.update(zip(names, map(list, columns), strict=True))
    source = """calls AS (SELECT * FROM unnest(%(agents)s::text[], %(models)s::text[],
      %(providers)s::text[], %(tins)s::int[], %(touts)s::int[], %(costs)s::numeric[])
      AS x(agent_id, model, provider, tokens_in, tokens_out, cost_usd))"""
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {source},\n{ledger}\nSELECT 1", params)


def through_the_orm(workspace, calls, at) -> None:
    usage_records_add(
        [
            UsageRecord(
                workspace_id=workspace.pk, run_id="run_parity", swarm_id="swm_parity",
                swarm_type=SWARM_TYPE, agent_id=agent, model=model, provider=provider,
                tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost, created_at=at,
                user_id="usr_parity", api_key_id="key_parity",
            )
            for agent, model, provider, tokens_in, tokens_out, cost in calls
        ]
    )  # fmt: skip


def ledger_rows(workspace) -> list[tuple]:
    return sorted(
        UsageRecord.objects.filter(workspace=workspace).values_list(
            "run_id", "swarm_id", "swarm_type", "agent_id", "model", "provider", "tokens_in",
            "tokens_out", "cost_usd", "created_at", "user_id", "api_key_id",
        )
    )  # fmt: skip


def rollup_rows(workspace) -> list[tuple]:
    return sorted(
        MonthlyUsage.objects.filter(workspace=workspace).values_list(
            "month", "swarm_type", "runs", "tokens_in", "tokens_out", "cost_usd", "shown_cost_usd"
        )
    )


def test_the_statements_ledger_part_writes_what_usage_records_add_writes(workspaces):
    by_statement, by_orm = workspaces
    at = timezone.now()
    for calls in (CALLS, [], CALLS[1:]):  # a first batch, an empty one, one on top
        through_the_statement(by_statement, calls, at)
        through_the_orm(by_orm, calls, at)
        assert ledger_rows(by_statement) == ledger_rows(by_orm)
        assert rollup_rows(by_statement) == rollup_rows(by_orm)
    (rollup,) = rollup_rows(by_statement)
    # shown: the run's 0.0155123456 -> 0.015512, then its 0.0289246912 -> 0.028924
    assert rollup[2:] == (0, 2520, 1005, Decimal("0.0289246912"), Decimal("0.028924"))


def test_an_empty_batch_writes_no_rollup_row(workspaces):
    by_statement, _ = workspaces
    through_the_statement(by_statement, [], timezone.now())
    assert ledger_rows(by_statement) == rollup_rows(by_statement) == []


def steps(status: str) -> list[Step]:
    """A step per call: reserved, or settled with its usage."""
    return [
        Step(f"call-{index}", agent, model, status, Decimal("0.05"),
             Usage(agent, model, provider, tokens_in, tokens_out, cost)
             if status == "settled" else None, f"text {index}")
        for index, (agent, model, provider, tokens_in, tokens_out, cost) in enumerate(CALLS)
    ]  # fmt: skip


def test_a_runs_settled_steps_are_charged_alike_by_both_recorders(workspaces):
    for workspace, recorder in zip(workspaces, (StatementRecorder(), OrmRecorder()), strict=True):
        run = Run.objects.create(
            workspace=workspace, swarm_type=SWARM_TYPE, task="t", definition={},
            max_budget_usd=Decimal(1), estimated_cost_usd=Decimal("0.1"),
            status=RunStatus.RUNNING, attempt=1,
        )  # fmt: skip
        recorder.record(run=run, lease=1, steps=steps("reserved"), events=[])
        recorder.record(run=run, lease=1, steps=steps("settled"), events=[])
        recorder.record(run=run, lease=1, steps=steps("settled"), events=[])  # retried: no charge

    def charged(workspace) -> list[tuple]:
        return [row[3:9] for row in ledger_rows(workspace)]  # agent .. cost

    by_statement, by_orm = workspaces
    assert charged(by_statement) == charged(by_orm) == sorted(CALLS)
    assert rollup_rows(by_statement) == rollup_rows(by_orm)
