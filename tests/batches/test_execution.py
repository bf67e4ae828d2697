"""Batches whose items really execute (the thread executor and the simulated provider): every
item runs, never more at once than the batch's concurrency, each item's cost is its run's, and
they add up to the batch's cost within its budget; cancel stops what runs and skips the rest."""

from decimal import Decimal

import pytest

from batches.models import Batch
from swarms.models import Run

from .conftest import (
    TEMPLATE,
    created,
    decimal_json,
    events_of,
    items_of,
    results,
    wait_ended,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("batch_executing")


def most_at_once(runs: list[Run]) -> int:
    """The most runs that were between creation and end at the same moment."""
    edges = sorted(
        [(run.created_at, 1) for run in runs] + [(run.completed_at, -1) for run in runs],
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same instant
    )
    active = peak = 0
    for _at, step in edges:
        active += step
        peak = max(peak, active)
    return peak


def test_every_item_runs_within_the_concurrency_and_the_costs_add_up(api_client, workspace):
    workspace.plan = "pro"
    workspace.save(update_fields=["plan"])
    tasks = [f"Hydrogen topic {n}" for n in range(6)]
    batch = created(
        api_client,
        {"templateId": TEMPLATE, "inputs": tasks, "totalBudgetUsd": "3", "concurrency": 2},
    )
    ended = wait_ended(batch["id"])
    assert (ended.status, ended.items_completed, ended.items_total) == ("completed", 6, 6)
    items = items_of(batch["id"])
    runs = {run.pk: run for run in Run.objects.filter(pk__in=[i.run_id for i in items])}
    assert len(runs) == 6
    assert most_at_once(list(runs.values())) <= 2
    for item in items:
        run = runs[item.run_id]
        assert (item.status, run.status, run.task) == ("completed", "completed", item.task)
        assert item.cost_usd == run.current_cost_usd > 0
        assert run.max_budget_usd == Decimal("0.5")  # 3 / 6
        assert run.current_cost_usd <= run.max_budget_usd
    spent = sum(item.cost_usd for item in items)
    assert ended.spent_usd == spent <= ended.total_budget_usd
    body = decimal_json(api_client.get(f"/api/batches/{batch['id']}"))
    # What it shows is the sum of what its items show (each its run's cost rounded down).
    shown = sum(item.cost_usd.quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
                for item in items)  # fmt: skip
    assert body["costUsd"] == shown <= spent
    listed = decimal_json(api_client.get(f"/api/batches/{batch['id']}/items"))["data"]
    assert sum(row["costUsd"] for row in listed) == body["costUsd"]
    assert (body["progress"], body["counts"]["completed"]) == (1, 6)
    lines = results(api_client, batch["id"])
    assert [line["input"] for line in lines] == tasks
    assert all(line["status"] == "completed" and line["output"] for line in lines)
    assert [line["runId"] for line in lines] == [item.run_id for item in items]
    events = events_of(batch["id"])
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    types = [e.type for e in events]
    assert types.count("item.started") == types.count("item.completed") == 6
    assert types[-1] == "batch.completed" and "batch.completed" not in types[:-1]


def test_per_item_caps_hold_the_batch_within_its_total(api_client, workspace):
    workspace.plan = "pro"
    workspace.save(update_fields=["plan"])
    batch = created(
        api_client,
        {"templateId": TEMPLATE, "inputs": [f"t{n}" for n in range(5)], "budgetMode": "per_item",
         "perItemBudgetUsd": "0.4", "totalBudgetUsd": "1", "concurrency": 5},
    )  # fmt: skip
    ended = wait_ended(batch["id"])
    runs = list(Run.objects.filter(batch_items__batch_id=batch["id"]))
    # Caps of 0.4 against a total of 1: two at once, whatever the concurrency.
    assert most_at_once(runs) <= 2
    assert ended.items_completed + ended.items_skipped == 5 and ended.items_completed >= 2
    assert all(run.max_budget_usd == Decimal("0.4") for run in runs)
    assert ended.spent_usd == sum(run.current_cost_usd for run in runs) <= Decimal("1")


def test_cancel_skips_pending_items_and_stops_running_runs(api_client, settings, workspace):
    settings.SVERM_SIMULATED_LATENCY = 0.3  # each run takes a few seconds
    batch = created(
        api_client,
        {"templateId": TEMPLATE, "inputs": [f"t{n}" for n in range(6)], "totalBudgetUsd": "3",
         "concurrency": 2},
    )  # fmt: skip
    wait_for(
        lambda: (
            Run.objects.filter(batch_items__batch_id=batch["id"], status="running").count() == 2
        ),
        "two items running",
    )
    response = api_client.post(f"/api/batches/{batch['id']}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["counts"]["skipped"], body["counts"]["pending"]) == (
        "cancelled", 4, 0,
    )  # fmt: skip
    ended = wait_ended(batch["id"])
    items = items_of(batch["id"])
    assert [item.status for item in items] == ["cancelled"] * 2 + ["skipped"] * 4
    for item in items[:2]:
        run = Run.objects.get(pk=item.run_id)
        assert run.status == "cancelled" and item.cost_usd == run.current_cost_usd
    assert all(item.run_id is None for item in items[2:])
    assert ended.spent_usd == sum(item.cost_usd for item in items) <= ended.total_budget_usd
    assert events_of(batch["id"])[-1].type == "batch.cancelled"
    assert Batch.objects.get(pk=batch["id"]).status == "cancelled"


def test_racing_passes_start_each_item_exactly_once(swarm, user, monkeypatch):
    """Eight passes at once (a run's end, the periodic pass, another worker...) start no more
    than the concurrency allows, and no item twice: the batch row's lock serialises them and
    each item is claimed with a conditional update."""
    import threading

    from django.db import connections

    from batches.models import BatchEvent
    from batches.services import batch_advance
    from swarms import jobs

    from .factories import make_batch

    monkeypatch.setattr(jobs, "enqueue", lambda *args, **kwargs: None)  # nothing executes
    batch = make_batch(swarm, tasks=6, concurrency=2, user=user)
    barrier = threading.Barrier(8)
    errors = []

    def advance():
        try:
            barrier.wait()
            batch_advance(batch_id=batch.pk)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=advance) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    items = items_of(batch.pk)
    assert [item.status for item in items] == ["running"] * 2 + ["pending"] * 4
    assert Run.objects.filter(batch_items__batch_id=batch.pk).count() == 2
    assert Run.objects.count() == 2  # no run made and then dropped by a lost claim either
    started = BatchEvent.objects.filter(batch_id=batch.pk, type="item.started")
    assert sorted(e.data["index"] for e in started) == [0, 1]
    assert Batch.objects.get(pk=batch.pk).items_running == 2
