"""Purging the trash: swarms soft-deleted more than SVERM_TRASH_DAYS ago go for good with their
versions, runs and events; the ledger and its rollups stay exactly as they were."""

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from billing.models import UsageRecord
from swarms.models import Run, RunEvent, RunStatus, Swarm, SwarmVersion, WebhookDelivery
from swarms.services import swarm_soft_delete, swarm_version_create
from swarms.services.retention import PurgeReport, runs_prune_expired, swarms_purge_trash
from tests.factories import make_swarm
from tests.retention.conftest import (
    NOW,
    SECOND,
    active_run,
    billing_snapshot,
    delivery,
    finished_run,
)

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def trashed(workspace, user, *, ago: timedelta, name: str = "Old", runs: int = 2) -> Swarm:
    """A swarm with two versions and `runs` finished runs, soft-deleted `ago` before NOW."""
    swarm = make_swarm(workspace, user, retention_tier="extended", name=name)
    swarm_version_create(swarm=swarm, created_by=user, instructions="v2")
    for _ in range(runs):
        delivery(finished_run(workspace, swarm=swarm, ago=ago + DAY))
    swarm_soft_delete(swarm=swarm)
    Swarm.objects.filter(pk=swarm.pk).update(deleted_at=NOW - ago)
    return swarm


def gone(swarm: Swarm) -> bool:
    return not (
        Swarm.objects.filter(pk=swarm.pk).exists()
        or SwarmVersion.objects.filter(swarm_id=swarm.pk).exists()
        or Run.objects.filter(swarm_id=swarm.pk).exists()
        or RunEvent.objects.filter(run__swarm_id=swarm.pk).exists()
        or WebhookDelivery.objects.filter(run__swarm_id=swarm.pk).exists()
    )


def test_the_trash_boundary(workspace, user):
    window = timedelta(days=30)
    expired = trashed(workspace, user, ago=window + SECOND, name="expired")
    recent = trashed(workspace, user, ago=window - SECOND, name="recent")
    at_the_edge = trashed(workspace, user, ago=window, name="edge")
    alive = make_swarm(workspace, user, name="alive")

    report = swarms_purge_trash(now=NOW)

    assert report == PurgeReport(swarms=1, runs_deleted=2, events_deleted=10)
    assert gone(expired)
    for kept in (recent, at_the_edge):
        assert Swarm.objects.get(pk=kept.pk).deleted_at is not None
        assert SwarmVersion.objects.filter(swarm=kept).count() == 2
        assert Run.objects.filter(swarm=kept).count() == 2
        assert RunEvent.objects.filter(run__swarm=kept).count() == 10
    assert Swarm.objects.filter(pk=alive.pk).exists()


def test_the_trash_window_comes_from_settings(workspace, user, settings):
    settings.SVERM_TRASH_DAYS = 2
    expired = trashed(workspace, user, ago=2 * DAY + SECOND)
    kept = trashed(workspace, user, ago=2 * DAY - SECOND)
    assert swarms_purge_trash(now=NOW).swarms == 1
    assert gone(expired)
    assert not gone(kept)


@pytest.mark.parametrize("days", [0, -1, "30", None])
def test_a_bad_trash_setting_is_improperly_configured(db, settings, days):
    settings.SVERM_TRASH_DAYS = days
    with pytest.raises(ImproperlyConfigured, match="SVERM_TRASH_DAYS"):
        swarms_purge_trash(now=NOW)


def test_billing_rows_survive_prune_and_purge(workspace, user):
    """The usage ledger and the monthly rollup are exactly as before both passes."""
    trashed(workspace, user, ago=40 * DAY, runs=3)
    swarm = make_swarm(workspace, user, retention_tier="ephemeral")
    for ago in (3, 9, 90):
        finished_run(workspace, swarm=swarm, ago=ago * DAY, cost="1.2345678901")
        finished_run(workspace, ago=ago * DAY, cost="0.0000000001")
    before = billing_snapshot()
    ledger_rows = UsageRecord.objects.count()

    pruned = runs_prune_expired(now=NOW)
    purged = swarms_purge_trash(now=NOW)

    assert pruned.runs > 0 and purged.swarms == 1  # both passes really did something
    assert billing_snapshot() == before
    assert UsageRecord.objects.count() == ledger_rows == 9
    assert before[0] > 0


