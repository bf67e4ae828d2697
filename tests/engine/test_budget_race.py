"""Many calls of one run at the budget edge at once: fifty workers whose calls all wait on one
`asyncio.Barrier`, so every reservation is taken and in flight before any settles.

The run never goes over its budget (what is settled plus what every call in flight was allowed
to spend), completes whenever the budget pays every call's output floor and starts nothing when
it does not, a call that fails after reserving gives its reservation back, and a call
interrupted in flight stays charged what it reserved.
"""

import asyncio
import random
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarms.engine import runner as runner_module
from swarms.engine.budget import Budget
from swarms.engine.cancel import CancelToken
from swarms.engine.providers import Completion, CompletionRequest, ProviderError
from swarms.engine.types import Price

from .fakes import MODEL, RecordingProvider, agent, make_definition, run, run_input

WORKERS = 50
CALLS = WORKERS + 1  # and the aggregator
# Input free, output $1 per million tokens: a call's worst case is exactly max_tokens millionths
# of a dollar whatever its prompt, so how many calls fit in a budget is plain arithmetic.
OUTPUT_ONLY = {MODEL: Price(input_per_million=Decimal(0), output_per_million=Decimal(1))}
MICRO = Decimal("0.000001")
# Only a bug (the barrier can never fill) waits this long; it turns a hang into a failure.
BARRIER_GUARD_SECONDS = 20


def wide(max_tokens: int):
    """A parallel run of 50 workers and an aggregator, all free to be in flight at once."""
    replicas = [16, 16, 16, 2]
    return make_definition(
        "parallel",
        agents=[
            *(
                agent(f"w{n}", "worker", replicas=count, max_tokens=max_tokens)
                for n, count in enumerate(replicas, 1)
            ),
            agent("merger", "aggregator", max_tokens=max_tokens),
        ],
        limits={"max_parallel": 64, "max_steps": CALLS},
    )


def worst_case(max_tokens: int) -> Decimal:
    return max_tokens * MICRO


class EdgeProvider(RecordingProvider):
    """Holds the first `parties` calls at an asyncio.Barrier, so they are all reserved and in
    flight together before any settles; later calls pass straight through. At every call's start
    it checks that the money settled so far plus the most every call in flight may cost (its
    max_tokens) fits the budget (with OUTPUT_ONLY prices it knows both exactly)."""

    def __init__(self, *, parties: int, budget: Decimal, **kwargs) -> None:
        super().__init__(**kwargs)
        self.barrier = asyncio.Barrier(parties) if parties else None
        self.budget = budget
        self.in_flight_worst = Decimal(0)
        self.at_barrier = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.settled_cost = Decimal(0)
        self.overdrawn: list[Decimal] = []
        self.barrier_broken = False

    async def complete(self, request: CompletionRequest) -> Completion:
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        self.in_flight_worst += request.max_tokens * MICRO
        committed = self.settled_cost + self.in_flight_worst
        if committed > self.budget:
            self.overdrawn.append(committed)
        try:
            if self.barrier is not None and self.at_barrier < self.barrier.parties:
                self.at_barrier += 1
                try:
                    async with asyncio.timeout(BARRIER_GUARD_SECONDS):
                        await self.barrier.wait()
                except TimeoutError:
                    self.barrier_broken = True
                    raise
                await self.after_barrier(request)
            completion = await super().complete(request)
            self.settled_cost += completion.tokens_out * MICRO
            return completion
        finally:
            self.concurrent -= 1
            self.in_flight_worst -= request.max_tokens * MICRO

    async def after_barrier(self, request: CompletionRequest) -> None:
        """What a call held at the barrier does once all are in flight (here: nothing)."""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    max_tokens=st.integers(min_value=1, max_value=4096),
    budget_micro=st.integers(min_value=0, max_value=CALLS * 4096 + 1000),
    worst_case_answers=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_fifty_reservations_at_the_budget_edge_never_overspend(
    max_tokens, budget_micro, worst_case_answers, seed
):
    budget = budget_micro * MICRO
    floor = min(max_tokens, 64)  # CallPolicy's default output floor
    completes = budget >= CALLS * floor * MICRO
    rnd = random.Random(seed)

    def tokens(request, text):
        out = request.max_tokens if worst_case_answers else rnd.randint(0, request.max_tokens)
        return 0, out

    provider = EdgeProvider(parties=WORKERS if completes else 0, budget=budget, tokens=tokens)
    spec = run_input(wide(max_tokens), budget=str(budget), prices=OUTPUT_ONLY)
    result, log = asyncio.run(run(spec, provider))

    assert not provider.barrier_broken, "fewer reservations were in flight at once than fit"
    # Every worker started at once (each clamped to its share), never past the budget.
    assert provider.max_concurrent == (WORKERS if completes else 0)
    assert provider.overdrawn == []
    assert all(floor <= request.max_tokens <= max_tokens for request in provider.requests)
    assert result.total_cost_usd <= budget
    assert result.total_cost_usd == sum((u.cost_usd for u in result.usage), Decimal(0))
    assert result.total_cost_usd == provider.settled_cost
    terminal = [e for e in log.events if e.type in ("run.completed", "run.failed")]
    assert [e.type for e in terminal] == [f"run.{result.status}"]

    if completes:
        assert result.status == "completed", result.error_message
        assert len(result.usage) == CALLS
    else:  # refused before spending anything, rather than failing halfway
        assert (result.status, result.error_code) == ("failed", "budget_exceeded")
        assert result.usage == ()
    if budget >= CALLS * worst_case(max_tokens):  # room for every worst case: nothing clamped
        assert {request.max_tokens for request in provider.requests} == {max_tokens}


