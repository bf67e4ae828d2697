"""Runs executing on the real thread executor (simulated provider): queued -> running ->
completed, the event stream, the usage ledger and its monthly rollup, the `/v1` result with its
cost report, every built-in template, and a budget that runs out mid-run."""

from datetime import datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal

import pytest

from accounts.roles import Role
from billing.models import MonthlyUsage
from billing.services import month_of
from sverm.money import money
from swarms.models import Run, RunStatus
from templates_app.models import SwarmTemplate
from templates_app.services import builtin_sources
from tests.conftest import assert_v1_error
from tests.runs.conftest import (
    INLINE_YAML,
    V1_AGENT_COST_KEYS,
    V1_AGENT_LOG_KEYS,
    V1_COST_REPORT_KEYS,
    V1_RESULT_KEYS,
    V1_STATUS_KEYS,
    decimal_json,
    event_types,
    events_of,
    is_json_number,
    ledger,
    ledger_total,
    wait_for_event,
    wait_terminal,
)

pytestmark = pytest.mark.usefixtures("executing")

TASK = "Investigate Norwegian hydrogen economy"
BUILTIN_IDS = sorted(builtin_sources())
SIX_PLACES = Decimal("0.000001")


@pytest.fixture
def operator(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


def start(client, template: str, task: str = TASK, **extra) -> str:
    response = client.post("/v1/swarms", {"template": template, "task": task, **extra},
                           format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    return response.json()["swarm_id"]


def finish(client, run_id: str) -> dict:
    return wait_terminal(client, f"/v1/swarms/{run_id}")


def check_events(run_id: str, last: str) -> list:
    """Seq 1..n without gaps, framed by run.started and the terminal event; returns them."""
    events = events_of(run_id)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run.started"
    assert events[-1].type == last
    terminal = {"run.completed", "run.failed", "run.cancelled"}
    assert [event.type for event in events if event.type in terminal] == [last]
    assert Run.objects.get(pk=run_id).last_seq == len(events)
    stamps = [event.created_at for event in events]
    assert stamps == sorted(stamps)
    return events


def check_money(run: Run, result: dict) -> None:
    """Ledger == run cost == cost report, each agent's share adding up exactly, within budget."""
    rows = ledger(run.pk)
    exact = ledger_total(run.pk)
    assert rows, "no ledger rows"
    assert run.current_cost_usd == exact
    assert exact <= run.max_budget_usd
    report = result["cost_report"]
    assert set(report) == V1_COST_REPORT_KEYS
    assert is_json_number(report["total_usd"])
    assert report["total_usd"] == money(exact)
    assert sum((agent["cost_usd"] for agent in report["agents"]), Decimal(0)) == report["total_usd"]
    assert report["total_tokens"] == sum(row.tokens_in + row.tokens_out for row in rows)
    by_agent: dict[tuple[str, str], list] = {}
    for row in rows:
        by_agent.setdefault((row.agent_id, row.model), []).append(row)
    assert [(a["agent_id"], a["model"]) for a in report["agents"]] == sorted(by_agent)
    for agent in report["agents"]:
        assert set(agent) == V1_AGENT_COST_KEYS
        assert is_json_number(agent["cost_usd"])
        mine = by_agent[(agent["agent_id"], agent["model"])]
        assert agent["tokens_in"] == sum(row.tokens_in for row in mine)
        assert agent["tokens_out"] == sum(row.tokens_out for row in mine)
        share = sum((row.cost_usd for row in mine), Decimal(0))
        # Rounded down, plus at most one leftover micro-dollar.
        assert money(share) <= agent["cost_usd"] <= money(share) + SIX_PLACES
    for row in rows:
        assert (row.workspace_id, row.swarm_type) == (run.workspace_id, run.swarm_type)
        assert row.swarm_id == (run.swarm_id or "")
        assert row.provider == "simulated"
        assert row.tokens_in > 0 and row.tokens_out > 0 and row.cost_usd > 0


def check_rollup(run: Run) -> None:
    rows = ledger(run.pk)
    rollup = MonthlyUsage.objects.get(
        workspace_id=run.workspace_id, month=month_of(run.created_at), swarm_type=run.swarm_type
    )
    assert rollup.runs == 1
    assert rollup.cost_usd == ledger_total(run.pk)
    assert rollup.tokens_in == sum(row.tokens_in for row in rows)
    assert rollup.tokens_out == sum(row.tokens_out for row in rows)


# ---------------------------------------------------------------------------------------------
# A research run from start to finish, through /v1
# ---------------------------------------------------------------------------------------------
def test_a_research_run_completes_with_a_consistent_result(operator, workspace):
    run_id = start(operator, "research-swarm-v1", max_budget_usd=2.50)
    status = finish(operator, run_id)
    assert set(status) == V1_STATUS_KEYS
    assert status["status"] == "completed", status
    assert status["progress"] == 1.0
    assert (status["agents_active"], status["agents_total"]) == (0, 5)
    assert status["simulated"] is True

    run = Run.objects.get(pk=run_id)
    assert run.started_at is not None and run.completed_at is not None
    assert run.created_at <= run.started_at <= run.completed_at
    assert (run.error_code, run.error_message) == ("", "")
    assert run.output.startswith("## ")

    events = check_events(run_id, "run.completed")
    assert events[0].data["agents_total"] == 5
    assert events[0].data["topology"] == "hierarchical"
    assert events[0].data["simulated"] is True
    assert events[-1].data["output"] == run.output
    assert Decimal(events[-1].data["cost_usd"]) == run.current_cost_usd
    progress = [event.data["progress"] for event in events if event.type == "run.progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    started = [e.agent_id for e in events if e.type == "agent.started"]
    completed = [e.agent_id for e in events if e.type == "agent.completed"]
    assert (
        sorted(started)
        == sorted(completed)
        == sorted(["manager", "researcher-1", "researcher-2", "researcher-3", "writer"])
    )
    delegated = [e for e in events if e.type == "agent.delegated"]
    assert {(e.agent_id, e.data["target"]) for e in delegated} == {
        ("manager", f"researcher-{n}") for n in (1, 2, 3)
    }
    assert len(ledger(run_id)) == len(started)

    response = operator.get(f"/v1/swarms/{run_id}/result")
    assert response.status_code == 200, response.content
    result = decimal_json(response)
    assert set(result) == V1_RESULT_KEYS
    assert (result["swarm_id"], result["status"]) == (run_id, "completed")
    assert result["output"] == run.output
    assert result["error"] is None
    assert result["simulated"] is True
    assert datetime.fromisoformat(result["created_at"]) == run.created_at
    assert datetime.fromisoformat(result["completed_at"]) == run.completed_at
    elapsed = Decimal(str((run.completed_at - run.started_at).total_seconds()))
    assert abs(result["elapsed_seconds"] - elapsed) <= Decimal("0.001")
    assert result["elapsed_seconds"] > 0
    check_money(run, result)
    assert status["current_cost_usd"] == result["cost_report"]["total_usd"]
    assert result["cost_report"]["total_usd"] <= Decimal("2.50")
    assert {agent["agent_id"] for agent in result["cost_report"]["agents"]} == set(started)

    logs = result["agent_logs"]
    for log in logs:
        assert set(log) == V1_AGENT_LOG_KEYS
        assert log["timestamp"].endswith("Z")
    assert {log["action"] for log in logs} == {"delegate", "message", "complete"}
    delegations = [log for log in logs if log["action"] == "delegate"]
    assert [(log["agent_id"], log["target"]) for log in delegations] == [
        ("manager", f"researcher-{n}") for n in (1, 2, 3)
    ]
    assert all(log["summary"] for log in delegations)
    assert all(log["target"] is None for log in logs if log["action"] != "delegate")
    assert sorted(log["agent_id"] for log in logs if log["action"] == "complete") == sorted(started)
    stamps = [datetime.fromisoformat(log["timestamp"]) for log in logs]
    assert stamps == sorted(stamps)
    check_rollup(run)

    # Cancelling a completed run is a conflict that changes nothing.
    assert_v1_error(operator.delete(f"/v1/swarms/{run_id}"), 409, "conflict")
    assert Run.objects.get(pk=run_id).status == RunStatus.COMPLETED
    assert len(events_of(run_id)) == len(events)


def test_an_inline_yaml_run_completes_as_a_custom_swarm(operator):
    run_id = start(operator, INLINE_YAML)
    assert finish(operator, run_id)["status"] == "completed"
    run = Run.objects.get(pk=run_id)
    assert run.swarm_type == "custom"
    check_events(run_id, "run.completed")
    result = decimal_json(operator.get(f"/v1/swarms/{run_id}/result"))
    check_money(run, result)
    check_rollup(run)
    assert {a["agent_id"] for a in result["cost_report"]["agents"]} == {
        "lead", "digger-1", "digger-2", "scribe"
    }  # fmt: skip
    targets = [log["target"] for log in result["agent_logs"] if log["action"] == "delegate"]
    assert targets == ["digger-1", "digger-2"]


def test_the_rollup_adds_up_over_several_runs(operator, workspace):
    ids = [start(operator, INLINE_YAML, task=f"Topic number {n}") for n in range(3)]
    for run_id in ids:
        assert finish(operator, run_id)["status"] == "completed"
    rollup = MonthlyUsage.objects.get(workspace=workspace, swarm_type="custom")
    assert rollup.runs == 3
    assert rollup.cost_usd == sum((ledger_total(run_id) for run_id in ids), Decimal(0))
    assert rollup.cost_usd == sum(
        (r.current_cost_usd for r in Run.objects.filter(pk__in=ids)), Decimal(0)
    )


# ---------------------------------------------------------------------------------------------
# Every built-in template
# ---------------------------------------------------------------------------------------------
def test_the_builtin_templates_in_the_database_are_the_shipped_ones():
    stored = SwarmTemplate.objects.filter(workspace__isnull=True).values_list("id", flat=True)
    assert sorted(stored) == BUILTIN_IDS
    assert {"research-swarm-v1", "debate-swarm-v1"} <= set(BUILTIN_IDS)


@pytest.mark.parametrize("template_id", BUILTIN_IDS)
def test_every_builtin_template_runs_to_completion(operator, workspace, template_id):
    template = SwarmTemplate.objects.get(pk=template_id, workspace__isnull=True)
    run_id = start(operator, template_id, task="Should Norway build more offshore wind farms?")
    status = finish(operator, run_id)
    assert status["status"] == "completed", Run.objects.get(pk=run_id).error_message
    assert status["progress"] == 1.0
    run = Run.objects.get(pk=run_id)
    assert run.definition == template.definition
    assert run.output
    events = check_events(run_id, "run.completed")
    assert events[0].data["topology"] == template.topology
    agents = {e.agent_id for e in events if e.type == "agent.completed"}
    assert len(agents) == status["agents_total"] == run.agents_total
    result = decimal_json(operator.get(f"/v1/swarms/{run_id}/result"))
    assert result["output"] == run.output
    check_money(run, result)
    check_rollup(run)
    assert run.current_cost_usd <= run.estimated_cost_usd * 2  # the estimate is in the ballpark


# ---------------------------------------------------------------------------------------------
# A budget that passes the estimate but not the run's worst cases
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", ["minimum_cost", "estimated_cost"])
def test_any_budget_the_api_accepts_completes_within_it(operator, threshold):
    """Issue 13: a budget between the expected cost and the worst case used to pass creation
    and fail `budget_exceeded` at the writer after spending money. Each call's max_tokens is now
    clamped to what the budget can pay beside the floors of the calls after it, so the least
    budget the API accepts (and the estimate) completes."""
    refused = operator.post("/v1/swarms", {"template": "research-swarm-v1", "task": TASK,
                                           "max_budget_usd": 0.000001}, format="json")  # fmt: skip
    assert_v1_error(refused, 422, "budget_exceeded")
    least = decimal_json(refused)["error"]["details"][threshold]
    budget = (least + SIX_PLACES).quantize(SIX_PLACES, rounding=ROUND_UP)
    run_id = start(operator, "research-swarm-v1", max_budget_usd=str(budget))
    status = finish(operator, run_id)
    assert status["status"] == "completed", status
    run = Run.objects.get(pk=run_id)
    assert run.max_budget_usd == budget
    assert run.current_cost_usd == ledger_total(run_id)
    assert 0 < run.current_cost_usd <= budget
    events = check_events(run_id, "run.completed")
    started = {e.agent_id: e.data for e in events if e.type == "agent.started"}
    assert set(started) == {"manager", "researcher-1", "researcher-2", "researcher-3", "writer"}
    # The budget is below the worst case: some calls were clamped, and say so.
    assert any("max_tokens" in data for data in started.values())

    result = decimal_json(operator.get(f"/v1/swarms/{run_id}/result"))
    assert result["status"] == "completed"
    check_money(run, result)
    assert result["cost_report"]["total_usd"] <= budget
    check_rollup(run)


def test_an_expensive_inline_writer_is_clamped_to_what_the_budget_leaves(operator):
    """The writer could cost up to 32768 output tokens on gpt-4o ($0.33): more than the budget,
    so it is started with the output tokens the budget still pays for."""
    costly = INLINE_YAML.replace("model: gpt-4o-mini\n    max_tokens: 512",
                                 "model: gpt-4o\n    max_tokens: 32768")  # fmt: skip
    run_id = start(operator, costly, max_budget_usd=0.25)
    assert finish(operator, run_id)["status"] == "completed"
    run = Run.objects.get(pk=run_id)
    assert 0 < run.current_cost_usd <= Decimal("0.25")
    events = check_events(run_id, "run.completed")
    (writer,) = [e for e in events if e.type == "agent.started" and e.agent_id == "scribe"]
    assert 64 <= writer.data["max_tokens"] < 32768
    assert writer.data["max_tokens"] * Decimal(10) / 1_000_000 <= Decimal("0.25")


def test_a_failed_run_cannot_be_cancelled(executing, operator):
    executing.SVERM_SIMULATED_LATENCY = 0.3
    executing.SVERM_RUN_TIMEOUT_SECONDS = 0.05  # fails `timeout` during its first call
    run_id = start(operator, "research-swarm-v1")
    status = finish(operator, run_id)
    run = Run.objects.get(pk=run_id)
    # The status says why, not only /result (issue 13).
    assert (status["status"], run.error_code) == ("failed", "timeout")
    assert status["error"] == {"code": "timeout", "message": run.error_message}
    before = len(events_of(run_id))
    error = assert_v1_error(operator.delete(f"/v1/swarms/{run_id}"), 409, "conflict")
    assert "failed" in error["message"]
    assert Run.objects.get(pk=run_id).status == RunStatus.FAILED
    assert len(events_of(run_id)) == before


def test_money_fields_are_rounded_down_never_up(operator):
    run_id = start(operator, "research-swarm-v1")
    finish(operator, run_id)
    run = Run.objects.get(pk=run_id)
    status = decimal_json(operator.get(f"/v1/swarms/{run_id}"))
    assert status["current_cost_usd"] == run.current_cost_usd.quantize(
        SIX_PLACES, rounding=ROUND_DOWN
    )


# ---------------------------------------------------------------------------------------------
# The live status while agents work
# ---------------------------------------------------------------------------------------------
def test_progress_and_cost_move_while_the_run_is_running(executing, operator):
    executing.SVERM_SIMULATED_LATENCY = 0.2
    run_id = start(operator, "research-swarm-v1")
    wait_for_event(run_id, "agent.delegated")
    status = decimal_json(operator.get(f"/v1/swarms/{run_id}"))
    assert status["status"] == "running"
    assert 0 < status["progress"] < 1
    assert 0 < status["current_cost_usd"] == money(ledger_total(run_id))
    assert finish(operator, run_id)["status"] == "completed"


def test_agents_active_counts_the_agent_in_flight(executing, operator):
    executing.SVERM_SIMULATED_LATENCY = 0.5
    run_id = start(operator, "research-swarm-v1")
    wait_for_event(run_id, "agent.started")
    status = decimal_json(operator.get(f"/v1/swarms/{run_id}"))
    in_flight = event_types(run_id)
    assert "agent.completed" not in in_flight  # the manager is still planning
    assert (status["status"], status["agents_active"]) == ("running", 1)
