"""run_swarm's guarantees: concurrency bound, hard budget, cancellation, errors, event stream."""

import asyncio
import threading
from decimal import Decimal

import anyio
import pytest

from swarms.engine.cancel import CancelToken, cancel_when
from swarms.engine.providers import ProviderError, SimulatedProvider
from swarms.engine.types import Price
from tests.waiting import wait_for_async

from .fakes import (
    MODEL,
    CallbackLog,
    ConcurrencyProbe,
    RecordingProvider,
    agent,
    make_definition,
    run,
    run_input,
)

pytestmark = pytest.mark.anyio

TERMINAL = {"run.completed", "run.failed", "run.cancelled"}
# Input free, output $1 per million: a call's worst case is exactly max_tokens millionths of $1,
# whatever its prompt, which makes budget scenarios easy to set up.
OUTPUT_ONLY = {MODEL: Price(input_per_million=Decimal(0), output_per_million=Decimal(1))}


def team(workers: int, max_parallel: int, **worker_options):
    return make_definition(
        "hierarchical",
        agents=[
            agent("manager", "manager"),
            agent("researcher", "worker", replicas=workers, **worker_options),
            agent("writer", "writer", max_tokens=2048),
        ],
        limits={"max_parallel": max_parallel},
    )


# --- concurrency ----------------------------------------------------------------------------------


async def test_workers_run_concurrently_up_to_max_parallel():
    probe = ConcurrencyProbe(SimulatedProvider(latency_seconds=0.2))
    result, _ = await run(run_input(team(workers=4, max_parallel=4)), probe)
    assert result.status == "completed"
    assert probe.calls == 6
    assert probe.max_in_flight == 4  # the four workers overlap: ~0.2 s, not 0.8 s


@pytest.mark.parametrize(("workers", "max_parallel", "expected"), [(4, 1, 1), (6, 3, 3), (2, 8, 2)])
async def test_max_parallel_bounds_calls_in_flight(workers, max_parallel, expected):
    probe = ConcurrencyProbe(SimulatedProvider(latency_seconds=0.02))
    await run(run_input(team(workers=workers, max_parallel=max_parallel)), probe)
    assert probe.max_in_flight == expected


async def test_parallel_topology_is_concurrent_and_sequential_is_not():
    probe = ConcurrencyProbe(SimulatedProvider(latency_seconds=0.02))
    await run(run_input(make_definition("parallel")), probe)
    assert probe.max_in_flight == 3
    probe = ConcurrencyProbe(SimulatedProvider(latency_seconds=0.02))
    await run(run_input(make_definition("sequential")), probe)
    assert probe.max_in_flight == 1


# --- budget ---------------------------------------------------------------------------------------


# team(workers=3): five calls; at the 64-token floor each costs $0.000064, so $0.00032 is the
# least such a run can be guaranteed to complete for.
FLOOR = Decimal("0.000064")


async def test_no_call_starts_when_the_run_could_not_complete():
    provider = RecordingProvider()
    spec = run_input(team(workers=3, max_parallel=4), budget="0.0003", prices=OUTPUT_ONLY)
    result, log = await run(spec, provider)
    assert provider.requests == []
    assert result.status == "failed"
    assert result.error_code == "budget_exceeded"
    assert "$0.0003" in result.error_message and "manager" in result.error_message
    assert result.total_cost_usd == 0
    assert result.usage == ()
    assert result.output == ""
    assert log.types() == ["run.started", "run.failed"]
    assert log.events[-1].data == {
        "error_code": "budget_exceeded",
        "error_message": result.error_message,
        "cost_usd": "0",
    }


async def test_the_least_budget_that_fits_every_floor_completes():
    provider = RecordingProvider()
    spec = run_input(team(workers=3, max_parallel=4), budget=str(5 * FLOOR), prices=OUTPUT_ONLY)
    result, _ = await run(spec, provider)
    assert result.status == "completed", result.error_message
    assert len(provider.requests) == 5
    assert all(request.max_tokens >= 64 for request in provider.requests)
    assert result.total_cost_usd <= 5 * FLOOR


