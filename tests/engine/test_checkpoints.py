"""Checkpoints: every call is on record (reserved) before it starts and settled, released or
interrupted after; a resumed run replays settled calls instead of paying for them again and
holds what interrupted ones reserved; a time limit ends a run failed, not cancelled."""

import asyncio
import dataclasses
from decimal import Decimal

import pytest

from swarms.engine import ProviderError, ProviderRouter, Step, run_swarm
from swarms.engine.budget import Budget
from swarms.engine.cancel import CancelToken
from tests.engine.fakes import CallbackLog, RecordingProvider, make_definition, run_input
from tests.waiting import wait_for_async

pytestmark = pytest.mark.anyio


class StepLog(CallbackLog):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Step] = []

    async def on_step(self, step: Step) -> None:
        self.log.append(("step", step))
        self.steps.append(step)


async def execute(spec, provider, *, cancel=None, log=None):
    log = log or StepLog()
    router = ProviderRouter(routes={}, default=provider)
    result = await run_swarm(
        spec, router=router, on_event=log.on_event, on_usage=log.on_usage,
        on_step=log.on_step, cancel=cancel,
    )  # fmt: skip
    return result, log


async def test_each_call_is_reserved_on_record_before_it_starts_then_settled():
    provider = RecordingProvider()
    order: list[str] = []

    class Log(StepLog):
        async def on_step(self, step):
            await super().on_step(step)
            if step.status == "reserved":
                order.append(f"reserved:{len(provider.requests)}")

    result, log = await execute(run_input(make_definition("sequential")), provider, log=Log())
    assert result.status == "completed"
    assert order == ["reserved:0", "reserved:1", "reserved:2"]  # before each request was made
    reserved = [s for s in log.steps if s.status == "reserved"]
    settled = [s for s in log.steps if s.status == "settled"]
    assert [s.key for s in reserved] == [s.key for s in settled]
    assert len({s.key for s in settled}) == 3
    for step in settled:
        assert step.usage is not None and step.output
        assert step.usage.cost_usd <= step.reserved_usd
    assert [s.usage for s in settled] == log.usages


async def test_a_call_whose_reservation_cannot_be_recorded_never_starts():
    provider = RecordingProvider()

    class Refusing(StepLog):
        async def on_step(self, step):
            if step.status == "reserved":
                raise RuntimeError("lease lost")
            await super().on_step(step)

    result, _ = await execute(run_input(make_definition("sequential")), provider, log=Refusing())
    assert provider.requests == []
    assert result.status == "failed" and result.error_code == "internal_error"
    assert "lease lost" in result.error_message
    assert result.total_cost_usd == 0


async def test_a_resumed_run_replays_settled_calls_and_pays_only_for_the_rest():
    first, log = await execute(run_input(make_definition("hierarchical")), RecordingProvider())
    settled = [s for s in log.steps if s.status == "settled"]
    assert len(settled) == 5  # manager, 3 researchers, writer
    # The lost attempt had settled the manager's plan and two researchers.
    kept = {s.key: s for s in settled[:3]}
    spec = dataclasses.replace(run_input(make_definition("hierarchical")), checkpoints=kept)
    provider = RecordingProvider()
    resumed, relog = await execute(spec, provider)

    assert resumed.status == "completed"
    assert resumed.output == first.output  # the same run, told once
    assert len(provider.requests) == 2  # the third researcher and the writer only
    assert resumed.total_cost_usd == first.total_cost_usd  # replayed calls counted, not re-paid
    assert len(relog.usages) == 2  # the ledger gets the new calls only
    assert {s.key for s in relog.steps}.isdisjoint(kept)
    assert len(relog.of_type("agent.completed")) == 2
    assert "run.started" in relog.types()


async def test_interrupted_reservations_of_a_lost_attempt_are_held_against_the_budget():
    spec = run_input(make_definition("sequential"), budget="0.01")
    full, _ = await execute(spec, RecordingProvider())
    assert full.status == "completed"
    held = Decimal("0.01") - full.total_cost_usd / 2  # leaves room for about half the run
    held_spec = dataclasses.replace(spec, held_usd=held)
    result, _ = await execute(held_spec, RecordingProvider())
    assert result.status == "failed" and result.error_code == "budget_exceeded"
    assert result.total_cost_usd + held <= Decimal("0.01")


