"""The overlap policies with runs that really execute (thread executor, simulated provider): a
firing while the schedule's previous run is still running is skipped, queued until that run
ends (started by the `run_ended` signal, not by a tick), or starts once the previous run has
been cancelled."""

import time
from datetime import timedelta

import pytest

from schedules.models import FiringOutcome, ScheduleFiring
from swarms.models import TERMINAL_STATUSES, Run, RunStatus
from tests.runs.conftest import DEADLINE_SECONDS, POLL_SECONDS
from tests.schedules.conftest import parse, tick

pytestmark = pytest.mark.usefixtures("executing")

# Simulated calls of 0.3 s: the default swarm's run lasts about a second.
LATENCY = 0.3


def wait_for(condition, what: str):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {DEADLINE_SECONDS} s")
        time.sleep(POLL_SECONDS)


def ended(run_id: str) -> Run | None:
    run = Run.objects.get(pk=run_id)
    return run if run.status in TERMINAL_STATUSES else None


def running(run_id: str) -> bool:
    return Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).exists()


@pytest.fixture
def slow_runs(executing):
    executing.SVERM_SIMULATED_LATENCY = LATENCY
    return executing


def test_skip_while_the_previous_run_executes(make_schedule, slow_runs):
    body = make_schedule(cron="*/10 * * * *", overlapPolicy="skip")
    first = parse(body["nextRunAt"])
    [one] = tick(first)
    wait_for(lambda: running(one.run_id), "the first run starting")
    [two] = tick(first + timedelta(minutes=10))
    assert two.outcome == FiringOutcome.SKIPPED_OVERLAP
    assert wait_for(lambda: ended(one.run_id), "the first run ending").status == "completed"
    assert Run.objects.count() == 1


def test_queue_starts_when_the_previous_run_ends(make_schedule, slow_runs):
    body = make_schedule(cron="*/10 * * * *", overlapPolicy="queue")
    first = parse(body["nextRunAt"])
    [one] = tick(first)
    wait_for(lambda: running(one.run_id), "the first run starting")
    [two] = tick(first + timedelta(minutes=10))
    assert two.outcome == FiringOutcome.QUEUED
    previous = wait_for(lambda: ended(one.run_id), "the first run ending")
    assert previous.status == "completed"
    # No tick since: the run_ended signal started it.
    started = wait_for(
        lambda: ScheduleFiring.objects.filter(pk=two.pk, outcome="started").first(),
        "the queued firing starting",
    )
    second = wait_for(lambda: ended(started.run_id), "the second run ending")
    assert second.status == "completed"
    assert second.created_at >= previous.completed_at
    assert "once the previous run ended" in started.reason


def test_cancel_previous_cancels_the_running_run_then_starts(make_schedule, slow_runs):
    body = make_schedule(cron="*/10 * * * *", overlapPolicy="cancel_previous")
    first = parse(body["nextRunAt"])
    [one] = tick(first)
    wait_for(lambda: running(one.run_id), "the first run starting")
    [two] = tick(first + timedelta(minutes=10))
    assert two.outcome == FiringOutcome.STARTED and two.run_id != one.run_id
    assert wait_for(lambda: ended(one.run_id), "the cancel").status == "cancelled"
    assert wait_for(lambda: ended(two.run_id), "the second run").status == "completed"
