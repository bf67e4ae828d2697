"""Dispatch passes (batches/services.py `batch_advance`) driven by hand: these tests never commit,
so the runs a pass creates stay queued until the test ends them (`end_run`), and each step's
effect on the items, counts, costs and events can be read exactly."""

from decimal import Decimal

from batches import services
from batches.models import Batch, BatchItem
from batches.services import batch_advance
from billing.models import ModelPrice
from swarms.models import Run
from swarms.services import swarm_soft_delete
from swarms.signals import run_ended
from tests.factories import make_run

from .conftest import end_run, events_of, items_of
from .factories import make_batch


def statuses(batch: Batch) -> list[str]:
    return [item.status for item in items_of(batch.pk)]


def running_runs(batch: Batch) -> list[str]:
    return [i.run_id for i in items_of(batch.pk) if i.status == "running"]


def test_a_pass_starts_pending_items_up_to_the_concurrency_through_the_run_api(swarm, user):
    batch = make_batch(swarm, concurrency=2, user=user)
    batch = batch_advance(batch_id=batch.pk)
    assert statuses(batch) == ["running", "running", "pending", "pending", "pending"]
    assert (batch.status, batch.items_running, batch.items_pending) == ("running", 2, 3)
    assert batch.started_at is not None
    for item in items_of(batch.pk)[:2]:
        run = Run.objects.get(pk=item.run_id)
        assert (run.task, run.swarm_id, run.version_id) == (
            item.task,
            swarm.pk,
            swarm.default_version_id,
        )
        assert run.max_budget_usd == batch.item_budget_usd == Decimal("0.2")
        assert run.created_by_id == user.pk and run.status == "queued"
    # A second pass with nothing ended starts nothing and writes nothing.
    seq = Batch.objects.get(pk=batch.pk).last_seq
    batch_advance(batch_id=batch.pk)
    assert statuses(batch)[:3] == ["running", "running", "pending"]
    assert Run.objects.count() == 2 and Batch.objects.get(pk=batch.pk).last_seq == seq
    types = [e.type for e in events_of(batch.pk)]
    assert types == ["batch.progress", "item.started", "item.started", "batch.progress"]


def test_ended_runs_are_recorded_with_their_cost_and_the_next_items_start(swarm):
    batch = make_batch(swarm, tasks=3, concurrency=2)
    batch_advance(batch_id=batch.pk)
    first, second = running_runs(batch)
    end_run(first, "completed", "0.0123")
    end_run(second, "failed", "0.004")
    batch = batch_advance(batch_id=batch.pk)
    items = items_of(batch.pk)
    assert [(i.status, i.cost_usd) for i in items[:2]] == [
        ("completed", Decimal("0.0123")), ("failed", Decimal("0.004")),
    ]  # fmt: skip
    assert (items[1].error_code, items[1].error_message) == ("provider_error", "boom")
    assert items[2].status == "running"
    (third,) = running_runs(batch)
    end_run(third, "cancelled", "0.001")
    batch = batch_advance(batch_id=batch.pk)
    assert batch.status == "completed" and batch.completed_at is not None
    assert (batch.items_completed, batch.items_failed, batch.items_cancelled) == (1, 1, 1)
    assert batch.spent_usd == Decimal("0.0173") == sum(i.cost_usd for i in items_of(batch.pk))
    assert batch.spent_usd <= batch.total_budget_usd
    events = events_of(batch.pk)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events][-3:] == ["batch.progress", "item.cancelled",
                                             "batch.completed"]  # fmt: skip
    ended = {e.data["index"]: e for e in events if e.type.startswith("item.") and
             e.type != "item.started"}  # fmt: skip
    assert ended[0].type == "item.completed" and ended[0].data["cost_usd"] == "0.0123"
    assert ended[1].data["error_code"] == "provider_error"
    terminal = events[-1].data
    assert (terminal["completed"], terminal["failed"], terminal["cancelled"]) == (1, 1, 1)
    assert (terminal["progress"], terminal["cost_usd"]) == (1.0, "0.0173")
    # An ended batch's pass changes nothing.
    assert batch_advance(batch_id=batch.pk).last_seq == events[-1].seq


