"""Runs whose worker was lost: heartbeats, leases, the reaper (resume or fail), and the slots
such runs must not hold."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import UsageRecord
from billing.services import usage_record_add
from swarms.engine import RunResult, Step, Usage
from swarms.models import Run, RunEvent, RunStatus, RunStep
from swarms.selectors import run_checkpoints
from swarms.services.lifecycle import (
    LeaseLost,
    run_claim,
    run_event_add,
    run_finish,
    run_heartbeat,
    run_resume_claim,
    run_step_record,
    runs_reap_stale,
)
from tests.factories import make_run
from tests.runs.conftest import event_types

pytestmark = pytest.mark.django_db

STALE_AFTER_SECONDS = 60


@pytest.fixture(autouse=True)
def _recovery_settings(settings):
    settings.SVERM_STALE_AFTER_SECONDS = STALE_AFTER_SECONDS
    settings.SVERM_RUN_MAX_ATTEMPTS = 3


def test_a_silent_run_with_attempts_left_is_resumed_not_failed(
    not_executing, workspace, django_capture_on_commit_callbacks
):
    run = make_run(workspace, heartbeat_ago=STALE_AFTER_SECONDS + 5, started_ago=300)
    with django_capture_on_commit_callbacks() as dispatched:
        assert runs_reap_stale() == []
    assert len(dispatched) == 1  # a resume sent to the executor
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.attempt == 1  # the executor takes the lease


def test_attempts_that_ended_in_a_pause_do_not_count_as_lost(
    not_executing, workspace, django_capture_on_commit_callbacks
):
    # Three attempts, one of which ended pausing for approvals: two were lost, one is left.
    run = make_run(
        workspace, heartbeat_ago=STALE_AFTER_SECONDS + 5, started_ago=300, attempt=3, pauses=1
    )
    with django_capture_on_commit_callbacks() as dispatched:
        assert runs_reap_stale() == []
    assert len(dispatched) == 1
    assert run_resume_claim(run_id=run.pk) == 4  # the lease of the resumed attempt
    Run.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=STALE_AFTER_SECONDS + 5)
    )
    assert run_resume_claim(run_id=run.pk) is None  # 4 - 1 pause = 3 lost attempts: no more
    assert runs_reap_stale() == [run.pk]


def test_a_silent_run_that_used_every_attempt_is_failed_with_worker_lost(not_executing, workspace):
    run = make_run(workspace, heartbeat_ago=STALE_AFTER_SECONDS + 5, started_ago=300, attempt=3)
    usage_record_add(
        workspace_id=workspace.pk, run_id=run.pk, swarm_id="", swarm_type="custom",
        agent_id="manager", model="gpt-4o-mini", provider="simulated", tokens_in=10,
        tokens_out=10, cost_usd=Decimal("0.000123"),
    )  # fmt: skip
    assert runs_reap_stale() == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_code == "worker_lost"
    assert "heartbeat" in run.error_message and "all 3 attempts" in run.error_message
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


def test_a_run_lost_long_ago_is_resumed_once_then_failed_if_nobody_takes_it_up(
    not_executing, workspace, django_capture_on_commit_callbacks
):
    # Say every worker was down for an hour: the first reaper pass after asks for a resume.
    run = make_run(workspace, heartbeat_ago=3600, started_ago=4000)
    with django_capture_on_commit_callbacks() as dispatched:
        assert runs_reap_stale() == []
        assert runs_reap_stale() == []  # asked once, not at every pass
    assert len(dispatched) == 1
    asked = timezone.now() - timedelta(seconds=STALE_AFTER_SECONDS + 1)
    Run.objects.filter(pk=run.pk).update(resume_requested_at=asked)
    assert runs_reap_stale() == [run.pk]
    run.refresh_from_db()
    assert run.error_code == "worker_lost" and "no worker took it up" in run.error_message


def test_a_run_claimed_long_ago_without_any_heartbeat_is_reaped(not_executing, workspace):
    run = make_run(workspace, heartbeat_ago=None, started_ago=STALE_AFTER_SECONDS + 1, attempt=3)
    assert runs_reap_stale() == [run.pk]


def test_claim_and_heartbeat_mark_the_run_alive(not_executing, workspace):
    run = make_run(workspace, status=RunStatus.QUEUED)
    assert run_claim(run_id=run.pk) == 1
    assert run_claim(run_id=run.pk) is None  # claimed once
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.heartbeat_at is not None
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert run_heartbeat(run_id=run.pk, lease=1)
    run.refresh_from_db()
    assert timezone.now() - run.heartbeat_at < timedelta(seconds=5)
    assert runs_reap_stale() == []
    assert not run_heartbeat(run_id=run.pk, lease=2)  # not that attempt's run


def reserved(key="k-1", amount="0.01"):
    return Step(key, "manager", "gpt-4o-mini", "reserved", Decimal(amount))


def settled(key="k-1", amount="0.01", cost="0.004"):
    usage = Usage("manager", "gpt-4o-mini", "simulated", 100, 50, Decimal(cost))
    return Step(key, "manager", "gpt-4o-mini", "settled", Decimal(amount), usage, "the plan")


def test_a_resume_takes_the_next_lease_once_and_holds_what_lost_calls_reserved(
    not_executing, workspace
):
    run = make_run(workspace, heartbeat_ago=5, started_ago=300)
    run_step_record(run=run, lease=1, step=reserved("a-1"))
    run_step_record(run=run, lease=1, step=settled("a-1"))
    run_step_record(run=run, lease=1, step=reserved("b-1", amount="0.02"))  # in flight
    assert run_resume_claim(run_id=run.pk) is None  # it is beating: nothing to take over
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert run_resume_claim(run_id=run.pk) == 2
    assert run_resume_claim(run_id=run.pk) is None  # a second resumer finds it alive
    checkpoints = run_checkpoints(run_id=run.pk)
    assert set(checkpoints.steps) == {"a-1"}
    assert checkpoints.steps["a-1"].output == "the plan"
    assert checkpoints.steps["a-1"].usage.cost_usd == Decimal("0.004")
    assert checkpoints.held_usd == Decimal("0.02")
    assert RunStep.objects.get(key="b-1").status == "interrupted"


def test_a_resume_stops_after_the_last_attempt(not_executing, workspace):
    run = make_run(workspace, heartbeat_ago=600, started_ago=900, attempt=3)
    assert run_resume_claim(run_id=run.pk) is None


def test_writes_of_an_attempt_that_lost_its_lease_are_refused(not_executing, workspace):
    run = make_run(workspace, heartbeat_ago=600, started_ago=900)
    run_step_record(run=run, lease=1, step=reserved("a-1"))
    assert run_resume_claim(run_id=run.pk) == 2
    events_before = RunEvent.objects.filter(run=run).count()
    with pytest.raises(LeaseLost):
        run_event_add(run_id=run.pk, type="run.progress", agent_id="", data={}, lease=1)
    with pytest.raises(LeaseLost):
        run_step_record(run=run, lease=1, step=settled("a-1"))  # the late settle of a lost call
    with pytest.raises(LeaseLost):
        run_step_record(run=run, lease=1, step=reserved("c-1"))
    assert RunEvent.objects.filter(run=run).count() == events_before
    assert not UsageRecord.objects.filter(run_id=run.pk).exists()  # never charged by a zombie
    assert not run_heartbeat(run_id=run.pk, lease=1)
    result = RunResult("completed", "late", None, None, (), Decimal(0))
    assert not run_finish(run_id=run.pk, result=result, lease=1)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.output == ""
    run_event_add(run_id=run.pk, type="run.progress", agent_id="", data={}, lease=2)
    assert run_finish(run_id=run.pk, result=result, lease=2)


def test_a_settled_step_and_its_ledger_row_are_written_once(not_executing, workspace):
    run = make_run(workspace, heartbeat_ago=5, started_ago=30)
    run_step_record(run=run, lease=1, step=reserved("a-1"))
    run_step_record(run=run, lease=1, step=settled("a-1"))
    run_step_record(run=run, lease=1, step=settled("a-1"))  # a retried write
    assert UsageRecord.objects.filter(run_id=run.pk).count() == 1
    assert UsageRecord.objects.get(run_id=run.pk).cost_usd == Decimal("0.004")


def test_stale_runs_do_not_hold_the_workspaces_concurrency_slots(
    not_executing, settings, key_client, workspace
):
    settings.SVERM_RATE_LIMITS = True  # the free plan: 2 concurrent runs
    client, _, _ = key_client(workspace)
    # Lost for good: every attempt was used.
    lost = [make_run(workspace, heartbeat_ago=600, started_ago=900, attempt=3) for _ in range(2)]
    response = client.post(
        "/v1/swarms", {"template": "research-swarm-v1", "task": "after a crash"}, format="json"
    )
    assert response.status_code == 201, response.content
    for run in lost:
        run.refresh_from_db()
        assert run.error_code == "worker_lost"


def test_a_full_workspace_reaps_only_its_own_stale_runs(
    not_executing, settings, key_client, workspace, other_workspace
):
    settings.SVERM_RATE_LIMITS = True  # the free plan: 2 concurrent runs
    client, _, _ = key_client(workspace)
    beating = [make_run(workspace, heartbeat_ago=5, started_ago=300) for _ in range(2)]
    elsewhere = make_run(other_workspace, heartbeat_ago=600, started_ago=900, attempt=3)
    response = client.post(
        "/v1/swarms", {"template": "research-swarm-v1", "task": "one too many"}, format="json"
    )
    assert response.status_code == 429, response.content
    # Another workspace's lost run is the periodic reaper's, not this request's, to fail.
    elsewhere.refresh_from_db()
    assert (elsewhere.status, elsewhere.error_code) == (RunStatus.RUNNING, "")
    assert {run.status for run in Run.objects.filter(pk__in=[r.pk for r in beating])} == {
        RunStatus.RUNNING
    }
    assert runs_reap_stale(workspace_id=other_workspace.pk) == [elsewhere.pk]


def test_celery_beat_runs_the_reaper(settings):
    from sverm.celery import app

    app.loader.import_default_modules()
    entry = settings.CELERY_BEAT_SCHEDULE["reap-stale-runs"]
    assert entry["task"] in app.tasks
    assert entry["schedule"] <= settings.SVERM_STALE_AFTER_SECONDS / 2


def test_the_run_admin_shows_each_calls_checkpoint_and_the_attempt(not_executing, workspace):
    from django.contrib.admin.utils import quote
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User

    run = make_run(workspace, heartbeat_ago=600, started_ago=900)
    run_step_record(run=run, lease=1, step=reserved("a-1", amount="0.0123"))
    assert run_resume_claim(run_id=run.pk) == 2
    staff = Client()
    staff.force_login(User.objects.create_superuser(email="ops@example.com", password="x" * 12))
    page = staff.get(reverse("admin:swarms_run_change", args=[quote(run.pk)]))
    assert page.status_code == 200
    html = page.content.decode().lower()
    assert "call checkpoint" in html and "interrupted" in html and "0.0123" in html
    listing = staff.get(reverse("admin:swarms_run_changelist")).content.decode()
    assert "column-attempt" in listing