async def test_a_call_the_provider_refuses_is_released_and_one_cut_off_is_interrupted():
    def fail(request):
        raise ProviderError("upstream 500")

    failing = RecordingProvider(reply=fail)
    _, log = await execute(run_input(make_definition("sequential")), failing)
    assert [s.status for s in log.steps] == ["reserved", "released"]

    token = CancelToken()
    slow = RecordingProvider(latency=5)
    task = asyncio.create_task(
        execute(run_input(make_definition("sequential")), slow, cancel=token)
    )
    await wait_for_async(lambda: slow.requests, "the first call")
    token.cancel()
    result, log = await task
    assert result.status == "cancelled"
    assert [s.status for s in log.steps] == ["reserved", "interrupted"]


def test_a_budget_holds_interrupted_reservations_until_reconciled():
    budget = Budget(Decimal("1.00"), held=Decimal("0.25"))
    first = budget.reserve(Decimal("0.50"))
    budget.interrupt(first)
    assert budget.held == Decimal("0.75") and budget.reserved == 0
    assert budget.remaining == Decimal("0.25")
    budget.charge(Decimal("0.20"))
    assert budget.remaining == Decimal("0.05")
    with pytest.raises(Exception, match="budget"):
        budget.reserve(Decimal("0.06"))
    with pytest.raises(ValueError):
        budget.charge(Decimal("-0.01"))


async def test_a_time_limit_fails_the_run_with_its_reason_and_keeps_the_cost():
    token = CancelToken()
    slow = RecordingProvider(latency=lambda r: 0 if r.agent_id == "drafter" else 5)
    task = asyncio.create_task(
        execute(run_input(make_definition("sequential")), slow, cancel=token)
    )
    await wait_for_async(lambda: len(slow.requests) >= 2, "the second call")
    token.fail("timeout", "The run exceeded its time limit of 1 s.")
    result, log = await task
    assert result.status == "failed" and result.error_code == "timeout"
    assert log.types()[-1] == "run.failed"
    assert result.total_cost_usd > 0 and "drafter" in result.output


async def test_a_user_cancel_before_the_time_limit_stays_a_cancel():
    token = CancelToken()
    token.cancel()
    token.fail("timeout", "too late")
    result, _ = await execute(
        run_input(make_definition("sequential")), RecordingProvider(), cancel=token
    )
    assert result.status == "cancelled"


class BatchLog:
    def __init__(self, fail_on_reserve: bool = False) -> None:
        self.batches: list[list] = []
        self.fail_on_reserve = fail_on_reserve

    async def on_batch(self, items) -> None:
        if self.fail_on_reserve and any(getattr(i, "status", "") == "reserved" for i in items):
            raise RuntimeError("database unreachable")
        self.batches.append(list(items))

    @property
    def items(self) -> list:
        return [item for batch in self.batches for item in batch]


async def test_a_batching_caller_sees_the_same_items_in_the_same_order_in_fewer_calls():
    spec = run_input(make_definition("hierarchical"))
    _, one_by_one = await execute(spec, RecordingProvider())
    batched = BatchLog()
    router = ProviderRouter(routes={}, default=RecordingProvider())
    result = await run_swarm(spec, router=router, on_batch=batched.on_batch)
    assert result.status == "completed"
    assert [kind for kind, _ in one_by_one.log] == [
        "step" if isinstance(item, Step) else "usage" if hasattr(item, "tokens_in") else "event"
        for item in batched.items
    ]
    assert [e.type for e in batched.items if hasattr(e, "type")] == one_by_one.types()
    assert len(batched.batches) < len(batched.items)  # several items per call


async def test_a_settlement_and_the_next_reservation_made_at_once_share_one_batch():
    # On an instant provider each call's settlement, its events and the next agent's
    # reservation are queued in the same moment, so the caller stores them together: about one
    # batch per call (and the run's last), not one per reservation, settlement and event burst.
    for topology in ("sequential", "hierarchical"):
        log = BatchLog()
        router = ProviderRouter(routes={}, default=RecordingProvider())
        spec = run_input(make_definition(topology))
        result = await run_swarm(spec, router=router, on_batch=log.on_batch)
        assert result.status == "completed"
        statuses = [[i.status for i in batch if isinstance(i, Step)] for batch in log.batches]
        assert any(batch[:2] == ["settled", "reserved"] for batch in statuses), statuses
        calls = sum(batch.count("reserved") for batch in statuses)
        assert len(log.batches) <= calls + 2, statuses


async def test_a_batch_that_cannot_be_stored_keeps_its_reserved_call_from_starting():
    provider = RecordingProvider()
    router = ProviderRouter(routes={}, default=provider)
    log = BatchLog(fail_on_reserve=True)
    spec = run_input(make_definition("sequential"))
    result = await run_swarm(spec, router=router, on_batch=log.on_batch)
    assert provider.requests == []
    assert result.status == "failed" and "database unreachable" in result.error_message
