"""A run ends in one transaction: its terminal status and fields and its terminal event are
written together (or not at all), whether it finishes, fails or is cancelled, and its webhook is
scheduled only once that commits."""

from decimal import Decimal

import pytest
from django.db import IntegrityError

from swarms.engine import RunResult
from swarms.models import Run, RunEvent, RunStatus
from swarms.services.lifecycle import run_fail, run_finish
from swarms.services.runs import run_cancel

pytestmark = pytest.mark.django_db


def make_run(workspace, status: str) -> Run:
    return Run.objects.create(
        workspace=workspace, swarm_type="custom", task="t",
        definition={"topology": "sequential", "agents": []},
        max_budget_usd=Decimal(1), estimated_cost_usd=Decimal("0.1"), status=status,
        attempt=0 if status == RunStatus.QUEUED else 1,
    )  # fmt: skip


def finish(run: Run) -> None:
    result = RunResult("completed", "the report", None, None, (), Decimal("0.004"))
    run_finish(run_id=run.pk, result=result, lease=1, terminal=("run.completed", {}))


def fail(run: Run) -> None:
    run_fail(run_id=run.pk, code="internal_error", message="It broke.")


def cancel(run: Run) -> None:
    run_cancel(run=run)


ENDINGS = [
    (finish, RunStatus.RUNNING, RunStatus.COMPLETED, "run.completed"),
    (fail, RunStatus.RUNNING, RunStatus.FAILED, "run.failed"),
    (fail, RunStatus.QUEUED, RunStatus.FAILED, "run.failed"),
    (cancel, RunStatus.QUEUED, RunStatus.CANCELLED, "run.cancelled"),
]


@pytest.mark.parametrize(("end", "before", "after", "event"), ENDINGS)
def test_a_run_ends_with_its_status_and_terminal_event_together(
    workspace, django_capture_on_commit_callbacks, end, before, after, event
):
    run = make_run(workspace, before)
    with django_capture_on_commit_callbacks() as callbacks:
        end(run)
    run.refresh_from_db()
    assert run.status == after and run.completed_at is not None
    assert list(RunEvent.objects.filter(run=run).values_list("seq", "type")) == [(1, event)]
    assert run.last_seq == 1
    assert callbacks  # the event's publication and the webhook, once committed


@pytest.mark.parametrize(("end", "before", "after", "event"), ENDINGS)
def test_when_the_terminal_event_cannot_be_written_the_run_does_not_end(
    workspace, django_capture_on_commit_callbacks, end, before, after, event
):
    run = make_run(workspace, before)
    # The event's seq is taken (as by a write that raced it): its insert fails.
    RunEvent.objects.create(run=run, seq=1, type="agent.message", data={})
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(IntegrityError):
        end(run)
    run.refresh_from_db()
    assert (run.status, run.completed_at, run.last_seq) == (before, None, 0)
    assert run.error_code == "" and run.cancel_requested_at is None
    assert list(RunEvent.objects.filter(run=run).values_list("type", flat=True)) == [
        "agent.message"
    ]
    assert callbacks == []  # no webhook for an end that did not happen
