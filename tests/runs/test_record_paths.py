"""Each backend writes a batch its own way: PostgreSQL in one statement of CTEs, SQLite in fixed
SQL statements; the ORM path, which any backend can take, is the reference. The same batches
through the backend's own path and the ORM's must leave the same rows: events, checkpoints,
ledger, rollup and the run row, and nothing at all once the lease is lost."""

from decimal import Decimal

import pytest
from django.db import connection

from billing.models import MonthlyUsage, UsageRecord
from swarms.engine import RunResult, Step, Usage
from swarms.models import Run, RunEvent, RunStatus, RunStep
from swarms.services.lifecycle import run_finish
from swarms.services.recorders import OrmRecorder, SqliteRecorder, StatementRecorder, recorder_for
from tests.factories import make_run

NATIVE_RECORDERS = {"postgresql": StatementRecorder, "sqlite": SqliteRecorder}
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor not in NATIVE_RECORDERS, reason="no path of its own"),
]


def step(key: str, status: str, agent: str = "worker", cost: str = "0.004") -> Step:
    usage = None
    if status == "settled":
        usage = Usage(agent, "gpt-4o-mini", "simulated", 120, 45, Decimal(cost))
    return Step(key, agent, "gpt-4o-mini", status, Decimal("0.01"), usage,
                f"text of {key}" if usage else "")  # fmt: skip


BATCHES = [
    ([step("plan", "reserved", "lead")],
     [("run.started", "", {}), ("agent.started", "lead", {"role": "manager"})]),
    ([step("plan", "settled", "lead", "0.0021"), step("w-1", "reserved"), step("w-2", "reserved")],
     [("agent.message", "lead", {"text": "plan"}), ("agent.completed", "lead", {}),
      ("agent.started", "worker", {}), ("agent.started", "worker", {})]),
    ([step("w-1", "settled", cost="0.0034"), step("w-2", "released")],
     [("run.progress", "", {"progress": 0.5, "agents_active": 1, "cost_usd": "0.0055"}),
      ("agent.completed", "worker", {})]),
    ([step("w-1", "settled", cost="0.0034"), step("w-3", "reserved")], []),  # a retried settle
    ([step("w-3", "interrupted")], [("agent.completed", "worker", {})]),
]  # fmt: skip


def state(run: Run) -> dict:
    run.refresh_from_db()
    return {
        "run": (run.last_seq, run.agents_active, run.progress, run.current_cost_usd),
        "events": list(RunEvent.objects.filter(run=run).order_by("seq").values_list(
            "seq", "type", "agent_id", "data")),
        "steps": sorted(RunStep.objects.filter(run=run).values_list(
            "key", "attempt", "agent_id", "status", "provider", "reserved_usd", "cost_usd",
            "tokens_in", "tokens_out", "output")),
        "ledger": sorted(UsageRecord.objects.filter(run_id=run.pk).values_list(
            "workspace_id", "swarm_type", "agent_id", "model", "provider", "tokens_in",
            "tokens_out", "cost_usd")),
    }  # fmt: skip


def rollup(workspace) -> tuple:
    row = MonthlyUsage.objects.get(workspace=workspace, swarm_type="custom")
    return (row.tokens_in, row.tokens_out, row.cost_usd)


STATEMENT, ORM = NATIVE_RECORDERS.get(connection.vendor, OrmRecorder)(), OrmRecorder()


def test_the_backend_records_through_its_own_path():
    assert type(recorder_for(connection)) is NATIVE_RECORDERS[connection.vendor]
    # A batch that reserves a call and changes it goes through the ORM everywhere.
    twice = [step("w-1", "reserved"), step("w-1", "released")]
    assert type(recorder_for(connection, steps=twice)) is OrmRecorder


def record(recorder, run: Run, steps: list[Step], events: list) -> list[RunEvent] | None:
    return recorder.record(run=run, lease=1, steps=steps, events=events)


def test_both_paths_leave_the_same_rows(workspace):
    one, other = make_run(workspace), make_run(workspace)
    for steps, events in BATCHES:
        record(STATEMENT, one, steps, events)
    after_one = rollup(workspace)
    for steps, events in BATCHES:
        record(ORM, other, steps, events)
    after_both = rollup(workspace)

    assert state(one) == state(other)
    # Charged once per settled call, retries included, and the rollup moved by the same.
    assert [row[-1] for row in state(one)["ledger"]] == [Decimal("0.0021"), Decimal("0.0034")]
    assert after_one == (240, 90, Decimal("0.0055"))
    assert after_both == (480, 180, Decimal("0.0110"))
    assert state(one)["run"] == (9, 0, 0.5, Decimal("0.0055"))
    assert {row[0]: row[3] for row in state(one)["steps"]} == {
        "plan": "settled", "w-1": "settled", "w-2": "released", "w-3": "interrupted",
    }  # fmt: skip


def test_a_lost_lease_writes_nothing_on_the_backends_path(workspace):
    run = make_run(workspace)
    record(STATEMENT, run, *BATCHES[0])
    before = state(run)
    Run.objects.filter(pk=run.pk).update(attempt=2)
    assert record(STATEMENT, run, *BATCHES[1]) is None
    assert state(run)["events"] == before["events"]
    assert state(run)["steps"] == before["steps"]
    assert not UsageRecord.objects.filter(run_id=run.pk).exists()


def test_finishing_on_the_backends_path_ends_the_run_as_the_orm_path_does(workspace):
    one, other = make_run(workspace), make_run(workspace)
    for run in (one, other):
        record(ORM, run, *BATCHES[0])
    result = RunResult("failed", "partial text", "budget_exceeded", "Out of money.", (),
                       Decimal("0.0042"))  # fmt: skip
    terminal = ("run.failed", {"error_code": "budget_exceeded", "cost_usd": "0.0042"})
    assert run_finish(run_id=one.pk, result=result, lease=1, terminal=terminal, run=one)
    assert run_finish(run_id=other.pk, result=result, lease=1, terminal=terminal)
    ended = [Run.objects.get(pk=run.pk) for run in (one, other)]
    assert {(r.status, r.output, r.error_code, r.error_message, r.current_cost_usd,
             r.agents_active, r.progress, r.last_seq) for r in ended} == {
        ("failed", "partial text", "budget_exceeded", "Out of money.", Decimal("0.0042"), 0, 0.0,
         3)
    }  # fmt: skip
    assert all(r.completed_at is not None for r in ended)
    assert state(one)["events"] == state(other)["events"]
    # Once ended, or by an attempt that lost the run, nothing more.
    assert not run_finish(run_id=one.pk, result=result, lease=1, terminal=terminal, run=one)
    lost = make_run(workspace)
    Run.objects.filter(pk=lost.pk).update(attempt=2)
    assert not run_finish(run_id=lost.pk, result=result, lease=1, terminal=terminal, run=lost)
    assert Run.objects.get(pk=lost.pk).status == RunStatus.RUNNING
    assert Run.objects.get(pk=one.pk).last_seq == 3
