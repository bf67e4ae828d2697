"""`publish_many`: one `run.events` message per batch on the run's group, and one `run.status`
per status event (as of that event) on its workspace's group, from the Run the caller passes
without a query."""

from decimal import Decimal

import pytest
from channels.layers import get_channel_layer

from swarms import realtime
from swarms.models import Run, RunEvent
from swarms.realtime import (
    RUN_GROUP,
    STATUS_FIELDS,
    WORKSPACE_GROUP,
    event_message,
    publish_many,
    run_group,
    workspace_group,
)
from tests.factories import make_run
from tests.streams.conftest import TIMEOUT
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db


MARKER = ("marker", {"type": "marker"})


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, dict]]:
    """Every (group, message) the publisher hands the channel layer, in order."""
    layer = get_channel_layer()
    sent: list[tuple[str, dict]] = []

    async def record(group, message):
        sent.append((group, message))

    monkeypatch.setattr(layer, "group_send", record)
    return sent


def published(sent: list) -> list[tuple[str, dict]]:
    """Every send the publisher made of what it was given so far: it sends in the order it is
    given, so they are all made once a marker given after them is sent."""
    realtime._publisher().submit("marker", [MARKER])
    wait_for(lambda: MARKER in sent, "the publisher's send of a marker", timeout=TIMEOUT)
    return sent[: sent.index(MARKER)]


def stored(run: Run, *events: tuple[str, dict]) -> list[RunEvent]:
    """Events stored as the run's next seqs (no publish: the tests call it)."""
    rows = []
    for seq, (type, data) in enumerate(events, run.last_seq + 1):
        rows.append(RunEvent.objects.create(run=run, seq=seq, type=type, data=data))
    Run.objects.filter(pk=run.pk).update(last_seq=rows[-1].seq)
    return rows


def test_a_batch_is_one_run_events_message_with_its_events_in_order(workspace, sent):
    run = make_run(workspace)
    events = stored(run, *[("agent.message", {"n": n}) for n in range(3)])
    publish_many(events)
    assert published(sent) == [
        (run_group(run.pk), {"type": "run.events", "events": [event_message(e) for e in events]})
    ]
    assert [e["seq"] for e in sent[0][1]["events"]] == [1, 2, 3]


LIFECYCLE = (
    ("run.started", {}),
    ("agent.message", {"text": "hi"}),
    ("run.progress", {"progress": 0.5, "cost_usd": "0.25", "agents_active": 2}),
    ("run.completed", {"cost_usd": "0.5"}),
)


def status_sends(sends: list[tuple[str, dict]], workspace_id: str) -> list[tuple]:
    assert {group for group, _ in sends[1:]} == {workspace_group(workspace_id)}
    # Only what the groups declare: what their streams have handlers for (swarms/consumers.py).
    assert sends[0][1]["type"] in RUN_GROUP.message_types
    assert {m["type"] for _, m in sends[1:]} <= WORKSPACE_GROUP.message_types
    return [
        (m["run"]["status"], m["run"]["progress"], m["run"]["cost_usd"], m["run"]["agents_active"])
        for _, m in sends[1:]
    ]


def test_status_messages_come_from_the_run_passed_in_without_a_query(
    workspace, sent, django_assert_num_queries
):
    run = make_run(workspace, agents_total=2)
    events = stored(run, *LIFECYCLE)
    loaded = Run.objects.only(*STATUS_FIELDS).get(pk=run.pk)
    # The caller's Run is the one used (not the row); the workspace hears where the run stands
    # after the batch: its last status change, as of that event.
    loaded.agents_total = 7
    with django_assert_num_queries(0):
        publish_many(events, run=loaded)
    sends = published(sent)
    assert len(sends) == 2
    assert sends[0][1]["type"] == "run.events" and len(sends[0][1]["events"]) == 4
    assert status_sends(sends, workspace.pk) == [("completed", 1.0, 0.5, 0)]
    assert sends[1][1]["run"]["agents_total"] == 7
    assert (loaded.status, loaded.current_cost_usd) == ("running", Decimal("0"))  # untouched


def test_without_a_run_status_messages_read_it_once(workspace, sent, django_assert_num_queries):
    run = make_run(workspace)
    events = stored(run, *LIFECYCLE)
    with django_assert_num_queries(1):
        publish_many(events)
    sends = published(sent)
    assert [m["type"] for _, m in sends] == ["run.events", "run.status"]
    assert status_sends(sends, workspace.pk) == [("completed", 1.0, 0.5, 0)]


def test_each_batch_tells_the_workspace_where_the_run_stands_after_it(workspace, sent):
    run = make_run(workspace, agents_total=2)
    events = stored(run, *LIFECYCLE)
    run = Run.objects.get(pk=run.pk)
    for event in events:
        publish_many([event], run=run)
    statuses = [m["run"] for _, m in published(sent) if m["type"] == "run.status"]
    assert [(m["status"], m["progress"], m["cost_usd"], m["agents_active"]) for m in statuses] == [
        ("running", 0.0, 0.0, 0),
        ("running", 0.5, 0.25, 2),
        ("completed", 1.0, 0.5, 0),
    ]


def test_a_batch_without_status_events_reads_nothing(workspace, sent, django_assert_num_queries):
    run = make_run(workspace)
    events = stored(run, ("agent.message", {}), ("agent.completed", {}))
    with django_assert_num_queries(0):
        publish_many(events)
    assert [m["type"] for _, m in published(sent)] == ["run.events"]
