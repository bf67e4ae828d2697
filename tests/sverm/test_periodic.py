"""The periodic tasks (sverm/periodic.py): one declaration each, from which both Celery beat's
schedule and the embedded timer are made."""

import logging

import pytest
from django.conf import settings as django_settings

from sverm import periodic
from sverm.celery import app
from sverm.periodic import PERIODIC_TASKS, EmbeddedSchedule, PeriodicTask, beat_schedule

calls: list[str] = []


@app.task(name="tests.periodic_probe")
def probe_task() -> None:
    calls.append("probe")


@app.task(name="tests.periodic_broken")
def broken_task() -> None:
    raise RuntimeError("boom")


PROBE = PeriodicTask("probe", "tests.periodic_probe", every="SVERM_TEST_PROBE_SECONDS")
BROKEN = PeriodicTask("broken", "tests.periodic_broken", every=10.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Marks:
    """The shared cache's marks, expiring on the test's clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.expires: dict[str, float] = {}

    def add(self, key: str, value, timeout: float) -> bool:
        if self.expires.get(key, float("-inf")) > self.clock():
            return False
        self.expires[key] = self.clock() + timeout
        return True


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(periodic, "cache", Marks(clock))
    return clock


@pytest.fixture
def closed(monkeypatch) -> list[bool]:
    """The timer's connection closes, counted (a test's own connection must stay open)."""
    closes: list[bool] = []
    monkeypatch.setattr(periodic, "close_old_connections", lambda: closes.append(True))
    return closes


@pytest.fixture(autouse=True)
def _no_calls():
    calls.clear()


def test_beat_runs_every_declared_task_under_its_registered_name():
    app.loader.import_default_modules()
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    assert list(schedule) == [entry.name for entry in PERIODIC_TASKS]
    for entry in PERIODIC_TASKS:
        assert schedule[entry.name]["task"] == entry.task
        assert entry.task in app.tasks
    assert app.conf.beat_schedule == schedule


def test_a_named_interval_is_read_from_the_settings():
    schedule = beat_schedule({"SVERM_REAPER_INTERVAL_SECONDS": 7, "SVERM_SCHEDULE_TICK_SECONDS": 3})
    assert schedule["reap-stale-runs"]["schedule"] == 7.0
    assert schedule["reap-stale-runs"]["options"] == {"expires": 7.0}  # one interval
    assert schedule["prune-retention"]["options"] == {"expires": 3000.0}
    assert schedule["fire-schedules"]["schedule"] == 3.0


def test_the_embedded_timer_runs_a_task_at_its_first_tick_then_once_per_interval(
    settings, closed, clock
):
    settings.SVERM_TEST_PROBE_SECONDS = 30
    timer = EmbeddedSchedule(entries=(PROBE,), clock=clock)
    assert timer.tick() == ["probe"]
    clock.now += 29
    assert timer.tick() == []
    clock.now += 1
    assert timer.tick() == ["probe"]
    assert calls == ["probe", "probe"]
    assert len(closed) == 3  # after every tick


def test_the_interval_is_read_at_each_tick_and_0_pauses(settings, closed, clock):
    settings.SVERM_TEST_PROBE_SECONDS = 0
    timer = EmbeddedSchedule(entries=(PROBE,), clock=clock)
    assert timer.tick() == []
    clock.now += 3600
    assert timer.tick() == []
    settings.SVERM_TEST_PROBE_SECONDS = 5
    assert timer.tick() == ["probe"]
    clock.now += 5
    assert timer.tick() == ["probe"]


def test_processes_sharing_the_cache_share_one_pass_per_interval(settings, closed, clock):
    settings.SVERM_TEST_PROBE_SECONDS = 30
    first = EmbeddedSchedule(entries=(PROBE,), clock=clock)
    clock.now += 10
    second = EmbeddedSchedule(entries=(PROBE,), clock=clock)  # started later
    clock.now -= 10
    assert first.tick() == ["probe"]
    clock.now += 10
    assert second.tick() == []  # the first one's mark lasts (about) the interval
    clock.now += 20
    assert first.tick() == ["probe"]
    clock.now += 10
    assert second.tick() == []  # it looks again an interval after it last looked
    assert calls == ["probe", "probe"]


def test_a_failing_task_is_logged_and_stops_no_other(settings, closed, clock, caplog):
    settings.SVERM_TEST_PROBE_SECONDS = 30
    timer = EmbeddedSchedule(entries=(BROKEN, PROBE), clock=clock)
    with caplog.at_level(logging.ERROR, logger="sverm.periodic"):
        assert timer.tick() == ["broken", "probe"]
    assert calls == ["probe"]
    assert "the periodic task broken failed; it runs again in 10 s" in caplog.text
    assert len(closed) == 1


def test_the_timer_runs_registered_work_without_celery(settings, closed, clock, monkeypatch):
    # swarms/apps.py registers the work of every declared task: none goes through Celery.
    for entry in PERIODIC_TASKS:
        assert entry.task in periodic._local_work
    monkeypatch.setattr(periodic, "_local_work", {"tests.local_only": lambda: calls.append("w")})
    monkeypatch.setattr(periodic, "_celery_task", lambda name: pytest.fail(f"Celery for {name}"))
    settings.SVERM_TEST_PROBE_SECONDS = 30
    local = PeriodicTask("local", "tests.local_only", every="SVERM_TEST_PROBE_SECONDS")
    assert EmbeddedSchedule(entries=(local,), clock=clock).tick() == ["local"]
    assert calls == ["w"]