def test_a_swarm_with_a_running_run_waits(workspace, user):
    swarm = trashed(workspace, user, ago=40 * DAY)
    running = active_run(workspace, RunStatus.RUNNING, ago=DAY)
    Run.objects.filter(pk=running.pk).update(swarm=swarm)

    report = swarms_purge_trash(now=NOW)
    assert report == PurgeReport(skipped=[swarm.pk])
    assert Run.objects.filter(swarm=swarm).count() == 3

    Run.objects.filter(pk=running.pk).update(status=RunStatus.FAILED, completed_at=NOW)
    assert swarms_purge_trash(now=NOW).swarms == 1
    assert gone(swarm)


def test_a_queued_run_does_not_hold_the_purge_back(workspace, user):
    # Never claimed: deleting it is safe (a late claim finds no run and does nothing).
    swarm = trashed(workspace, user, ago=40 * DAY, runs=0)
    queued = active_run(workspace, RunStatus.QUEUED, ago=40 * DAY)
    Run.objects.filter(pk=queued.pk).update(swarm=swarm)
    assert swarms_purge_trash(now=NOW) == PurgeReport(swarms=1, runs_deleted=1, events_deleted=2)
    assert gone(swarm)


def test_a_second_purge_finds_nothing(workspace, user):
    trashed(workspace, user, ago=40 * DAY)
    assert swarms_purge_trash(now=NOW).swarms == 1
    assert swarms_purge_trash(now=NOW) == PurgeReport()


def test_a_dry_run_counts_what_a_real_purge_then_does_and_changes_nothing(workspace, user):
    swarms = [trashed(workspace, user, ago=40 * DAY, name=f"s{n}") for n in range(2)]
    counts = (Swarm.objects.count(), Run.objects.count(), RunEvent.objects.count())

    dry = swarms_purge_trash(now=NOW, dry_run=True)

    assert (Swarm.objects.count(), Run.objects.count(), RunEvent.objects.count()) == counts
    real = swarms_purge_trash(now=NOW)
    assert dry == PurgeReport(swarms=2, runs_deleted=4, events_deleted=20, dry_run=True)
    assert real == PurgeReport(swarms=2, runs_deleted=4, events_deleted=20)
    assert all(gone(swarm) for swarm in swarms)


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_batches_of_any_size_purge_everything(workspace, user, batch_size):
    swarms = [trashed(workspace, user, ago=40 * DAY, name=f"s{n}", runs=3) for n in range(3)]
    report = swarms_purge_trash(now=NOW, batch_size=batch_size)
    assert report == PurgeReport(swarms=3, runs_deleted=9, events_deleted=45)
    assert all(gone(swarm) for swarm in swarms)


def test_a_swarm_restored_before_the_pass_is_kept(workspace, user):
    swarm = trashed(workspace, user, ago=40 * DAY)
    Swarm.objects.filter(pk=swarm.pk).update(deleted_at=None)
    assert swarms_purge_trash(now=NOW) == PurgeReport()
    assert Run.objects.filter(swarm=swarm).count() == 2


def test_a_swarm_restored_during_the_purge_keeps_what_is_left(workspace, user, monkeypatch):
    from swarms.services import retention

    swarm = trashed(workspace, user, ago=40 * DAY)
    delete_in_batches = retention._delete_in_batches

    def restore_after_the_events(queryset, batch_size, still=None):
        deleted = delete_in_batches(queryset, batch_size, still)
        Swarm.objects.filter(pk=swarm.pk).update(deleted_at=None)  # an operator restores it
        return deleted

    monkeypatch.setattr(retention, "_delete_in_batches", restore_after_the_events)
    report = swarms_purge_trash(now=NOW)

    assert report == PurgeReport(events_deleted=10)  # the events went before the restore
    assert Swarm.objects.get(pk=swarm.pk).deleted_at is None
    assert Run.objects.filter(swarm=swarm).count() == 2
    assert SwarmVersion.objects.filter(swarm=swarm).count() == 2
