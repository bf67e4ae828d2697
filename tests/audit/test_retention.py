"""Retention: each workspace's audit events go once older than its plan's
`audit_retention_days` (editable per plan); events of workspaces that no longer exist, and
platform-wide ones, are kept for the longest plan's; the pass deletes in batches and runs
hourly from sverm/periodic.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.auditing import audit_trail_prune
from accounts.models import PlanLimits
from accounts.services import workspace_create
from audit.models import AuditEvent
from audit.services import audit_retention_prune
from sverm import periodic

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def aged(workspace_id, days: float) -> AuditEvent:
    return AuditEvent.objects.create(
        workspace_id=workspace_id, actor_type="system", action="swarm.update",
        target_type="swarm", target_id="swm_x", created_at=NOW - timedelta(days=days),
    )  # fmt: skip


def left() -> set[str]:
    return set(AuditEvent.objects.filter(target_id="swm_x").values_list("pk", flat=True))


@pytest.fixture
def workspaces(user):
    return {plan: workspace_create(name=plan, owner=user, plan=plan)
            for plan in ("free", "pro", "team")}  # fmt: skip


def test_each_workspace_keeps_its_plans_days(workspaces):
    free, pro, team = workspaces["free"].pk, workspaces["pro"].pk, workspaces["team"].pk
    kept = {aged(free, 29).pk, aged(pro, 179).pk, aged(team, 364).pk, aged(free, 1).pk}
    aged(free, 31), aged(pro, 181), aged(team, 366)
    assert audit_trail_prune(now=NOW) == 3
    assert left() == kept


def test_gone_workspaces_and_platform_events_keep_the_longest_plans_days(workspaces):
    kept = {aged("wsp_gone", 364).pk, aged(None, 364).pk}
    aged("wsp_gone", 366), aged(None, 366)
    assert audit_trail_prune(now=NOW) == 2
    assert left() == kept


def test_a_plans_retention_is_read_from_its_row(workspaces):
    PlanLimits.objects.update_or_create(plan="free", defaults={
        "requests_per_minute": 10, "concurrent_runs": 2, "runs_per_day": 50,
        "audit_retention_days": 7})  # fmt: skip
    free = workspaces["free"].pk
    kept = {aged(free, 6).pk}
    aged(free, 8)
    assert audit_trail_prune(now=NOW) == 1
    assert left() == kept


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_batches_of_any_size_prune_everything_due(workspaces, batch_size):
    free = workspaces["free"].pk
    for days in (40, 50, 60, 70, 80):
        aged(free, days)
    kept = {aged(free, 10).pk}
    pruned = audit_retention_prune(cutoff=NOW - timedelta(days=30), workspace_ids=[free],
                                   batch_size=batch_size)  # fmt: skip
    assert pruned == 5 and left() == kept


def test_the_pruner_takes_one_scope_or_the_other():
    with pytest.raises(ValueError):
        audit_retention_prune(cutoff=NOW)
    with pytest.raises(ValueError):
        audit_retention_prune(cutoff=NOW, workspace_ids=["a"], other_than=["b"])


def test_it_runs_hourly_as_a_periodic_task_and_in_the_embedded_timer(workspaces):
    entry = next(e for e in periodic.PERIODIC_TASKS if e.task == "accounts.prune_audit_trail")
    assert entry.seconds(lambda name: None) == 3600
    aged(workspaces["free"].pk, 400)
    periodic._work("accounts.prune_audit_trail")()  # what the embedded timer calls
    assert left() == set()


def test_the_celery_task_prunes(workspaces):
    from accounts.tasks import prune_audit_trail_task

    aged(workspaces["pro"].pk, 200)
    assert prune_audit_trail_task.apply().get() == 1
    assert left() == set()
