"""A run whose worker is lost midway is resumed by another attempt: the calls the lost attempt
settled are replayed from their checkpoints (never paid for twice), its late writes are refused,
and the stream reads as one run: every seq once, one start, one end."""

import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from swarms.models import Run, RunStatus, RunStep
from swarms.services.lifecycle import runs_reap_stale
from tests.factories import create_run
from tests.runs.conftest import (
    TERMINAL,
    events_of,
    ledger,
    ledger_total,
    wait_for_event,
)
from tests.waiting import wait_for


def attempt_threads(run: Run) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"sverm-db-{run.pk[-6:]}")]


def test_a_run_taken_over_midway_replays_what_was_settled_and_charges_each_call_once(
    executing, workspace
):
    executing.SVERM_SIMULATED_LATENCY = 0.25
    executing.SVERM_STALE_AFTER_SECONDS = 60
    run = create_run(workspace, budget=Decimal("2.00"))
    wait_for_event(run.pk, "agent.completed")  # the manager's plan is settled
    # The first attempt's worker goes silent (as if SIGKILLed or partitioned): the reaper hands
    # the run to a second attempt while the first is still alive, a zombie whose writes must lose.
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=90))
    assert runs_reap_stale() == []  # resumed, not failed
    wait_for(lambda: Run.objects.get(pk=run.pk).status in TERMINAL, "the run's end")
    wait_for(lambda: not attempt_threads(run), "both attempts stopping")

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, (run.error_code, run.error_message)
    assert run.attempt == 2
    steps = list(RunStep.objects.filter(run=run))
    settled = [step for step in steps if step.status == "settled"]
    assert {step.attempt for step in settled} == {1, 2}  # work from both attempts counts
    assert len({step.key for step in settled}) == len(settled)  # no call settled twice
    # The ledger charged every settled call once, and nothing else.
    rows = ledger(run.pk)
    assert len(rows) == len(settled)
    assert ledger_total(run.pk) == sum(step.cost_usd for step in settled)
    assert run.current_cost_usd == ledger_total(run.pk) <= run.max_budget_usd
    # One stream: seq 1..N without a gap, one start, one end, no repeated delegation or message.
    events = events_of(run.pk)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    types = Counter(event.type for event in events)
    assert types["run.started"] == 1 and types["run.completed"] == 1
    assert events[-1].type == "run.completed"
    assert types["agent.completed"] == len(settled)
    delegations = Counter(
        (event.agent_id, event.data["target"], event.data["summary"])
        for event in events
        if event.type == "agent.delegated"
    )
    assert delegations and max(delegations.values()) == 1
    # The output is the synthesis the run ended with, not a patchwork of partial results.
    last_completed = [event for event in events if event.type == "agent.completed"][-1]
    assert run.output == last_completed.data["output"]


def test_a_run_past_its_time_limit_fails_with_timeout_keeping_its_cost(executing, workspace):
    executing.SVERM_SIMULATED_LATENCY = 0.3
    executing.SVERM_RUN_TIMEOUT_SECONDS = 0.5
    run = create_run(workspace)
    wait_for(lambda: Run.objects.get(pk=run.pk).status in TERMINAL, "the run's end")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error_code == "timeout"
    assert "time limit of 0.5 s" in run.error_message
    events = events_of(run.pk)
    assert events[-1].type == "run.failed" and events[-1].data["error_code"] == "timeout"
    assert run.current_cost_usd == ledger_total(run.pk)
