"""The event vocabulary: what a batch of events does to a run's row (`fold`) and where a run
stood as of one event (`as_of`), the two readings the service and the streams share."""

from decimal import Decimal

import pytest

from swarms.engine.events import (
    AGENT_COMPLETED,
    AGENT_MESSAGE,
    AGENT_STARTED,
    RUN_CANCELLED,
    RUN_COMPLETED,
    RUN_FAILED,
    RUN_PROGRESS,
    RUN_STARTED,
    STATUS_EVENTS,
    TERMINAL_EVENT,
    TERMINAL_EVENTS,
    TERMINAL_STATUS,
    RunState,
    as_of,
    fold,
)

from .fakes import make_definition, run, run_input


def progress(value: float, active: int, cost: str) -> tuple[str, str, dict]:
    return (RUN_PROGRESS, "", {"progress": value, "agents_active": active, "cost_usd": cost})


def test_terminal_events_and_their_statuses_map_both_ways():
    assert TERMINAL_EVENTS == (RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED)
    assert {TERMINAL_STATUS[e] for e in TERMINAL_EVENTS} == {"completed", "failed", "cancelled"}
    assert all(TERMINAL_EVENT[TERMINAL_STATUS[e]] == e for e in TERMINAL_EVENTS)
    assert set(STATUS_EVENTS) == {RUN_STARTED, RUN_PROGRESS, *TERMINAL_EVENTS}


@pytest.mark.parametrize(
    ("events", "before", "after"),
    [
        ([], 3, 3),
        ([(AGENT_STARTED, "a", {}), (AGENT_STARTED, "b", {})], 1, 3),
        ([(AGENT_COMPLETED, "a", {})] * 3, 2, 0),
        ([progress(0.5, 2, "0.1"), (AGENT_STARTED, "a", {})], 7, 3),
        ([progress(0.5, 1, "0.1"), (AGENT_COMPLETED, "a", {})] * 2, 7, 0),
        ([(AGENT_COMPLETED, "a", {}), (AGENT_STARTED, "b", {})], 0, 1),
    ],
)
def test_the_fold_of_a_batch_counts_active_agents_as_the_events_one_by_one(events, before, after):
    one_by_one = before
    for event in events:
        one_by_one = fold([event]).agents_active(one_by_one)
    assert fold(events).agents_active(before) == one_by_one == after


def test_the_fold_keeps_the_last_progress_clamped_and_the_status_of_the_last_status_event():
    folded = fold(
        [(RUN_STARTED, "", {}), progress(0.25, 1, "0.01"), (AGENT_MESSAGE, "a", {}),
         progress(1.5, 0, "0.02")]
    )  # fmt: skip
    assert (folded.progress, folded.cost_usd, folded.status) == (1.0, Decimal("0.02"), "running")
    assert fold([(AGENT_MESSAGE, "a", {})]) == fold([])
    # The run's result writes the rest of its end: a terminal event only says the status.
    ended = fold([(RUN_COMPLETED, "", {"cost_usd": "9"})])
    assert (ended.shift, ended.floor, ended.progress, ended.cost_usd) == (0, None, None, None)
    assert ended.status == "completed"


def test_as_of_says_where_a_run_stood_after_one_event():
    running = RunState("running", 0.5, Decimal("0.1"), 2)
    assert as_of(RunState("queued", 0.0, Decimal(0), 0), RUN_STARTED, {}).status == "running"
    moved = {"progress": 0.75, "agents_active": 1, "cost_usd": "0.2"}
    assert as_of(running, RUN_PROGRESS, moved) == RunState("running", 0.75, Decimal("0.2"), 1)
    assert as_of(running, RUN_COMPLETED, {"output": "x", "cost_usd": "0.3"}) == RunState(
        "completed", 1.0, Decimal("0.3"), 0
    )
    assert as_of(running, RUN_FAILED, {"error_code": "x"}) == RunState(
        "failed", 0.5, Decimal("0.1"), 0
    )
    assert as_of(running, RUN_CANCELLED, {"cost_usd": "0"}).cost_usd == Decimal(0)
    assert as_of(running, AGENT_MESSAGE, {}) == running


@pytest.mark.anyio
@pytest.mark.parametrize("topology", ["hierarchical", "parallel"])
async def test_folding_a_runs_own_events_ends_with_no_agent_active(topology):
    result, log = await run(run_input(make_definition(topology)))
    events = [(e.type, e.agent_id, e.data) for e in log.events]
    folded = fold(events)
    assert folded.agents_active(0) == 0
    assert folded.progress == 1.0
    assert folded.cost_usd == result.total_cost_usd
    assert folded.status == "completed"