async def test_a_tight_budget_clamps_max_tokens_and_the_run_completes():
    provider = RecordingProvider(latency=0.01)
    spec = run_input(team(workers=3, max_parallel=4), budget="0.0015", prices=OUTPUT_ONLY)
    result, log = await run(spec, provider)
    # Worst cases: manager and researchers $0.001024, writer $0.002048: more than the budget,
    # so each call gets the output tokens the money left pays for, keeping later calls' floors.
    assert result.status == "completed", result.error_message
    assert provider.agent_ids()[-1] == "writer"
    limits = {request.agent_id: request.max_tokens for request in provider.requests}
    assert limits["manager"] == 1024  # $0.001024 fits beside the four floors still to come
    assert limits["researcher-2"] < 1024 and limits["researcher-3"] < 1024
    assert 64 <= limits["writer"] < 2048
    assert min(limits.values()) >= 64
    assert result.total_cost_usd <= Decimal("0.0015")
    started = {event.agent_id: event.data for event in log.of_type("agent.started")}
    assert "max_tokens" not in started["manager"]
    assert started["writer"]["max_tokens"] == limits["writer"]  # the clamp is on record


async def test_a_budget_that_fits_every_worst_case_clamps_nothing():
    provider = RecordingProvider()
    budget = 4 * Decimal("0.001024") + Decimal("0.002048")
    spec = run_input(team(workers=3, max_parallel=4), budget=str(budget), prices=OUTPUT_ONLY)
    result, log = await run(spec, provider)
    assert result.status == "completed"
    assert {request.max_tokens for request in provider.requests} == {1024, 2048}
    assert all("max_tokens" not in event.data for event in log.of_type("agent.started"))


async def test_parallel_workers_under_a_tight_budget_all_start_at_once():
    provider = RecordingProvider(latency=0.01)
    spec = run_input(team(workers=4, max_parallel=4), budget="0.001", prices=OUTPUT_ONLY)
    result, _ = await run(spec, provider)
    # None waits for another to settle: each is clamped to what it may spend beside the others.
    assert provider.max_in_flight == 4
    assert result.status == "completed"
    assert result.total_cost_usd <= Decimal("0.001")


# --- cancellation ---------------------------------------------------------------------------------


def slow_workers(request) -> float:
    return 0.0 if request.agent_id == "manager" else 30.0


async def test_cancel_aborts_calls_in_flight_and_keeps_partial_output():
    provider = RecordingProvider(latency=slow_workers)
    token = CancelToken()
    log = CallbackLog()
    task = asyncio.create_task(
        run(run_input(team(workers=3, max_parallel=4)), provider, log=log, cancel=token)
    )
    await wait_for_async(lambda: provider.in_flight == 3, "3 calls in flight")
    events_before_cancel = len(log.events)
    token.cancel()
    with anyio.fail_after(5):
        result, _ = await task

    assert result.status == "cancelled"
    assert sorted(provider.aborted) == ["researcher-1", "researcher-2", "researcher-3"]
    assert provider.agent_ids()[-1] != "writer"  # nothing new started
    assert [u.agent_id for u in result.usage] == ["manager"]  # aborted calls record no usage
    assert log.usages == list(result.usage)
    assert result.total_cost_usd == result.usage[0].cost_usd
    assert result.output.startswith("## manager (plan)")
    assert result.error_code is None
    later = [e.type for e in log.events[events_before_cancel:]]
    assert "agent.started" not in later and "agent.message" not in later
    assert log.events[-1].type == "run.cancelled"
    assert log.events[-1].data == {"cost_usd": str(result.total_cost_usd)}


