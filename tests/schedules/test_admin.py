"""The schedule admin as staff use it: the changelist (name, workspace, what it runs, cron and
zone, next run, paused, runs made, last error) with its filters, the read-only change page with
the latest firings inline, and the pause and resume actions."""

from datetime import timedelta

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from schedules.models import Schedule
from tests.schedules.conftest import parse, stored, tick

pytestmark = pytest.mark.usefixtures("not_executing")

CHANGELIST = "admin:schedules_schedule_changelist"


def test_changelist_shows_each_schedule(staff, make_schedule):
    body = make_schedule(name="Nightly report", cron="30 2 * * *", timezone="Europe/Oslo")
    paused = make_schedule(name="Paused one")
    Schedule.objects.filter(pk=paused["id"]).update(paused=True, next_run_at=None)
    response = staff.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Nightly report", "30 2 * * * (Europe/Oslo)", "swarm Morning digest", "Acme"):
        assert text in html
    only_paused = staff.get(reverse(CHANGELIST), {"paused__exact": "1"})
    assert [s.pk for s in only_paused.context["cl"].result_list] == [paused["id"]]
    found = staff.get(reverse(CHANGELIST), {"q": body["id"]})
    assert [s.pk for s in found.context["cl"].result_list] == [body["id"]]


def test_change_page_lists_the_latest_firings(staff, make_schedule):
    body = make_schedule(cron="*/10 * * * *")
    first = parse(body["nextRunAt"])
    tick(first)
    tick(first + timedelta(minutes=10))
    page = staff.get(reverse("admin:schedules_schedule_change", args=[body["id"]]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Firings (the latest 50)" in html
    assert "Started a run" in html and "Skipped: a run was still active" in html


def test_pause_and_resume_actions(staff, make_schedule):
    body = make_schedule()
    pause = {"action": "pause_schedules", "_selected_action": [body["id"]]}
    response = staff.post(reverse(CHANGELIST), pause)
    assert response.status_code == 302
    schedule = stored(body["id"])
    assert (schedule.paused, schedule.next_run_at) == (True, None)
    staff.post(reverse(CHANGELIST), {**pause, "action": "resume_schedules"})
    schedule = stored(body["id"])
    assert schedule.paused is False and schedule.next_run_at is not None
    actors = set(
        AuditEvent.objects.filter(target_id=body["id"], action__in=["schedule.pause",
                                                                    "schedule.resume"])
        .values_list("actor_type", flat=True)
    )  # fmt: skip
    assert actors == {"admin"}


def test_schedules_are_made_through_the_api_not_the_admin(staff):
    assert staff.get(reverse("admin:schedules_schedule_add")).status_code == 403
