"""What a run of a definition should cost, before it starts: (expected, worst) in USD, and the
floors the runner keeps aside for calls not started yet.

All of it comes from a dry run: the definition's topology runs its own `run` against steps that
answer every call at once with filler of a chosen size (a manager's plan with a subtask for every
worker slot), recording the calls it makes with the prompts it builds. So the estimate walks the
calls a run makes by construction. Expected assumes ~4 characters per token and outputs of half
their max_tokens; worst assumes every output uses its max_tokens (~4 bytes per token) and bounds
prompts by their UTF-8 size, like the runtime reservations do.
The runtime guarantee is the budget, not this number: it is for refusing hopeless runs up front
(422 budget_exceeded) and for showing templates' cost ranges.
"""

import json
import math
import string
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from swarms.engine.budget import cost_usd
from swarms.engine.chat import Message
from swarms.engine.plan import MAX_SUBTASK_CHARS
from swarms.engine.providers import utf8_prompt_bound
from swarms.engine.topologies import TOPOLOGIES, Job
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
    """The calls a run makes, in order, when every output has `output_chars(agent)` characters
    and a plan has one subtask of `subtask_chars` characters per worker slot: the topology's own
    `run`, driven to its end at once (its steps never suspend, so no event loop is needed)."""
    steps = _DryRun(output_chars, subtask_chars)
    walk = TOPOLOGIES[definition.topology].run(steps, definition, task)
    try:
        walk.send(None)
    except StopIteration:
        return steps.calls
    walk.close()
    raise RuntimeError(f"topology {definition.topology} awaited something besides its steps")


class _DryRun:
    """`topologies.Steps` that answers every call at once with filler and keeps the calls."""

    def __init__(self, output_chars: OutputChars, subtask_chars: int) -> None:
        self.output_chars = output_chars
        self.subtask_chars = subtask_chars
        self.calls: list[PlannedCall] = []

    def expect_calls(self, count: int) -> None:
        return None

    def delegate(self, manager: AgentSpec, target: AgentSpec, subtask: str, note: str) -> None:
        return None

    def check(self) -> None:
        return None

    async def call(self, job: Job) -> str:
        self.calls.append((job.agent, job.messages))
        if job.plan_items:
            return json.dumps(_distinct_fillers(job.plan_items, self.subtask_chars))
        return "x" * self.output_chars(job.agent)

    async def fan_out(self, jobs: Sequence[Job]) -> list[str | None]:
        return [await self.call(job) for job in jobs]


# Characters a subtask keeps through the plan reader and the prompts unchanged and one byte each:
# no whitespace (collapsed), no upper case (subtasks are deduplicated ignoring case), nothing
# html.escape changes (subtasks are quoted in tag attributes). Longer subtasks use letters and
# digits only, so no two characters side by side mean something ("**" is bold, and dropped).
_ALPHANUMERIC = string.digits + string.ascii_lowercase
_ONE_CHARACTER = _ALPHANUMERIC + "".join(sorted(set(string.punctuation) - set("&<>\"'")))


def _distinct_fillers(count: int, length: int) -> list[str]:
    """`count` different subtasks of `length` characters each (all '' when length is 0, which
    the plan reader drops: then every worker gets the whole task, as in a real run). A team has
    at most 63 worker slots, and there are 63 safe single characters."""
    if length == 0:
        return [""] * count
    alphabet = _ONE_CHARACTER if length == 1 else _ALPHANUMERIC
    if count > len(alphabet) ** length:
        raise ValueError(f"no {count} different subtasks of {length} characters")
    fillers = []
    for number in range(count):
        digits = ""
        while True:  # `number` in base len(alphabet)
            number, digit = divmod(number, len(alphabet))
            digits = alphabet[digit] + digits
            if number == 0:
                break
        fillers.append(digits.rjust(length, alphabet[0]))  # fixed width: all differ
    return fillers
