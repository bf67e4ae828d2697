"""Property: whatever the prices, token counts, budget and topology, a run never costs more than
its budget, and the usage, the events and the result agree on the cost to the last digit."""

import asyncio
from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from swarms.engine.budget import cost_usd
from swarms.engine.types import Price

from .fakes import MODEL, RecordingProvider, definition_dict, make_definition, run, run_input

TERMINAL = {"run.completed", "run.failed", "run.cancelled"}


def money(low: str, high: str, places: int):
    return st.decimals(
        min_value=Decimal(low), max_value=Decimal(high), places=places,
        allow_nan=False, allow_infinity=False,
    )  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topology=st.sampled_from(["hierarchical", "sequential", "parallel", "debate"]),
    price_in=money("0", "30", 2),
    price_out=money("0", "60", 2),
    budget=money("0", "1", 6),
    max_tokens=st.integers(min_value=1, max_value=1500),
    max_parallel=st.integers(min_value=1, max_value=4),
    rnd=st.randoms(),
)
def test_cost_never_passes_the_budget_and_every_account_agrees(
    topology, price_in, price_out, budget, max_tokens, max_parallel, rnd
):
    data = definition_dict(topology, limits={"max_parallel": max_parallel})
    for spec in data["agents"]:
        spec["max_tokens"] = max_tokens
    definition = make_definition(topology, agents=data["agents"], limits=data["limits"])
    price = Price(input_per_million=price_in, output_per_million=price_out)

    # Any honest provider: bills at most its stated prompt bound and at most max_tokens.
    provider = RecordingProvider(
        latency=lambda request: rnd.choice([0, 0, 0.001]),
        tokens=lambda request, text: (
            rnd.randint(0, provider.max_prompt_tokens(request.messages)),
            rnd.randint(0, request.max_tokens),
        ),
    )
    spec = run_input(definition, budget=str(budget), prices={MODEL: price})
    result, log = asyncio.run(run(spec, provider))

    event(f"{topology}: {result.status}")
    assert result.status in ("completed", "failed")
    if result.status == "failed":
        assert result.error_code == "budget_exceeded", result.error_message
    assert result.total_cost_usd <= budget
    assert sum((u.cost_usd for u in result.usage), Decimal(0)) == result.total_cost_usd
    for usage in result.usage:
        assert usage.cost_usd == cost_usd(usage.tokens_in, usage.tokens_out, price)
    per_agent: dict[str, Decimal] = defaultdict(Decimal)
    for usage in result.usage:
        per_agent[usage.agent_id] += usage.cost_usd
    assert sum(per_agent.values(), Decimal(0)) == result.total_cost_usd

    assert log.usages == list(result.usage)
    assert len(provider.requests) == len(result.usage)  # no call without its usage
    messages = log.of_type("agent.message")
    assert sum((Decimal(e.data["cost_usd"]) for e in messages), Decimal(0)) == result.total_cost_usd
    terminal = [e for e in log.events if e.type in TERMINAL]
    assert terminal == [log.events[-1]]
    assert Decimal(terminal[0].data["cost_usd"]) == result.total_cost_usd
