"""Firing (`schedules_fire_due`) with the clock as an argument: the 02:30 job across real DST
changes, catch-up after downtime, the monthly cap, max runs and end dates, refusals recorded as
outcomes, the overlap policies against runs that stay active (nothing executes here), and the
audit of each firing. Runs that really execute: test_overlap_executing.py."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from schedules.models import FiringOutcome, Schedule
from schedules.services import schedule_run_ended, schedules_fire_due
from swarms.models import Run, RunStatus
from tests.schedules.conftest import firings, iso, parse, stored, tick, transitions

pytestmark = pytest.mark.usefixtures("not_executing")


def runs_end(status: str = RunStatus.COMPLETED, cost: str = "0") -> None:
    """Every active run ends (what an executor would do between two firings)."""
    Run.objects.filter(status=RunStatus.QUEUED).update(
        status=status, current_cost_usd=Decimal(cost), completed_at=timezone.now()
    )


def walk(schedule_id: str, start: datetime, end: datetime, every=timedelta(minutes=10)) -> None:
    """Tick every `every` from `start` to `end`, the runs ending between ticks."""
    at = start
    while at <= end:
        tick(at)
        runs_end()
        at += every


# --- DST ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("zone_name", ["Europe/Oslo", "America/New_York"])
def test_a_0230_job_fires_once_on_the_spring_forward_day(make_schedule, zone_name):
    zone = ZoneInfo(zone_name)
    spring, _fall = transitions(zone_name, timezone.now())
    eve = datetime(spring.year, spring.month, spring.day, tzinfo=zone) - timedelta(days=1)
    body = make_schedule(cron="30 2 * * *", timezone=zone_name, startsAt=iso(eve))
    assert parse(body["nextRunAt"]) == datetime(eve.year, eve.month, eve.day, 2, 30, tzinfo=zone)
    walk(body["id"], eve.astimezone(UTC), eve.astimezone(UTC) + timedelta(days=3))
    fired = firings(body["id"])
    assert [f.outcome for f in fired] == [FiringOutcome.STARTED] * 3
    local = [f.slot_at.astimezone(zone) for f in fired]
    day = timedelta(days=1)
    assert [(t.date(), t.strftime("%H:%M")) for t in local] == [
        (spring - day, "02:30"), (spring, "03:00"), (spring + day, "02:30"),
    ]  # fmt: skip
    # 03:00 is the first valid instant after the gap (the clock jumped 02:00 -> 03:00).
    just_before = (fired[1].slot_at - timedelta(seconds=1)).astimezone(zone)
    assert just_before.utcoffset() < local[1].utcoffset() == local[2].utcoffset()
    assert just_before.strftime("%H:%M:%S") == "01:59:59"
    assert stored(body["id"]).runs_made == 3


@pytest.mark.parametrize(("zone_name", "cron", "at"), [
    ("Europe/Oslo", "30 2 * * *", "02:30"),  # 02:00-03:00 happens twice
    ("America/New_York", "30 1 * * *", "01:30"),  # 01:00-02:00 happens twice
    ("America/New_York", "30 2 * * *", "02:30"),  # once (after the repeat)
])  # fmt: skip
def test_a_job_in_the_repeated_hour_fires_once_on_the_fall_back_day(
    make_schedule, zone_name, cron, at
):
    zone = ZoneInfo(zone_name)
    _spring, fall = transitions(zone_name, timezone.now())
    eve = datetime(fall.year, fall.month, fall.day, tzinfo=zone) - timedelta(days=1)
    body = make_schedule(cron=cron, timezone=zone_name, startsAt=iso(eve))
    walk(body["id"], eve.astimezone(UTC), eve.astimezone(UTC) + timedelta(days=3))
    fired = firings(body["id"])
    local = [f.slot_at.astimezone(zone) for f in fired]
    day = timedelta(days=1)
    assert [(t.date(), t.strftime("%H:%M")) for t in local] == [
        (fall - day, at), (fall, at), (fall + day, at),
    ]  # fmt: skip
    assert [f.outcome for f in fired] == [FiringOutcome.STARTED] * 3
    if at != "02:30" or zone_name == "Europe/Oslo":
        # The first occurrence: still on summer time.
        assert local[1].utcoffset() == local[0].utcoffset() > local[2].utcoffset()


# --- catch-up after downtime --------------------------------------------------------------------
def test_missed_slots_within_the_window_fire_once_coalesced(make_schedule):
    body = make_schedule(cron="0 * * * *", catchUpSeconds=4 * 3600)
    first = parse(body["nextRunAt"])
    back = first + timedelta(hours=3, minutes=30)  # down from before `first` until now
    [firing] = tick(back)
    assert (firing.slot_at, firing.outcome, firing.missed) == (
        first + timedelta(hours=3), FiringOutcome.STARTED, 3
    )  # fmt: skip
    assert "4 slots missed, coalesced" in firing.reason
    assert Run.objects.filter(pk=firing.run_id).exists()
    schedule = stored(body["id"])
    assert schedule.next_run_at == first + timedelta(hours=4)
    assert (schedule.runs_made, schedule.last_fired_at) == (1, back)
    assert tick(back) == []  # nothing more for the slots it covered
    assert Run.objects.count() == 1


def test_missed_slots_beyond_the_window_are_skipped_and_recorded(make_schedule):
    body = make_schedule(cron="0 6 * * *")  # default window: an hour
    first = parse(body["nextRunAt"])
    back = first + timedelta(days=2, hours=3)  # the last missed slot is 3 h old
    [firing] = tick(back)
    assert (firing.slot_at, firing.outcome, firing.missed, firing.run) == (
        first + timedelta(days=2), FiringOutcome.SKIPPED_MISSED, 2, None
    )  # fmt: skip
    assert "3 slots missed" in firing.reason and "catch-up window (3600 s)" in firing.reason
    schedule = stored(body["id"])
    assert schedule.next_run_at == first + timedelta(days=3)
    assert schedule.last_error == firing.reason
    assert not Run.objects.exists()
    [on_time] = tick(first + timedelta(days=3, seconds=5))  # and on it goes
    assert on_time.outcome == FiringOutcome.STARTED
    assert stored(body["id"]).last_error == ""


def test_a_tick_a_little_late_fires_the_slot(make_schedule):
    body = make_schedule(cron="*/5 * * * *")
    slot = parse(body["nextRunAt"])
    assert tick(slot - timedelta(seconds=1)) == []  # not due yet
    [firing] = tick(slot + timedelta(seconds=50))
    assert (firing.slot_at, firing.outcome, firing.missed) == (slot, FiringOutcome.STARTED, 0)
    assert stored(body["id"]).next_run_at == slot + timedelta(minutes=5)


# --- monthly cap ----------------------------------------------------------------------------------
def test_the_monthly_cap_skips_a_firing_that_could_pass_it(make_schedule):
    body = make_schedule(cron="0 12 * * *", maxBudgetUsd="0.6", monthlyCapUsd="1.00",
                         overlapPolicy="queue")  # fmt: skip
    first = parse(body["nextRunAt"])
    [one] = tick(first + timedelta(seconds=1))
    assert one.outcome == FiringOutcome.STARTED
    # Its run is still going: it counts at its budget (0.6), and 0.6 + 0.6 > 1.00.
    [two] = tick(first + timedelta(days=1, seconds=1))
    assert two.outcome == FiringOutcome.SKIPPED_CAP
    assert "Monthly cap $1.00: $0.60 spent or reserved" in two.reason
    assert "up to $0.60" in two.reason
    assert stored(body["id"]).last_error == two.reason
    # Ended at $0.30: 0.3 + 0.6 fits.
    runs_end(cost="0.3")
    [three] = tick(first + timedelta(days=2, seconds=1))
    assert three.outcome == FiringOutcome.STARTED, three.reason
    runs_end(cost="0.3")
    [four] = tick(first + timedelta(days=3, seconds=1))  # 0.6 spent + 0.6 > 1.00
    assert four.outcome == FiringOutcome.SKIPPED_CAP


def test_the_cap_counts_this_utc_month_only(make_schedule):
    body = make_schedule(cron="0 12 * * *", maxBudgetUsd="0.6", monthlyCapUsd="1.00")
    first = parse(body["nextRunAt"])
    Schedule.objects.filter(pk=body["id"]).update(next_run_at=datetime(2031, 1, 30, 12, tzinfo=UTC))
    [january] = tick(datetime(2031, 1, 30, 12, 0, 1, tzinfo=UTC))
    assert january.outcome == FiringOutcome.STARTED
    runs_end(cost="0.6")
    [still_january] = tick(datetime(2031, 1, 31, 12, 0, 1, tzinfo=UTC))
    assert still_january.outcome == FiringOutcome.SKIPPED_CAP
    [february] = tick(datetime(2031, 2, 1, 12, 0, 1, tzinfo=UTC))
    assert february.outcome == FiringOutcome.STARTED
    assert first < january.slot_at


# --- max runs, end date -----------------------------------------------------------------------
def test_max_runs_ends_the_schedule(api_client, make_schedule):
    body = make_schedule(cron="*/10 * * * *", maxRuns=2)
    first = parse(body["nextRunAt"])
    walk(body["id"], first, first + timedelta(hours=1))
    assert [f.outcome for f in firings(body["id"])] == [FiringOutcome.STARTED] * 2
    shown = api_client.get(f"/api/schedules/{body['id']}").json()
    assert (shown["state"], shown["nextRunAt"], shown["runsMade"]) == ("ended", None, 2)
    # Raising the limit brings it back.
    more = api_client.patch(f"/api/schedules/{body['id']}", {"maxRuns": 3}, format="json").json()
    assert more["state"] == "active" and parse(more["nextRunAt"]) > timezone.now()


def test_skipped_firings_do_not_count_as_runs(make_schedule):
    body = make_schedule(cron="*/10 * * * *", maxRuns=2)
    first = parse(body["nextRunAt"])
    tick(first)  # started, its run stays active
    tick(first + timedelta(minutes=10))  # skipped (overlap)
    assert stored(body["id"]).next_run_at == first + timedelta(minutes=20)
    runs_end()
    tick(first + timedelta(minutes=20))
    schedule = stored(body["id"])
    assert (schedule.runs_made, schedule.next_run_at, schedule.state) == (2, None, "ended")


def test_the_end_date_ends_the_schedule(api_client, make_schedule):
    probe = make_schedule(cron="0 * * * *")
    first = parse(probe["nextRunAt"])
    body = make_schedule(cron="0 * * * *", endsAt=iso(first + timedelta(hours=1, minutes=30)))
    walk(body["id"], first, first + timedelta(hours=5), every=timedelta(minutes=30))
    assert [f.slot_at for f in firings(body["id"])] == [first, first + timedelta(hours=1)]
    shown = api_client.get(f"/api/schedules/{body['id']}").json()
    assert (shown["state"], shown["nextRunAt"]) == ("ended", None)


def test_catch_up_never_fires_past_the_end_date(make_schedule):
    probe = make_schedule(cron="0 * * * *")
    first = parse(probe["nextRunAt"])
    body = make_schedule(cron="0 * * * *", endsAt=iso(first + timedelta(hours=1, minutes=30)),
                         catchUpSeconds=86400)  # fmt: skip
    [firing] = [f for f in tick(first + timedelta(hours=6)) if f.schedule_id == body["id"]]
    assert firing.slot_at == first + timedelta(hours=1)  # the last slot before the end
    assert stored(body["id"]).next_run_at is None


# --- refusals are outcomes ------------------------------------------------------------------------
def test_a_refused_run_is_a_failed_firing_not_an_error(api_client, make_schedule):
    body = make_schedule(maxBudgetUsd="0.000001")
    slot = parse(body["nextRunAt"])
    [firing] = tick(slot + timedelta(seconds=1))
    assert (firing.outcome, firing.run) == (FiringOutcome.FAILED, None)
    assert firing.reason.startswith("budget_exceeded: ")
    shown = api_client.get(f"/api/schedules/{body['id']}").json()
    assert shown["lastError"] == firing.reason
    assert (shown["runsMade"], shown["state"]) == (0, "active")
    assert parse(shown["nextRunAt"]) == slot + timedelta(hours=1)
    assert not Run.objects.exists()


def test_a_deleted_swarm_fails_its_firings(make_schedule, swarm):
    from swarms.services import swarm_soft_delete

    body = make_schedule()
    swarm_soft_delete(swarm=swarm)
    [firing] = tick(parse(body["nextRunAt"]))
    assert firing.outcome == FiringOutcome.FAILED and "deleted" in firing.reason


def test_a_template_schedule_starts_template_runs(make_schedule, workspace):
    body = make_schedule(swarmId=None, templateId="research-swarm-v1")
    [firing] = tick(parse(body["nextRunAt"]))
    run = Run.objects.get(pk=firing.run_id)
    assert (run.template_id, run.swarm_id, run.workspace_id, run.task) == (
        "research-swarm-v1", None, workspace.pk, "Summarise the news"
    )  # fmt: skip
    assert run.max_budget_usd == Decimal("1")


def test_a_bug_moves_the_schedule_on_instead_of_failing_every_tick(make_schedule, monkeypatch):
    from schedules import services

    body = make_schedule()
    healthy = make_schedule(name="Healthy")
    slot = parse(body["nextRunAt"])

    def broken(schedule, now):
        if schedule.pk == body["id"]:
            raise RuntimeError("bug")
        return original(schedule, now)

    original = services._fire
    monkeypatch.setattr(services, "_fire", broken)
    fired = tick(slot + timedelta(seconds=1))
    assert [f.schedule_id for f in fired] == [healthy["id"]]
    schedule = stored(body["id"])
    assert schedule.next_run_at == slot + timedelta(hours=1)
    assert "RuntimeError" in schedule.last_error


# --- overlap policies (the earlier run stays active: nothing executes in these tests) -----------
def test_overlap_skip(make_schedule):
    body = make_schedule(cron="*/10 * * * *", overlapPolicy="skip")
    first = parse(body["nextRunAt"])
    tick(first)
    [skipped] = tick(first + timedelta(minutes=10))
    assert skipped.outcome == FiringOutcome.SKIPPED_OVERLAP and skipped.run is None
    assert Run.objects.count() == 1


def test_overlap_queue_waits_for_the_run_to_end(make_schedule):
    body = make_schedule(cron="*/10 * * * *", overlapPolicy="queue")
    first = parse(body["nextRunAt"])
    [started] = tick(first)
    [queued] = tick(first + timedelta(minutes=10))
    assert (queued.outcome, queued.run) == (FiringOutcome.QUEUED, None)
    assert started.run_id in queued.reason
    [more] = tick(first + timedelta(minutes=20))  # one waits; another is skipped
    assert more.outcome == FiringOutcome.SKIPPED_OVERLAP and "already waits" in more.reason
    assert tick(first + timedelta(minutes=21)) == []  # the run is still active
    runs_end()
    [now_started] = schedules_fire_due(now=first + timedelta(minutes=22))  # the tick's fallback
    assert now_started.pk == queued.pk
    queued.refresh_from_db()
    assert queued.outcome == FiringOutcome.STARTED and queued.run is not None
    assert queued.started_at == first + timedelta(minutes=22)
    assert stored(body["id"]).runs_made == 2


def test_the_run_ended_signal_starts_the_queued_firing(make_schedule):
    body = make_schedule(cron="*/10 * * * *", overlapPolicy="queue")
    first = parse(body["nextRunAt"])
    [started] = tick(first)
    [queued] = tick(first + timedelta(minutes=10))
    runs_end()
    schedule_run_ended(run_id=started.run_id, status="completed")
    queued.refresh_from_db()
    assert queued.outcome == FiringOutcome.STARTED and queued.run_id != started.run_id
    schedule_run_ended(run_id="run_unknown", status="completed")  # not a schedule's: nothing


def test_overlap_cancel_previous(make_schedule):
    body = make_schedule(cron="*/10 * * * *", overlapPolicy="cancel_previous")
    first = parse(body["nextRunAt"])
    [one] = tick(first)
    [two] = tick(first + timedelta(minutes=10))
    assert two.outcome == FiringOutcome.STARTED and two.run_id != one.run_id
    assert f"Cancelled the previous run: {one.run_id}" in two.reason
    assert Run.objects.get(pk=one.run_id).status == RunStatus.CANCELLED
    assert Run.objects.get(pk=two.run_id).status == RunStatus.QUEUED


def test_pausing_drops_the_queued_firing(api_client, make_schedule):
    body = make_schedule(cron="*/10 * * * *", overlapPolicy="queue")
    first = parse(body["nextRunAt"])
    tick(first)
    [queued] = tick(first + timedelta(minutes=10))
    api_client.post(f"/api/schedules/{body['id']}/pause")
    queued.refresh_from_db()
    assert queued.outcome == FiringOutcome.SKIPPED_PAUSED
    runs_end()
    assert schedules_fire_due(now=first + timedelta(minutes=11)) == []


# --- audit --------------------------------------------------------------------------------------
def test_each_firing_is_audited_as_the_system(make_schedule):
    body = make_schedule()
    [firing] = tick(parse(body["nextRunAt"]))
    event = AuditEvent.objects.get(action="schedule.fire", target_id=body["id"])
    assert (event.actor_type, event.workspace_id, event.target_type) == (
        "system", stored(body["id"]).workspace_id, "schedule"
    )  # fmt: skip
    assert event.after["firing_id"] == firing.pk and event.after["outcome"] == "started"
    assert event.after["run_id"] == firing.run_id
    # The run it made is the system's doing too.
    made = AuditEvent.objects.get(action="run.create", target_id=firing.run_id)
    assert made.actor_type == "system"


def test_a_slot_that_has_its_firing_is_not_fired_again(make_schedule):
    from schedules.models import ScheduleFiring

    body = make_schedule()
    slot = parse(body["nextRunAt"])
    # As if another process had fired this slot without the schedule showing it.
    ScheduleFiring.objects.create(schedule_id=body["id"], slot_at=slot, outcome="started")
    assert tick(slot + timedelta(seconds=1)) == []
    assert ScheduleFiring.objects.filter(schedule_id=body["id"]).count() == 1
    assert not Run.objects.exists()
    assert stored(body["id"]).next_run_at == slot + timedelta(hours=1)


def test_a_slow_tick_never_makes_a_slot_missed(make_schedule, settings):
    settings.SVERM_SCHEDULE_TICK_SECONDS = 600
    body = make_schedule(cron="0 * * * *", catchUpSeconds=60)
    slot = parse(body["nextRunAt"])
    [firing] = tick(slot + timedelta(minutes=9))  # one tick late: still on time
    assert firing.outcome == FiringOutcome.STARTED
    runs_end()
    [missed] = tick(slot + timedelta(hours=1, minutes=21))  # twice the tick and more
    assert missed.outcome == FiringOutcome.SKIPPED_MISSED and "(1200 s)" in missed.reason