def test_per_item_caps_start_an_item_only_while_the_total_can_cover_it(swarm, workspace):
    workspace.plan = "pro"  # 10 runs at once
    workspace.save(update_fields=["plan"])
    batch = make_batch(swarm, tasks=5, total="0.05", mode="per_item", cap="0.02", concurrency=5)
    batch = batch_advance(batch_id=batch.pk)
    # Two caps fit the total (0.04); a third would reach 0.06.
    assert statuses(batch) == ["running", "running", "pending", "pending", "pending"]
    first, _second = running_runs(batch)
    end_run(first, "completed", "0.001")  # spent 0.001 + one cap running + a new cap: 0.041
    batch = batch_advance(batch_id=batch.pk)
    assert statuses(batch) == ["completed", "running", "running", "pending", "pending"]
    # Runs spending their whole cap: 0.041 spent, nothing running, a cap more is 0.061.
    for run_id in running_runs(batch):
        end_run(run_id, "completed", "0.02")
    batch = batch_advance(batch_id=batch.pk)
    assert statuses(batch) == ["completed", "completed", "completed", "skipped", "skipped"]
    skipped = items_of(batch.pk)[-1]
    assert skipped.error_code == services.BUDGET_EXHAUSTED and skipped.run_id is None
    assert (batch.status, batch.items_skipped) == ("completed", 2)
    assert batch.spent_usd == Decimal("0.041") <= batch.total_budget_usd


def test_a_quota_refusal_leaves_items_pending_until_a_slot_frees(swarm, workspace, settings):
    settings.SVERM_RATE_LIMITS = True  # free: 2 runs of the workspace at once
    others = [make_run(workspace, status="running") for _ in range(2)]
    batch = make_batch(swarm, tasks=2)
    batch = batch_advance(batch_id=batch.pk)
    assert statuses(batch) == ["pending", "pending"]
    assert batch.status == "queued" and "Concurrent runs limit of 2" in batch.blocked_reason
    assert Batch.objects.get(pk=batch.pk).blocked_reason == batch.blocked_reason
    end_run(others[0].pk)
    batch = batch_advance(batch_id=batch.pk)
    assert statuses(batch) == ["running", "pending"]
    assert "Concurrent runs limit" in batch.blocked_reason  # the second still waits
    end_run(others[1].pk)
    batch = batch_advance(batch_id=batch.pk)
    assert statuses(batch) == ["running", "running"] and batch.blocked_reason == ""


def test_a_swarm_deleted_mid_batch_fails_the_batch_and_skips_the_rest(swarm):
    batch = make_batch(swarm, tasks=4, concurrency=1)
    batch_advance(batch_id=batch.pk)
    swarm_soft_delete(swarm=swarm)
    (running,) = running_runs(batch)
    end_run(running, "completed", "0.01")
    batch = batch_advance(batch_id=batch.pk)
    assert statuses(batch) == ["completed", "failed", "skipped", "skipped"]
    failed = items_of(batch.pk)[1]
    assert failed.error_code == "conflict" and failed.run_id is None
    assert (batch.status, batch.error_code) == ("failed", "conflict")
    assert "deleted" in batch.error_message
    terminal = events_of(batch.pk)[-1]
    assert terminal.type == "batch.failed" and terminal.data["error_code"] == "conflict"
    assert (terminal.data["skipped"], terminal.data["failed"]) == (2, 1)


def test_an_item_whose_run_no_longer_fits_its_budget_fails_alone(swarm):
    batch = make_batch(swarm, tasks=3, total="0.015", concurrency=1)
    ModelPrice.objects.update(input_per_million=Decimal("900"), output_per_million=Decimal("900"))
    # An item that fails to start frees its slot for the next, in the same pass.
    batch = batch_advance(batch_id=batch.pk)
    assert statuses(batch) == ["failed", "failed", "failed"]
    assert {i.error_code for i in items_of(batch.pk)} == {"budget_exceeded"}
    assert (batch.status, batch.items_failed, batch.error_code) == ("completed", 3, "")


