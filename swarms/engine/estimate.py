"""What a run of a definition should cost, before it starts: (expected, worst) in USD.

The estimate walks the same calls the topologies make, with the same prompt builders, putting
placeholder text where earlier agents' outputs would go. Expected assumes ~4 characters per token
and outputs of half their max_tokens; worst assumes every output uses its max_tokens (~4 bytes per
token) and bounds prompts by their UTF-8 size, like the runtime reservations do.
The runtime guarantee is the budget, not this number: it is for refusing hopeless runs up front
(422 budget_exceeded) and for showing templates' cost ranges.
"""

import math
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal

from swarms.engine import prompts
from swarms.engine.budget import cost_usd
from swarms.engine.chat import Message
from swarms.engine.plan import MAX_SUBTASK_CHARS
from swarms.engine.prompts import Contribution
from swarms.engine.providers import utf8_prompt_bound
from swarms.engine.topologies import DEBATE_SIDES, synthesiser, worker_slots
from swarms.engine.types import AgentSpec, Definition, Price

_MILLION = Decimal(1_000_000)
PlannedCall = tuple[AgentSpec, tuple[Message, ...]]
OutputChars = Callable[[AgentSpec], int]


def estimate_cost(
    definition: Definition, task: str, prices: Mapping[str, Price]
) -> tuple[Decimal, Decimal]:
    """(expected, worst) USD cost of running `definition` on `task`; ValueError if a model the
    definition uses has no price."""
    unpriced = sorted({agent.model for agent in definition.agents} - set(prices))
    if unpriced:
        raise ValueError(f"no price configured for model(s): {', '.join(unpriced)}")

    expected = Decimal(0)
    typical = planned_calls(
        definition, task, output_chars=lambda agent: 2 * agent.max_tokens,
        subtask_chars=min(MAX_SUBTASK_CHARS, len(task)),
    )  # fmt: skip
    for agent, messages in typical:
        price = prices[agent.model]
        tokens_in = math.ceil(sum(len(message.content) for message in messages) / 4)
        tokens_out = Decimal(agent.max_tokens) / 2
        expected += (
            tokens_in * price.input_per_million + tokens_out * price.output_per_million
        ) / _MILLION

    worst = Decimal(0)
    longest = planned_calls(
        definition, task, output_chars=lambda agent: 4 * agent.max_tokens,
        subtask_chars=MAX_SUBTASK_CHARS,
    )  # fmt: skip
    for agent, messages in longest:
        worst += cost_usd(utf8_prompt_bound(messages), agent.max_tokens, prices[agent.model])
    return expected, worst


# The most UTF-8 bytes an output may have per token it was allowed: the runner cuts longer ones
# (rare: English averages about 4), so an output of max_tokens bounds the prompts that quote it.
OUTPUT_BYTES_PER_TOKEN = 6


def floor_tokens(agent: AgentSpec, min_output_tokens: int) -> int:
    return min(agent.max_tokens, min_output_tokens)


def call_floors(
    definition: Definition,
    task: str,
    prices: Mapping[str, Price],
    min_output_tokens: int,
    output_bytes: Callable[[AgentSpec], int] | None = None,
) -> list[tuple[str, Decimal]]:
    """(agent id, cost) of each call a run makes, in order, at the least the engine starts it
    with: an output clamped to the floor, and a prompt bound that quotes each agent's outputs at
    `output_bytes(agent)` bytes (default: its floor's). Their sum is the cheapest path to a
    completed run; the runner keeps what calls not yet started need aside from earlier ones."""
    if output_bytes is None:

        def output_bytes(agent: AgentSpec) -> int:
            return OUTPUT_BYTES_PER_TOKEN * floor_tokens(agent, min_output_tokens)

    calls = planned_calls(
        definition, task, output_chars=output_bytes, subtask_chars=MAX_SUBTASK_CHARS
    )
    return [
        (
            agent.id,
            cost_usd(
                utf8_prompt_bound(messages),
                floor_tokens(agent, min_output_tokens),
                prices[agent.model],
            ),
        )
        for agent, messages in calls
    ]


def minimum_cost(
    definition: Definition, task: str, prices: Mapping[str, Price], min_output_tokens: int
) -> Decimal:
    """The least budget a run can be guaranteed to complete with (below it: 422 at creation)."""
    return sum(
        (cost for _, cost in call_floors(definition, task, prices, min_output_tokens)), Decimal(0)
    )


def planned_calls(
    definition: Definition,
    task: str,
    *,
    output_chars: OutputChars,
    subtask_chars: int,
) -> list[PlannedCall]:
    """The calls a run makes, in order, with outputs of `output_chars(agent)` characters and
    (hierarchical) one subtask of `subtask_chars` characters per worker slot."""
    walk = {
        "hierarchical": _hierarchical,
        "sequential": _sequential,
        "parallel": _parallel,
        "debate": _debate,
    }[definition.topology]
    return list(walk(definition, task, output_chars, subtask_chars))


def _filler(length: int) -> str:
    return "x" * length


def _hierarchical(
    definition: Definition, task: str, output_chars: OutputChars, subtask_chars: int
) -> Iterator[PlannedCall]:
    shared = definition.instructions
    manager = definition.role("manager")[0]
    workers = definition.role("worker")[: worker_slots(definition)]
    yield manager, prompts.plan_messages(shared, manager, task, len(workers))
    subtask = _filler(subtask_chars)
    inputs = []
    for worker in workers:
        yield worker, prompts.work_messages(shared, worker, task, subtask)
        inputs.append(Contribution(worker.id, _filler(output_chars(worker)), subtask))
    writer = synthesiser(definition)
    yield writer, prompts.synthesis_messages(shared, writer, task, inputs)


def _sequential(
    definition: Definition, task: str, output_chars: OutputChars, subtask_chars: int
) -> Iterator[PlannedCall]:
    previous = None
    for agent in definition.expanded_agents():
        yield agent, prompts.relay_messages(definition.instructions, agent, task, previous)
        previous = Contribution(agent.id, _filler(output_chars(agent)))


def _parallel(
    definition: Definition, task: str, output_chars: OutputChars, subtask_chars: int
) -> Iterator[PlannedCall]:
    shared = definition.instructions
    inputs = []
    for worker in definition.role("worker"):
        yield worker, prompts.work_messages(shared, worker, task, None)
        inputs.append(Contribution(worker.id, _filler(output_chars(worker))))
    aggregator = definition.role("aggregator")[0]
    yield aggregator, prompts.synthesis_messages(shared, aggregator, task, inputs)


def _debate(
    definition: Definition, task: str, output_chars: OutputChars, subtask_chars: int
) -> Iterator[PlannedCall]:
    shared = definition.instructions
    rounds = definition.limits.rounds
    transcript: list[Contribution] = []
    for round_number in range(1, rounds + 1):
        for index, debater in enumerate(definition.role("debater")):
            yield debater, prompts.argue_messages(
                shared, debater, task, transcript, round_number=round_number, rounds=rounds,
                side=DEBATE_SIDES[index % len(DEBATE_SIDES)],
            )  # fmt: skip
            transcript.append(
                Contribution(debater.id, _filler(output_chars(debater)), str(round_number))
            )
    judge = definition.role("judge")[0]
    yield judge, prompts.judge_messages(shared, judge, task, transcript)
