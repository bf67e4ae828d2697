"""How retention runs: the Celery task on the beat schedule, the embedded timer's hourly pass,
`manage.py prune`, and the environment settings behind the windows."""

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from sverm import periodic
from sverm import settings as settings_module
from sverm.celery import app
from sverm.periodic import MARK_PREFIX, PERIODIC_TASKS, EmbeddedSchedule
from swarms.models import Run, RunEvent, Swarm
from swarms.services import swarm_soft_delete
from swarms.tasks import prune_retention_task
from tests.factories import make_swarm
from tests.retention.conftest import delivery, event_types, finished_run

DAY = timedelta(days=1)


def expired_world(workspace, user):
    """Relative to the real clock (the scheduled entry points take no `now`): one expired /v1
    run, one recent one, and one swarm 31 days in the trash with a run."""
    old = finished_run(workspace, ago=31 * DAY)
    recent = finished_run(workspace, ago=DAY)
    swarm = make_swarm(workspace, user, name="Trashed")
    finished_run(workspace, swarm=swarm, ago=DAY)
    swarm_soft_delete(swarm=swarm)
    Swarm.objects.filter(pk=swarm.pk).update(deleted_at=timezone.now() - 31 * DAY)
    delivery(old)
    return old, recent, swarm


@pytest.fixture(autouse=True)
def _real_clock(monkeypatch):
    # conftest's NOW is fixed; here runs are placed relative to the real clock.
    monkeypatch.setattr("tests.retention.conftest.NOW", timezone.now())


# ---------------------------------------------------------------------------------------------
# Celery
# ---------------------------------------------------------------------------------------------
def test_the_task_is_on_the_beat_schedule_hourly():
    entries = [
        entry
        for entry in django_settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == "swarms.prune_retention"
    ]
    assert len(entries) == 1
    assert entries[0]["schedule"] == 3600.0
    assert entries[0]["options"]["expires"] < 3600  # a late pass never piles up behind the next
    assert app.conf.beat_schedule == django_settings.CELERY_BEAT_SCHEDULE


def test_the_task_is_registered_under_its_scheduled_name():
    app.loader.import_default_modules()
    assert app.tasks["swarms.prune_retention"].name == prune_retention_task.name


@pytest.mark.django_db
def test_the_task_prunes_and_purges(workspace, user):
    old, recent, swarm = expired_world(workspace, user)
    result = prune_retention_task.apply().get()
    assert result["prune"]["runs"] == 1
    assert result["prune"]["webhook_deliveries_deleted"] == 1
    assert result["purge"]["swarms"] == 1
    assert event_types(old) == ["run.completed"]
    assert Run.objects.get(pk=recent.pk).output != ""
    assert not Swarm.objects.filter(pk=swarm.pk).exists()


# ---------------------------------------------------------------------------------------------
# The embedded timer
# ---------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_embedded_timer_prunes_at_most_once_per_interval(workspace, user, monkeypatch):
    monkeypatch.setattr(periodic, "close_old_connections", lambda: None)  # the test's connection
    [entry] = [entry for entry in PERIODIC_TASKS if entry.task == "swarms.prune_retention"]
    clock = [0.0]
    timer = EmbeddedSchedule(entries=(entry,), clock=lambda: clock[0])
    old, _recent, swarm = expired_world(workspace, user)
    assert timer.tick() == ["prune-retention"]  # at once: the first tick
    assert event_types(old) == ["run.completed"]
    assert not Swarm.objects.filter(pk=swarm.pk).exists()

    # The next ticks within the hour do nothing, even with new work waiting, nor do those of
    # another process sharing the cache.
    newly_expired = finished_run(workspace, ago=31 * DAY)
    clock[0] += 3599
    assert timer.tick() == []
    assert EmbeddedSchedule(entries=(entry,)).tick() == []
    assert RunEvent.objects.filter(run=newly_expired).count() == 5

    # The mark lasts (about) the hour; once it is gone, the next due tick runs a pass.
    assert cache.get(MARK_PREFIX + entry.name) is not None
    assert entry.every == 3600
    cache.delete(MARK_PREFIX + entry.name)
    clock[0] += 1
    assert timer.tick() == ["prune-retention"]
    assert event_types(newly_expired) == ["run.completed"]