def test_cancel_skips_pending_items_and_cancels_queued_runs_at_once(swarm):
    batch = make_batch(swarm, tasks=4)
    batch_advance(batch_id=batch.pk)
    runs = running_runs(batch)
    batch = services.batch_cancel(batch=batch)
    assert statuses(batch) == ["cancelled", "cancelled", "skipped", "skipped"]
    assert set(Run.objects.filter(pk__in=runs).values_list("status", flat=True)) == {"cancelled"}
    assert (batch.status, batch.items_skipped, batch.items_cancelled) == ("cancelled", 2, 2)
    assert batch.cancelled_at is not None and batch.completed_at is not None
    assert events_of(batch.pk)[-1].type == "batch.cancelled"
    # Cancelling again changes nothing; an ended batch of another kind cannot be cancelled.
    assert services.batch_cancel(batch=batch).last_seq == batch.last_seq


def test_a_running_run_of_a_cancelled_batch_ends_it_once_it_stops(swarm):
    batch = make_batch(swarm, tasks=3, concurrency=1)
    batch_advance(batch_id=batch.pk)
    (run_id,) = running_runs(batch)
    Run.objects.filter(pk=run_id).update(status="running")
    batch = services.batch_cancel(batch=batch)
    assert Run.objects.get(pk=run_id).cancel_requested_at is not None
    assert statuses(batch) == ["running", "skipped", "skipped"]
    assert (batch.status, batch.completed_at) == ("cancelled", None)
    assert events_of(batch.pk)[-1].type == "batch.progress"
    end_run(run_id, "cancelled", "0.003")
    batch = batch_advance(batch_id=batch.pk)
    assert statuses(batch) == ["cancelled", "skipped", "skipped"]
    assert batch.completed_at is not None and batch.spent_usd == Decimal("0.003")
    assert [e.type for e in events_of(batch.pk)][-2:] == ["item.cancelled", "batch.cancelled"]


def test_the_periodic_pass_records_what_a_lost_signal_left(swarm):
    one, two = make_batch(swarm, tasks=1), make_batch(swarm, tasks=1)
    for batch in (one, two):
        batch_advance(batch_id=batch.pk)
    end_run(running_runs(one)[0])
    assert services.batches_advance_open() == 2
    assert Batch.objects.get(pk=one.pk).status == "completed"
    assert Batch.objects.get(pk=two.pk).status == "running"
    assert services.batches_advance_open() == 1  # the ended one is no longer looked at


def test_a_runs_end_asks_for_a_pass_of_its_batch_and_of_batches_waiting_for_a_slot(
    swarm, workspace, monkeypatch
):
    asked = []
    monkeypatch.setattr(services.jobs, "enqueue", lambda name, *args: asked.append((name, args)))
    batch = make_batch(swarm, tasks=2, concurrency=1)
    batch_advance(batch_id=batch.pk)
    waiting = make_batch(swarm, tasks=1)
    Batch.objects.filter(pk=waiting.pk).update(blocked_reason="Concurrent runs limit")
    (run_id,) = running_runs(batch)
    run_ended.send(sender=Run, run_id=run_id, status="completed")
    assert asked == [(services.ADVANCE_BATCH, (batch_id,)) for batch_id in
                     sorted([batch.pk, waiting.pk])]  # fmt: skip
    asked.clear()
    # Another workspace's run, or a run of no batch with nothing waiting: nothing asked.
    Batch.objects.filter(pk=waiting.pk).update(blocked_reason="")
    run_ended.send(sender=Run, run_id=make_run(workspace).pk, status="completed")
    assert asked == []


def test_a_receiver_error_never_reaches_the_run(swarm, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(services, "batch_run_ended", broken)
    responses = run_ended.send_robust(sender=Run, run_id="run_x", status="completed")
    assert all(not isinstance(error, Exception) for _receiver, error in responses)


def test_an_item_whose_run_was_deleted_fails(swarm):
    batch = make_batch(swarm, tasks=1)
    batch_advance(batch_id=batch.pk)
    Run.objects.filter(pk=running_runs(batch)[0]).delete()
    batch = batch_advance(batch_id=batch.pk)
    item = BatchItem.objects.get(batch=batch)
    assert (item.status, item.error_code, batch.status) == ("failed", "run_deleted", "completed")
