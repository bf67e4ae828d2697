"""Appending a batch of events is one `UPDATE … RETURNING` of the run row: the sequence numbers,
the active-agent count folded in one expression, and the lease check must all come out as if
each event had been applied on its own."""

from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarms.engine import RunResult
from swarms.models import Run, RunEvent
from swarms.services.lifecycle import LeaseLost, run_finish, run_record
from tests.factories import make_run

pytestmark = pytest.mark.django_db


def progress_event(active: int, progress: float) -> tuple[str, str, dict]:
    return (
        "run.progress",
        "",
        {"agents_active": active, "progress": progress, "cost_usd": "0.0125"},
    )


EVENTS = st.one_of(
    st.just(("agent.started", "a", {})),
    st.just(("agent.completed", "a", {})),
    st.just(("agent.message", "a", {"text": "x"})),
    st.builds(progress_event, st.integers(0, 9), st.floats(0, 1)),
)


def one_by_one(active: int, events) -> int:
    for type, _agent, data in events:
        if type == "run.progress":
            active = data["agents_active"]
        elif type == "agent.started":
            active += 1
        elif type == "agent.completed":
            active = max(active - 1, 0)
    return active


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(start=st.integers(0, 5), last_seq=st.integers(0, 30), events=st.lists(EVENTS, max_size=12))
def test_a_batch_folds_into_the_row_as_its_events_one_by_one(workspace, start, last_seq, events):
    with transaction.atomic():
        run = make_run(workspace, agents_active=start, last_seq=last_seq)
        rows = run_record(run=run, lease=1, steps=[], events=events)
        run.refresh_from_db()
        assert [row.seq for row in rows] == list(range(last_seq + 1, last_seq + len(events) + 1))
        assert run.last_seq == last_seq + len(events)
        assert run.agents_active == one_by_one(start, events)
        progress = [data for type, _a, data in events if type == "run.progress"]
        if progress:
            assert run.progress == pytest.approx(progress[-1]["progress"])
            assert run.current_cost_usd == Decimal("0.0125")
        transaction.set_rollback(True)


def test_an_attempt_that_lost_its_lease_appends_nothing(workspace):
    run = make_run(workspace, last_seq=4)
    Run.objects.filter(pk=run.pk).update(attempt=2)
    with pytest.raises(LeaseLost):
        run_record(run=run, lease=1, steps=[], events=[("agent.started", "a", {})])
    run.refresh_from_db()
    assert (run.last_seq, run.agents_active) == (4, 0)
    assert not RunEvent.objects.filter(run=run).exists()


def test_finishing_writes_the_terminal_event_and_status_once(workspace):
    run = make_run(workspace, agents_active=3, last_seq=7)
    result = RunResult("completed", "done", None, None, (), Decimal("0.02"))
    terminal = ("run.completed", {"cost_usd": "0.02"})
    assert run_finish(run_id=run.pk, result=result, lease=1, terminal=terminal)
    assert not run_finish(run_id=run.pk, result=result, lease=1, terminal=terminal)
    run.refresh_from_db()
    assert (run.status, run.last_seq, run.agents_active, run.progress) == ("completed", 8, 0, 1.0)
    assert list(RunEvent.objects.filter(run=run).values_list("seq", "type")) == [
        (8, "run.completed")
    ]