# ---------------------------------------------------------------------------------------------
# manage.py prune
# ---------------------------------------------------------------------------------------------
def prune(*args: str) -> list[str]:
    out = StringIO()
    call_command("prune", *args, stdout=out)
    return out.getvalue().splitlines()


@pytest.mark.django_db
def test_the_command_prints_what_it_did(workspace, user):
    old, _recent, swarm = expired_world(workspace, user)
    assert prune() == [
        "windows: ephemeral 7 d, standard 30 d, extended 365 d; trash 30 d",
        "runs pruned: 1 (events deleted: 4, outputs cleared: 1, webhook deliveries deleted: 1)",
        "swarms purged: 1 (runs deleted: 1, events deleted: 5)",
        "done.",
    ]
    assert event_types(old) == ["run.completed"]
    assert not Swarm.objects.filter(pk=swarm.pk).exists()
    assert prune()[1:3] == [
        "runs pruned: 0 (events deleted: 0, outputs cleared: 0, webhook deliveries deleted: 0)",
        "swarms purged: 0 (runs deleted: 0, events deleted: 0)",
    ]


@pytest.mark.django_db
def test_the_command_dry_run_counts_and_changes_nothing(workspace, user, settings):
    settings.SVERM_RETENTION_DAYS = {"ephemeral": 1, "standard": 20, "extended": 400}
    old, _recent, swarm = expired_world(workspace, user)
    lines = prune("--dry-run", "--batch-size", "1")
    assert lines == [
        "windows: ephemeral 1 d, standard 20 d, extended 400 d; trash 30 d",
        "runs pruned: 1 (events deleted: 4, outputs cleared: 1, webhook deliveries deleted: 1)",
        "swarms purged: 1 (runs deleted: 1, events deleted: 5)",
        "dry run, nothing changed.",
    ]
    assert RunEvent.objects.filter(run=old).count() == 5
    assert Run.objects.get(pk=old.pk).output != ""
    assert Swarm.objects.filter(pk=swarm.pk).exists()


@pytest.mark.django_db
def test_the_command_names_a_skipped_swarm(workspace, user):
    _old, _recent, swarm = expired_world(workspace, user)
    Run.objects.filter(swarm=swarm).update(status="running", completed_at=None)
    assert f"skipped {swarm.pk}: a run is still running" in prune()


@pytest.mark.django_db
def test_the_command_refuses_a_bad_batch_size():
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        call_command("prune", "--batch-size", "0", stdout=StringIO())


@pytest.mark.django_db
def test_the_command_reports_a_bad_window_setting(settings):
    settings.SVERM_TRASH_DAYS = 0
    with pytest.raises(CommandError, match="SVERM_TRASH_DAYS must be a positive whole number"):
        call_command("prune", stdout=StringIO())


# ---------------------------------------------------------------------------------------------
# Settings from the environment
# ---------------------------------------------------------------------------------------------
def test_the_default_windows():
    assert django_settings.SVERM_RETENTION_DAYS == {"ephemeral": 7, "standard": 30, "extended": 365}
    assert django_settings.SVERM_TRASH_DAYS == 30


def test_each_window_is_overridable_by_the_environment(monkeypatch):
    monkeypatch.setenv("SVERM_RETENTION_EPHEMERAL_DAYS", "1")
    monkeypatch.setenv("SVERM_RETENTION_EXTENDED_DAYS", " 3650 ")
    assert settings_module._retention_days() == {"ephemeral": 1, "standard": 30, "extended": 3650}
    monkeypatch.setenv("SVERM_RETENTION_STANDARD_DAYS", "90")
    assert settings_module._retention_days()["standard"] == 90
    monkeypatch.setenv("SVERM_TRASH_DAYS", "14")
    assert settings_module.env_days("SVERM_TRASH_DAYS", 30) == 14
    monkeypatch.setenv("SVERM_TRASH_DAYS", "")
    assert settings_module.env_days("SVERM_TRASH_DAYS", 30) == 30


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "7d", "36501", "99999999999", "٣"])
def test_a_bad_window_in_the_environment_is_improperly_configured(monkeypatch, value):
    monkeypatch.setenv("SVERM_RETENTION_STANDARD_DAYS", value)
    with pytest.raises(ImproperlyConfigured) as error:
        settings_module._retention_days()
    assert str(error.value) == (
        "SVERM_RETENTION_STANDARD_DAYS must be a whole number of days from 1 to 36500, "
        f"not {value!r}."
    )
