"""estimate_cost: (expected, worst) from the calls the topology will plan."""

from decimal import Decimal

import pytest

from swarms.engine.estimate import estimate_cost, planned_calls

from .fakes import PRICES, TASK, RecordingProvider, agent, make_definition, run, run_input

TOPOLOGIES = ["hierarchical", "sequential", "parallel", "debate"]


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_expected_is_positive_and_below_worst(topology):
    expected, worst = estimate_cost(make_definition(topology), TASK, PRICES)
    assert isinstance(expected, Decimal) and isinstance(worst, Decimal)
    assert 0 < expected <= worst


def test_grows_with_worker_replicas():
    def cost(replicas: int):
        return estimate_cost(
            make_definition(
                "hierarchical",
                agents=[agent("m", "manager"), agent("w", "worker", replicas=replicas)],
            ),
            TASK,
            PRICES,
        )

    small, large = cost(2), cost(5)
    assert small[0] < large[0] and small[1] < large[1]


def test_grows_with_rounds_and_debaters():
    def cost(rounds: int, debaters: int = 2):
        definition = make_definition(
            "debate",
            agents=[agent("d", "debater", replicas=debaters), agent("j", "judge")],
            limits={"rounds": rounds},
        )
        return estimate_cost(definition, TASK, PRICES)

    assert cost(1)[0] < cost(3)[0] and cost(1)[1] < cost(3)[1]
    assert cost(2, debaters=2)[1] < cost(2, debaters=3)[1]


def test_grows_with_max_tokens_and_task_length():
    base = estimate_cost(make_definition("parallel"), TASK, PRICES)
    longer_task = estimate_cost(make_definition("parallel"), TASK * 20, PRICES)
    assert base[0] < longer_task[0] and base[1] < longer_task[1]


def test_known_numbers_for_a_single_agent():
    definition = make_definition("sequential", agents=[agent("solo", "writer", max_tokens=1000)])
    ((_, messages),) = planned_calls(definition, TASK, output_chars=lambda a: 0, subtask_chars=0)
    chars = sum(len(m.content) for m in messages)
    size = sum(len(m.content.encode()) for m in messages)
    expected, worst = estimate_cost(definition, TASK, PRICES)
    price = PRICES["gpt-4o-mini"]
    prompt_tokens = -(-chars // 4)
    assert (
        expected
        == (prompt_tokens * price.input_per_million + 500 * price.output_per_million) / 1_000_000
    )
    assert (
        worst
        == ((size + 2 * 8 + 16) * price.input_per_million + 1000 * price.output_per_million)
        / 1_000_000
    )


def test_unpriced_model_is_refused():
    with pytest.raises(ValueError, match="no price configured"):
        estimate_cost(make_definition("parallel"), TASK, {})


@pytest.mark.anyio
@pytest.mark.parametrize("topology", TOPOLOGIES)
async def test_plans_the_calls_the_runner_makes_and_worst_bounds_a_simulated_run(topology):
    definition = make_definition(topology)
    provider = RecordingProvider()  # simulation text: the manager plans one subtask per worker
    result, _ = await run(run_input(definition), provider)
    planned = planned_calls(definition, TASK, output_chars=lambda a: 0, subtask_chars=0)
    assert [a.id for a, _ in planned if a.role != "worker"] == [
        agent_id
        for agent_id in provider.agent_ids()
        if not agent_id.startswith(("researcher", "analyst"))
    ]
    assert sorted(a.id for a, _ in planned) == sorted(provider.agent_ids())
    _, worst = estimate_cost(definition, TASK, PRICES)
    assert result.total_cost_usd <= worst
