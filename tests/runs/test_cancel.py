"""Cancelling runs: a queued run stops at once; a running one is asked to stop, the answer not
waiting for it, and stops mid-flight (calls in flight aborted, partial output and cost kept,
nothing written after `run.cancelled`); finished runs answer 409; cancelling twice is harmless.
Plus a run whose executor breaks."""

import time
from decimal import Decimal

import pytest
from django.db import OperationalError

from accounts.roles import Role
from sverm.money import money
from swarms import executor
from swarms.models import Run, RunStatus
from tests.conftest import assert_problem, assert_v1_error
from tests.factories import create_run, make_run
from tests.runs.conftest import (
    decimal_json,
    event_types,
    events_of,
    ledger,
    ledger_total,
    wait_for_event,
    wait_terminal,
    wait_until,
)
from tests.waiting import wait_for

TASK = "Investigate Norwegian hydrogen economy"


@pytest.fixture
def operator(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


def start(client, **extra) -> str:
    body = {"template": "research-swarm-v1", "task": TASK, **extra}
    response = client.post("/v1/swarms", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["swarm_id"]


# ---------------------------------------------------------------------------------------------
# Queued runs (never dispatched under `db`)
# ---------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("not_executing")
def test_a_queued_run_is_cancelled_at_once_through_the_api(api_client, workspace):
    run = create_run(workspace)
    response = api_client.post(f"/api/runs/{run.pk}/cancel")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["status"]) == (run.pk, "cancelled")
    assert body["completedAt"] is not None
    assert body["currentCostUsd"] == 0
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    events = events_of(run.pk)
    assert [(e.seq, e.type) for e in events] == [(1, "run.cancelled")]
    assert events[0].data == {"cost_usd": "0"}
    again = api_client.post(f"/api/runs/{run.pk}/cancel")
    assert again.status_code == 200, again.content
    assert again.json()["status"] == "cancelled"
    assert len(events_of(run.pk)) == 1


@pytest.mark.usefixtures("not_executing")
def test_a_viewer_cannot_cancel_through_the_api(client_for, member_of, workspace):
    run = create_run(workspace)
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert_problem(viewer.post(f"/api/runs/{run.pk}/cancel"), 403, "forbidden")
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert event_types(run.pk) == []


@pytest.mark.usefixtures("not_executing")
@pytest.mark.parametrize("status", [RunStatus.COMPLETED, RunStatus.FAILED])
def test_a_finished_run_cannot_be_cancelled_through_the_api(api_client, workspace, status):
    run = create_run(workspace, status=status)
    problem = assert_problem(api_client.post(f"/api/runs/{run.pk}/cancel"), 409, "conflict")
    assert status in problem["detail"]
    run.refresh_from_db()
    assert run.status == status


@pytest.mark.usefixtures("not_executing")
def test_cancelling_another_workspaces_run_is_404(api_client, other_workspace):
    run = create_run(other_workspace)
    assert_problem(api_client.post(f"/api/runs/{run.pk}/cancel"), 404, "not_found")
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


# ---------------------------------------------------------------------------------------------
# Running runs, on the thread executor
# ---------------------------------------------------------------------------------------------
def test_a_running_run_is_cancelled_mid_flight(executing, operator):
    executing.SVERM_SIMULATED_LATENCY = 0.3
    run_id = start(operator, max_budget_usd=1)
    wait_until(operator, f"/v1/swarms/{run_id}", lambda body: body["status"] == "running")
    wait_for_event(run_id, "agent.started")
    began = time.monotonic()
    response = operator.delete(f"/v1/swarms/{run_id}")
    waited = time.monotonic() - began
    assert response.status_code == 200, response.content
    answer = decimal_json(response)
    assert set(answer) == {"swarm_id", "status", "cost_usd"}
    # The answer is the run as it stands (the seed has no "cancelling"): it stops right after.
    assert answer["swarm_id"] == run_id and answer["status"] in {"running", "cancelled"}
    assert waited < 2.0  # calls in flight are aborted, not waited for
    assert wait_terminal(operator, f"/v1/swarms/{run_id}")["status"] == "cancelled"

    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.CANCELLED
    assert run.cancel_requested_at is not None and run.completed_at is not None
    assert run.agents_active == 0
    assert run.progress < 1.0
    assert run.current_cost_usd == ledger_total(run_id) <= Decimal(1)
    assert "writer" not in {row.agent_id for row in ledger(run_id)}
    events = events_of(run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run.started"
    assert events[-1].type == "run.cancelled"
    assert event_types(run_id).count("run.cancelled") == 1
    assert "run.completed" not in event_types(run_id)
    # Nothing more is written once it is cancelled: no late event, no late charge. Looked at
    # once the attempt has returned (it drops its cancel token last, after every write).
    wait_for(lambda: run_id not in executor._local_tokens, "the cancelled attempt's return")
    assert len(events_of(run_id)) == len(events)
    assert ledger_total(run_id) == run.current_cost_usd
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED

    # Cancelling the cancelled run: 200, with the cost it ended with, and nothing new.
    again = operator.delete(f"/v1/swarms/{run_id}")
    assert again.status_code == 200, again.content
    body = decimal_json(again)
    assert body == {"swarm_id": run_id, "status": "cancelled",
                    "cost_usd": money(run.current_cost_usd)}  # fmt: skip
    assert len(events_of(run_id)) == len(events)
    result = decimal_json(operator.get(f"/v1/swarms/{run_id}/result"))
    assert result["status"] == "cancelled"
    assert result["error"] is None
    assert result["output"] == run.output
    assert result["cost_report"]["total_usd"] == body["cost_usd"]


def test_partial_output_survives_a_cancel_after_the_plan(executing, operator):
    executing.SVERM_SIMULATED_LATENCY = 0.3
    run_id = start(operator)
    wait_for_event(run_id, "agent.delegated")
    response = operator.delete(f"/v1/swarms/{run_id}")
    assert response.status_code == 200, response.content
    assert wait_terminal(operator, f"/v1/swarms/{run_id}")["status"] == "cancelled"
    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.CANCELLED
    assert run.output.startswith("## manager (plan)")
    assert {row.agent_id for row in ledger(run_id)} >= {"manager"}
    assert run.current_cost_usd == ledger_total(run_id) > 0


@pytest.mark.usefixtures("not_executing")
def test_cancelling_a_running_run_answers_at_once_without_waiting_for_it_to_stop(
    api_client, workspace
):
    # Running on a worker elsewhere that has not stopped it yet: the answer does not wait.
    run = make_run(workspace, status=RunStatus.RUNNING)
    began = time.monotonic()
    response = api_client.post(f"/api/runs/{run.pk}/cancel")
    assert time.monotonic() - began < 1.0
    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["status"]) == (run.pk, "running")
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.cancel_requested_at is not None
    assert event_types(run.pk) == []  # the executor writes `run.cancelled` as it stops it


def test_a_completed_run_cannot_be_cancelled(executing, operator, api_client):
    run_id = start(operator)
    assert wait_terminal(operator, f"/v1/swarms/{run_id}")["status"] == "completed"
    count = len(events_of(run_id))
    assert_v1_error(operator.delete(f"/v1/swarms/{run_id}"), 409, "conflict")
    assert_problem(api_client.post(f"/api/runs/{run_id}/cancel"), 409, "conflict")
    assert Run.objects.get(pk=run_id).status == RunStatus.COMPLETED
    assert len(events_of(run_id)) == count


def test_a_run_whose_executor_breaks_ends_failed_not_running(executing, operator, monkeypatch):
    def broken_finish(*, run_id, result):
        raise OperationalError("the database went away")

    monkeypatch.setattr(executor, "run_finish", broken_finish)
    run_id = start(operator)
    try:
        body = wait_terminal(operator, f"/v1/swarms/{run_id}", timeout=2)
        assert body["status"] == "failed"
    finally:
        # Leave nothing `running` for the flush (the thread has already given up on it).
        Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(status=RunStatus.FAILED)
