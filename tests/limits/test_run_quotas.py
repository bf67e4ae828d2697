"""Run quotas per plan (seed 002): concurrent runs (queued or running) and runs per UTC day, per
workspace, counted from the database; over either, 429 `rate_limited` saying which."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection

from accounts.models import Plan
from accounts.services import plan_limits_update
from sverm.api.errors import RateLimited
from swarms import services
from swarms.models import Run, RunStatus
from templates_app.models import SwarmTemplate
from tests.conftest import assert_problem, assert_v1_error
from tests.factories import make_swarm
from tests.limits.conftest import has_limit_headers
from tests.runs.conftest import _restore_default_prices

pytestmark = pytest.mark.usefixtures("rate_limits_on")

START = {"template": "research-swarm-v1", "task": "Investigate Norwegian hydrogen economy"}
CONCURRENT_FREE = "Concurrent runs limit of 2 reached (plan free); wait for a run to finish."
DAILY_FREE = "Daily runs limit of 50 reached (plan free); resets at 00:00 UTC."


def start(client):
    return client.post("/v1/swarms", START, format="json")


def add_runs(workspace, count: int, *, status: str, created_at: datetime) -> None:
    """`count` runs written straight to the table (no quota check), all created at `created_at`."""
    Run.objects.bulk_create(
        Run(
            workspace=workspace,
            swarm_type="custom",
            definition={},
            task="earlier",
            max_budget_usd=Decimal(1),
            estimated_cost_usd=Decimal(0),
            status=status,
            created_at=created_at,
        )
        for _ in range(count)
    )


def today_at(hour: int, minute: int = 0) -> datetime:
    now = datetime.now(UTC)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0)


@pytest.fixture
def free_key(runs_not_executing, key_client, workspace):
    client, _key, _raw = key_client(workspace)
    return client


# ---------------------------------------------------------------------------------------------
# Concurrent runs
# ---------------------------------------------------------------------------------------------
def test_the_third_concurrent_run_on_free_is_429_naming_the_concurrency_limit(free_key, workspace):
    assert [start(free_key).status_code for _ in range(2)] == [201, 201]
    response = start(free_key)
    error = assert_v1_error(response, 429, "rate_limited")
    assert error["message"] == CONCURRENT_FREE
    assert "concurrent" in error["message"].lower()
    assert error["details"] == {"limit": "concurrent_runs", "plan": "free", "allowed": 2}
    assert response["Retry-After"] == "5"
    assert has_limit_headers(response)
    assert Run.objects.filter(workspace=workspace).count() == 2


def test_running_runs_count_and_a_finished_run_frees_its_slot(free_key, workspace):
    assert [start(free_key).status_code for _ in range(2)] == [201, 201]
    first, second = Run.objects.filter(workspace=workspace).order_by("created_at", "id")
    Run.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING)
    assert start(free_key).status_code == 429
    Run.objects.filter(pk=first.pk).update(status=RunStatus.COMPLETED)
    assert start(free_key).status_code == 201
    assert start(free_key).status_code == 429
    for status in (RunStatus.FAILED, RunStatus.CANCELLED):
        Run.objects.filter(pk=second.pk).update(status=status)
        assert start(free_key).status_code == 201
        second = Run.objects.filter(workspace=workspace, status=RunStatus.QUEUED).first()


def test_the_quota_is_per_workspace(free_key, key_client, workspace, other_workspace):
    add_runs(other_workspace, 2, status=RunStatus.RUNNING, created_at=datetime.now(UTC))
    theirs, _key, _raw = key_client(other_workspace)
    assert_v1_error(start(theirs), 429, "rate_limited")
    assert start(free_key).status_code == 201


def test_pro_allows_10_at_once(free_key, workspace):
    workspace.plan = Plan.PRO
    workspace.save(update_fields=["plan"])
    add_runs(workspace, 9, status=RunStatus.QUEUED, created_at=datetime.now(UTC))
    assert start(free_key).status_code == 201
    error = assert_v1_error(start(free_key), 429, "rate_limited")
    assert error["message"] == (
        "Concurrent runs limit of 10 reached (plan pro); wait for a run to finish."
    )


def test_the_management_api_answers_a_problem(runs_not_executing, api_client, user, workspace):
    swarm = make_swarm(workspace, user)
    url = f"/api/swarms/{swarm.pk}/runs"
    statuses = [api_client.post(url, {"task": "go"}, format="json").status_code for _ in "ab"]
    assert statuses == [201, 201]
    response = api_client.post(url, {"task": "go"}, format="json")
    body = assert_problem(response, 429, "rate_limited")
    assert body["detail"] == CONCURRENT_FREE
    assert response["Retry-After"] == "5"


def test_a_changed_plan_limit_applies_to_the_next_run(runs_not_executing, workspace, plan_rows):
    add_runs(workspace, 2, status=RunStatus.QUEUED, created_at=datetime.now(UTC))
    definition = SwarmTemplate.objects.get(pk="research-swarm-v1").definition
    create = {
        "workspace_id": workspace.pk,
        "definition": definition,
        "task": "t",
        "max_budget_usd": None,
        "created_by": None,
    }
    with pytest.raises(RateLimited):
        services.run_create(**create)
    plan_limits_update(plan_limits=plan_rows[Plan.FREE], data={"concurrent_runs": 3})
    assert services.run_create(**create).status == RunStatus.QUEUED


# ---------------------------------------------------------------------------------------------
# Runs per day
# ---------------------------------------------------------------------------------------------
def test_the_51st_run_of_the_day_on_free_is_429_until_midnight_utc(free_key, workspace):
    add_runs(workspace, 50, status=RunStatus.COMPLETED, created_at=today_at(0, 1))
    with mock.patch("accounts.services.quota_clock", return_value=today_at(23)):
        response = start(free_key)
    error = assert_v1_error(response, 429, "rate_limited")
    assert error["message"] == DAILY_FREE
    assert "daily" in error["message"].lower()
    assert error["details"] == {"limit": "runs_per_day", "plan": "free", "allowed": 50}
    assert response["Retry-After"] == str(3600)
    assert Run.objects.filter(workspace=workspace).count() == 50


def test_the_49th_and_50th_runs_of_the_day_pass(free_key, workspace):
    add_runs(workspace, 48, status=RunStatus.COMPLETED, created_at=today_at(0))
    assert [start(free_key).status_code for _ in range(2)] == [201, 201]
    Run.objects.filter(status=RunStatus.QUEUED).update(status=RunStatus.COMPLETED)
    assert assert_v1_error(start(free_key), 429, "rate_limited")["message"] == DAILY_FREE


def test_runs_of_yesterday_do_not_count(free_key, workspace):
    add_runs(
        workspace, 50, status=RunStatus.COMPLETED, created_at=today_at(0) - timedelta(seconds=1)
    )
    assert start(free_key).status_code == 201


def test_the_team_plan_has_no_daily_limit(free_key, workspace):
    workspace.plan = Plan.TEAM
    workspace.save(update_fields=["plan"])
    add_runs(workspace, 1000, status=RunStatus.COMPLETED, created_at=datetime.now(UTC))
    add_runs(workspace, 48, status=RunStatus.RUNNING, created_at=datetime.now(UTC))
    assert [start(free_key).status_code for _ in range(2)] == [201, 201]
    error = assert_v1_error(start(free_key), 429, "rate_limited")
    assert error["message"] == (
        "Concurrent runs limit of 50 reached (plan team); wait for a run to finish."
    )


def test_switched_off_there_are_no_run_quotas(free_key, workspace, settings):
    settings.SVERM_RATE_LIMITS = False
    add_runs(workspace, 50, status=RunStatus.COMPLETED, created_at=datetime.now(UTC))
    assert [start(free_key).status_code for _ in range(3)] == [201, 201, 201]


# ---------------------------------------------------------------------------------------------
# Concurrency: the workspace row lock lets exactly the allowed number through
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(connection.vendor == "sqlite", reason="needs PostgreSQL row locks")
def test_simultaneous_creations_on_free_let_exactly_two_through(
    transactional_db, rate_limits_on, make_user, monkeypatch
):
    from accounts.services import workspace_create

    monkeypatch.setattr("swarms.jobs.enqueue", lambda name, *args, countdown=0: None)
    rate_limits_on.LLM_PROVIDERS = {}
    _restore_default_prices()
    workspace = workspace_create(name="Racy", owner=make_user())
    definition = SwarmTemplate.objects.get(pk="research-swarm-v1").definition
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def create() -> None:
        try:
            barrier.wait(timeout=10)
            services.run_create(
                workspace_id=workspace.pk, definition=definition, task="race",
                max_budget_usd=None, created_by=None,
            )  # fmt: skip
            outcome = "created"
        except RateLimited as exc:
            outcome = exc.message
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=create) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == sorted(["created"] * 2 + [CONCURRENT_FREE] * (threads_count - 2))
    assert Run.objects.filter(workspace=workspace).count() == 2
