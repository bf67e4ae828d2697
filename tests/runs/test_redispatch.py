"""Queued runs whose start may never have reached a worker (the broker was down when they were
created, or forgot them in a restart) are sent again by the reaper's pass, spaced out so a run
that only waits behind busy workers gets a few copies, not one per pass."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from swarms.models import Run, RunStatus
from swarms.services.dispatch import runs_redispatch_queued
from tests.factories import make_run
from tests.runs.test_reaper import STALE_AFTER_SECONDS

pytestmark = pytest.mark.django_db

STALE = timedelta(seconds=STALE_AFTER_SECONDS)


@pytest.fixture(autouse=True)
def _recovery_settings(settings):
    settings.SVERM_STALE_AFTER_SECONDS = STALE_AFTER_SECONDS


def queued(workspace, *, waited: timedelta) -> Run:
    run = make_run(workspace, status=RunStatus.QUEUED)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - waited)
    return run


def test_a_run_queued_past_the_stale_period_is_sent_again_once(
    not_executing, workspace, django_capture_on_commit_callbacks
):
    fresh = queued(workspace, waited=STALE / 2)
    lost = queued(workspace, waited=STALE * 1.5)
    with django_capture_on_commit_callbacks() as dispatched:
        assert runs_redispatch_queued() == [lost.pk]
    assert len(dispatched) == 1
    assert Run.objects.get(pk=fresh.pk).resume_requested_at is None
    # The next pass, a moment later, does not send it again.
    with django_capture_on_commit_callbacks() as dispatched:
        assert runs_redispatch_queued() == []
    assert dispatched == []


def test_copies_are_spaced_by_the_time_waited(not_executing, workspace):
    run = queued(workspace, waited=timedelta(0))
    created = Run.objects.get(pk=run.pk).created_at
    sent = []
    for step in range(1, 8 * 4 + 1):  # a pass every quarter of a stale period
        age = STALE * step / 4
        with mock.patch("swarms.services.dispatch.timezone.now", return_value=created + age):
            if runs_redispatch_queued() == [run.pk]:
                sent.append(age)
    assert sent == [STALE, STALE * 2, STALE * 4, STALE * 8]


def test_runs_that_are_no_longer_queued_are_left_alone(
    not_executing, workspace, django_capture_on_commit_callbacks
):
    for status in (RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.CANCELLED):
        run = make_run(workspace, status=status, heartbeat_ago=1, started_ago=1)
        Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - STALE * 3)
    with django_capture_on_commit_callbacks() as dispatched:
        assert runs_redispatch_queued() == []
    assert dispatched == []
