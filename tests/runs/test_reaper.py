"""Runs whose worker was lost: heartbeats, the reaper, and the slots they must not hold."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.services import usage_record_add
from swarms.models import Run, RunStatus
from swarms.services.runs import (
    STALE_AFTER_SECONDS,
    run_claim,
    run_heartbeat,
    runs_reap_stale,
)
from tests.runs.conftest import event_types

pytestmark = pytest.mark.django_db


def make_run(workspace, *, status=RunStatus.RUNNING, heartbeat_ago=None, started_ago=None):
    now = timezone.now()
    return Run.objects.create(
        workspace=workspace,
        swarm_type="custom",
        definition={"topology": "sequential", "agents": []},
        task="t",
        max_budget_usd=Decimal("1"),
        estimated_cost_usd=Decimal("0.1"),
        status=status,
        started_at=None if started_ago is None else now - timedelta(seconds=started_ago),
        heartbeat_at=None if heartbeat_ago is None else now - timedelta(seconds=heartbeat_ago),
    )


def test_a_silent_running_run_is_failed_with_worker_lost(not_executing, workspace):
    run = make_run(workspace, heartbeat_ago=STALE_AFTER_SECONDS + 5, started_ago=300)
    usage_record_add(
        workspace_id=workspace.pk, run_id=run.pk, swarm_id="", swarm_type="custom",
        agent_id="manager", model="gpt-4o-mini", provider="simulated", tokens_in=10,
        tokens_out=10, cost_usd=Decimal("0.000123"),
    )  # fmt: skip
    assert runs_reap_stale() == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_code == "worker_lost"
    assert "heartbeat" in run.error_message
    assert run.current_cost_usd == Decimal("0.000123")  # what the ledger charged, once
    assert run.completed_at is not None
    assert event_types(run.pk)[-1] == "run.failed"
    assert runs_reap_stale() == []  # a failed run is not failed twice


@pytest.mark.parametrize(
    ("status", "heartbeat_ago", "started_ago"),
    [
        (RunStatus.RUNNING, 5, 300),  # beating
        (RunStatus.RUNNING, None, 5),  # just claimed
        (RunStatus.QUEUED, None, None),  # never claimed: waits for a worker, not reaped
        (RunStatus.COMPLETED, 600, 900),
        (RunStatus.CANCELLED, 600, 900),
    ],
)
def test_live_queued_and_finished_runs_are_left_alone(
    not_executing, workspace, status, heartbeat_ago, started_ago
):
    run = make_run(workspace, status=status, heartbeat_ago=heartbeat_ago, started_ago=started_ago)
    assert runs_reap_stale() == []
    run.refresh_from_db()
    assert run.status == status


def test_a_run_claimed_long_ago_without_any_heartbeat_is_reaped(not_executing, workspace):
    run = make_run(workspace, heartbeat_ago=None, started_ago=STALE_AFTER_SECONDS + 1)
    assert runs_reap_stale() == [run.pk]


def test_claim_and_heartbeat_mark_the_run_alive(not_executing, workspace):
    run = make_run(workspace, status=RunStatus.QUEUED)
    assert run_claim(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.heartbeat_at is not None
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    run_heartbeat(run_id=run.pk)
    run.refresh_from_db()
    assert timezone.now() - run.heartbeat_at < timedelta(seconds=5)
    assert runs_reap_stale() == []


def test_stale_runs_do_not_hold_the_workspaces_concurrency_slots(
    not_executing, settings, key_client, workspace
):
    settings.SVERM_RATE_LIMITS = True  # the free plan: 2 concurrent runs
    client, _, _ = key_client(workspace)
    lost = [make_run(workspace, heartbeat_ago=600, started_ago=900) for _ in range(2)]
    response = client.post(
        "/v1/swarms", {"template": "research-swarm-v1", "task": "after a crash"}, format="json"
    )
    assert response.status_code == 201, response.content
    for run in lost:
        run.refresh_from_db()
        assert run.error_code == "worker_lost"


def test_celery_beat_runs_the_reaper(settings):
    from sverm.celery import app

    app.loader.import_default_modules()
    entry = settings.CELERY_BEAT_SCHEDULE["reap-stale-runs"]
    assert entry["task"] in app.tasks
    assert entry["schedule"] <= STALE_AFTER_SECONDS / 2
