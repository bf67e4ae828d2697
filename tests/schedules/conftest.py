"""Helpers for the schedule tests: schedules made over the API, the tick called at a chosen
instant (the clock is an argument of `schedules_fire_due`, so "downtime" is a later `now`), and
the next real daylight-saving changes of a zone (so the DST tests use real dates that are still
ahead, whenever they run)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from schedules.models import Schedule, ScheduleFiring
from schedules.services import schedules_fire_due
from tests.factories import make_swarm
from tests.runs.conftest import executing, not_executing  # noqa: F401  (runs: real, or none)


@pytest.fixture
def swarm(workspace, user):
    return make_swarm(workspace, user, name="Morning digest")


@pytest.fixture
def make_schedule(api_client, workspace, swarm):
    """POST /api/schedules (201 asserted) with the swarm, `* * * * *` style defaults and `body`
    on top; returns the JSON."""

    def make(client=None, **body) -> dict:
        payload = {
            "workspaceId": workspace.pk, "name": "Digest", "swarmId": swarm.pk,
            "task": "Summarise the news", "cron": "0 * * * *", "maxBudgetUsd": "1",
        }  # fmt: skip
        payload.update(body)
        payload = {key: value for key, value in payload.items() if value is not None}
        response = (client or api_client).post("/api/schedules", payload, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return make


def parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def tick(now: datetime) -> list[ScheduleFiring]:
    """One scheduler pass at `now`."""
    return schedules_fire_due(now=now)


def firings(schedule_id: str) -> list[ScheduleFiring]:
    return list(ScheduleFiring.objects.filter(schedule_id=schedule_id).order_by("slot_at"))


def stored(schedule_id: str) -> Schedule:
    return Schedule.objects.get(pk=schedule_id)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def later(seconds: float = 0, **kwargs) -> datetime:
    return timezone.now() + timedelta(seconds=seconds, **kwargs)


def transitions(zone_name: str, after: datetime) -> tuple[date, date]:
    """The local dates of the zone's next spring-forward and next fall-back after `after`
    (found by watching the offset at noon change from one day to the next)."""
    zone = ZoneInfo(zone_name)
    spring = fall = None
    # From the day after tomorrow: the eve of the change is still wholly ahead.
    day = after.astimezone(zone).date() + timedelta(days=2)
    while spring is None or fall is None:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=zone)
        before = (noon - timedelta(days=1)).utcoffset()
        if noon.utcoffset() > before and spring is None:
            spring = day
        elif noon.utcoffset() < before and fall is None:
            fall = day
        day += timedelta(days=1)
    return spring, fall