async def test_cancel_from_another_thread():
    provider = RecordingProvider(latency=slow_workers)
    token = CancelToken()
    task = asyncio.create_task(
        run(run_input(team(workers=2, max_parallel=2)), provider, cancel=token)
    )
    await wait_for_async(lambda: provider.in_flight == 2, "2 calls in flight")
    thread = threading.Thread(target=token.cancel)
    thread.start()
    with anyio.fail_after(5):
        result, _ = await task
    thread.join()
    assert result.status == "cancelled"
    assert token.cancelled


async def test_cancelled_before_start_makes_no_calls():
    token = CancelToken()
    token.cancel()
    provider = RecordingProvider()
    result, log = await run(run_input(make_definition("parallel")), provider, cancel=token)
    assert result.status == "cancelled"
    assert provider.requests == []
    assert log.types() == ["run.started", "run.cancelled"]


async def test_cancelling_the_callers_task_propagates_and_aborts_calls():
    provider = RecordingProvider(latency=slow_workers)
    task = asyncio.create_task(run(run_input(team(workers=2, max_parallel=2)), provider))
    await wait_for_async(lambda: provider.in_flight == 2, "2 calls in flight")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(provider.aborted) == ["researcher-1", "researcher-2"]


# --- errors ---------------------------------------------------------------------------------------


async def test_provider_error_fails_the_run_after_siblings_in_flight_finish():
    def reply(request):
        if request.agent_id == "researcher-2":
            raise ProviderError("openai: model 'gpt-4o-mini' answered HTTP 500: boom")
        return '["A", "B", "C"]' if request.agent_id == "manager" else f"done by {request.agent_id}"

    def latency(request):
        return {"researcher-2": 0.0, "manager": 0.0}.get(request.agent_id, 0.05)

    provider = RecordingProvider(reply=reply, latency=latency)
    result, log = await run(run_input(team(workers=3, max_parallel=4)), provider)
    assert result.status == "failed"
    assert result.error_code == "provider_error"
    assert result.error_message == "openai: model 'gpt-4o-mini' answered HTTP 500: boom"
    assert sorted(u.agent_id for u in result.usage) == ["manager", "researcher-1", "researcher-3"]
    assert "writer" not in provider.agent_ids()
    assert "done by researcher-3" in result.output
    assert log.events[-1].type == "run.failed"


async def test_provider_error_on_the_first_call():
    def reply(request):
        raise ProviderError("simulated outage")

    result, _ = await run(run_input(make_definition("debate")), RecordingProvider(reply=reply))
    assert (result.status, result.error_code, result.usage) == ("failed", "provider_error", ())


async def test_unexpected_exception_becomes_internal_error():
    def reply(request):
        raise ValueError("a bug")

    result, log = await run(run_input(make_definition("parallel")), RecordingProvider(reply=reply))
    assert result.status == "failed"
    assert result.error_code == "internal_error"
    assert result.error_message == "ValueError: a bug"
    assert [e.type for e in log.events if e.type in TERMINAL] == ["run.failed"]


async def test_unpriced_model_fails_cleanly():
    spec = run_input(make_definition("sequential"), prices={"other": OUTPUT_ONLY[MODEL]})
    result, log = await run(spec, RecordingProvider())
    assert (result.status, result.error_code) == ("failed", "internal_error")
    assert "no price configured for model(s): gpt-4o-mini" in result.error_message
    assert log.types() == ["run.started", "run.failed"]


async def test_a_failing_callback_fails_the_run_but_the_terminal_event_is_still_sent():
    class FlakyLog(CallbackLog):
        async def on_event(self, event):
            if event.type == "agent.message":
                raise RuntimeError("database is down")
            await super().on_event(event)

    log = FlakyLog()
    result, _ = await run(run_input(make_definition("sequential")), RecordingProvider(), log=log)
    assert result.status == "failed"
    assert result.error_code == "internal_error"
    assert "database is down" in result.error_message
    assert log.events[-1].type == "run.failed"