@pytest.fixture
def budgets(monkeypatch) -> list[Budget]:
    """Every Budget the runner makes, to look at a run's money while its calls are in flight."""
    made: list[Budget] = []

    class RecordedBudget(Budget):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(runner_module, "Budget", RecordedBudget)
    return made


def test_a_call_failing_after_its_reservation_gives_the_money_back(budgets):
    max_tokens = 1000
    worst = worst_case(max_tokens)
    budget = CALLS * worst  # every call at its worst case: nothing is clamped
    failed = asyncio.Event()
    seen_after_failure: list[tuple[Decimal, Decimal]] = []

    class FailingAfterTheBarrier(EdgeProvider):
        """Once the fifty reserved calls are all in flight, w1-1 fails; the other 49 look at
        the run's budget after that failure was handled, then answer."""

        async def after_barrier(self, request):
            if request.agent_id == "w1-1":
                failed.set()
                raise ProviderError("upstream: HTTP 500 after the reservation")
            await failed.wait()
            (run_budget,) = budgets
            seen_after_failure.append((run_budget.reserved, run_budget.remaining))

    provider = FailingAfterTheBarrier(parties=WORKERS, budget=budget, reply=lambda r: "fine")
    spec = run_input(wide(max_tokens), budget=str(budget), prices=OUTPUT_ONLY)
    result, log = asyncio.run(run(spec, provider))

    assert not provider.barrier_broken
    # The failed call's worst case was back at once: the 49 live calls held the only money
    # reserved, and what remained was enough for another call.
    assert len(seen_after_failure) == WORKERS - 1
    for reserved, remaining in seen_after_failure:
        assert reserved == (WORKERS - 1) * worst
        assert remaining == budget - (WORKERS - 1) * worst >= worst
    (run_budget,) = budgets
    assert run_budget.reserved == 0
    assert run_budget.remaining == budget - result.total_cost_usd
    # The documented outcome: a provider error fails the run after its siblings in flight
    # finish; the failed call costs nothing and no new call starts.
    assert (result.status, result.error_code) == ("failed", "provider_error")
    assert result.error_message == "upstream: HTTP 500 after the reservation"
    assert len(result.usage) == WORKERS - 1
    assert "w1-1" not in {u.agent_id for u in result.usage}
    assert result.total_cost_usd == (WORKERS - 1) * MICRO  # "fine" is one token each
    assert len(log.of_type("agent.started")) == WORKERS
    assert "merger" not in provider.agent_ids()


def test_calls_interrupted_in_flight_stay_charged_what_they_reserved(budgets):
    max_tokens = 500
    worst = worst_case(max_tokens)
    budget = CALLS * worst  # every call at its worst case: nothing is clamped
    token = CancelToken()
    interrupted: list[str] = []

    class TwoAnswerThenCancel(EdgeProvider):
        """Fifty reserved calls in flight at once; two answer (at their worst case), then the
        run is cancelled while the other 48 hang."""

        answered = 0

        async def after_barrier(self, request):
            if self.answered < 2:
                self.answered += 1
                if self.answered == 2:
                    token.cancel()
                return
            try:
                await asyncio.Event().wait()  # in flight until the cancel aborts it
            except asyncio.CancelledError:
                interrupted.append(request.agent_id)
                raise

    provider = TwoAnswerThenCancel(
        parties=WORKERS, budget=budget, tokens=lambda request, text: (0, max_tokens)
    )
    spec = run_input(wide(max_tokens), budget=str(budget), prices=OUTPUT_ONLY)
    result, log = asyncio.run(run(spec, provider, cancel=token))

    assert not provider.barrier_broken
    assert result.status == "cancelled"
    assert log.events[-1].type == "run.cancelled"
    # Two calls settled; the 48 still in flight were aborted and have no usage.
    assert len(result.usage) == 2
    assert len(interrupted) == WORKERS - 2
    assert not {u.agent_id for u in result.usage} & set(interrupted)
    assert result.total_cost_usd == 2 * worst
    (run_budget,) = budgets
    assert run_budget.reserved == 0
    # The aborted calls may have been billed by the provider: until reconciled, what they
    # reserved still counts against the run's budget.
    assert run_budget.remaining == budget - result.total_cost_usd - (WORKERS - 2) * worst