async def test_a_failing_usage_callback_stops_spending():
    class NoLedger(CallbackLog):
        async def on_usage(self, usage):
            raise RuntimeError("ledger unavailable")

    provider = RecordingProvider(latency=0.01)
    result, _ = await run(run_input(make_definition("sequential")), provider, log=NoLedger())
    assert (result.status, result.error_code) == ("failed", "internal_error")
    assert len(provider.requests) < 3
    assert len(result.usage) >= 1  # the caller can still reconcile from the result


# --- the event stream -----------------------------------------------------------------------------


async def test_event_stream_shape_and_order():
    result, log = await run(run_input(make_definition("hierarchical")))
    types = log.types()
    assert types[0] == "run.started"
    assert [t for t in types if t in TERMINAL] == ["run.completed"]
    assert types[-1] == "run.completed"

    # Per finished call: usage, then agent.message, agent.completed, run.progress.
    entries = log.log
    for index, (kind, item) in enumerate(entries):
        if kind == "usage":
            following = [entry[1].type for entry in entries[index + 1 : index + 4]]
            assert following == ["agent.message", "agent.completed", "run.progress"]
            assert entries[index + 1][1].agent_id == item.agent_id
            assert entries[index + 1][1].data["cost_usd"] == str(item.cost_usd)
    assert len(log.usages) == len(log.of_type("agent.started")) == 5

    # Delegation precedes the workers' starts; every start precedes its message.
    first_worker_start = next(
        i for i, e in enumerate(log.events) if e.type == "agent.started" and e.agent_id != "manager"
    )
    assert all(
        i < first_worker_start for i, e in enumerate(log.events) if e.type == "agent.delegated"
    )
    started = log.of_type("agent.started")[0]
    assert started.agent_id == "manager"
    assert started.data == {"model": MODEL, "task": "Investigate the Norwegian hydrogen economy"}

    progress = [e.data for e in log.of_type("run.progress")]
    values = [p["progress"] for p in progress]
    assert values == sorted(values) and values[-1] == 1.0
    assert all(p["agents_total"] == 5 for p in progress)
    assert all(0 <= p["agents_active"] <= 4 for p in progress)
    assert Decimal(progress[-1]["cost_usd"]) == result.total_cost_usd

    message = log.of_type("agent.message")[-1]
    assert message.agent_id == "writer"
    assert set(message.data) == {"summary", "tokens_in", "tokens_out", "cost_usd"}
    assert len(message.data["summary"]) <= 200
    completed = log.of_type("agent.completed")[-1]
    assert completed.data["output"] == result.output

    total = sum(Decimal(e.data["cost_usd"]) for e in log.of_type("agent.message"))
    assert total == result.total_cost_usd == Decimal(log.events[-1].data["cost_usd"])
    assert log.usages == list(result.usage)


async def test_callbacks_are_never_called_concurrently():
    active = 0
    overlapped = False

    class SlowLog(CallbackLog):
        async def on_event(self, event):
            nonlocal active, overlapped
            active += 1
            overlapped |= active > 1
            await asyncio.sleep(0.001)
            await super().on_event(event)
            active -= 1

    log = SlowLog()
    await run(run_input(team(workers=4, max_parallel=4)), SimulatedProvider(), log=log)
    assert not overlapped
    assert log.events[-1].type == "run.completed"


async def test_cancel_when_polls_until_the_request_appears():
    provider = RecordingProvider(latency=slow_workers)
    token = CancelToken()
    asked = []

    async def requested() -> bool:
        asked.append(provider.in_flight)
        return provider.in_flight == 2

    watcher = asyncio.create_task(cancel_when(requested, token, interval=0.01))
    with anyio.fail_after(5):
        result, _ = await run(run_input(team(workers=2, max_parallel=2)), provider, cancel=token)
    await watcher
    assert result.status == "cancelled"
    assert len(asked) > 1 and asked[-1] == 2
