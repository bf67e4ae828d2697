"""How many output tokens a call may be given: what the budget can pay for it after keeping aside
what the calls not started yet need at the least (their floors, from the estimate's dry run).

Keeping that aside from earlier calls, whose max_tokens is clamped instead, is what makes a run
the budget admitted complete. For it the run tells the allowance how many calls of each agent
started, and per call the most bytes its output may have (its grant, then its real size), which
bounds the later prompts that quote it.
"""

from collections import Counter, defaultdict
from decimal import Decimal

from swarms.engine.budget import cost_usd
from swarms.engine.estimate import OUTPUT_BYTES_PER_TOKEN, call_floors, floor_tokens
from swarms.engine.types import AgentSpec, Price, RunInput


class OutputAllowance:
    """The output allowance of one run's calls. Used from the run's event loop only."""

    def __init__(self, spec: RunInput) -> None:
        self.spec = spec
        self._calls_started: Counter[str] = Counter()
        self._output_bytes: dict[str, dict[str, int]] = defaultdict(dict)

    def floor(self, agent: AgentSpec) -> int:
        """The fewest output tokens a call of `agent` is started with."""
        return floor_tokens(agent, self.spec.calls.min_output_tokens)

    def call_started(self, agent_id: str) -> None:
        self._calls_started[agent_id] += 1

    def bound_output(self, agent_id: str, key: str, size: int) -> None:
        """The call `key` of `agent_id` outputs at most `size` UTF-8 bytes."""
        self._output_bytes[agent_id][key] = size

    def kept_aside(self, key: str, agent_id: str, output_bytes: int) -> Decimal:
        """The least the calls not started yet need, with the call `key` of `agent_id` allowed
        an output of `output_bytes`: their floors, with prompts quoting every output at its
        bound."""
        floors = self.spec.calls.min_output_tokens

        def bound(agent: AgentSpec) -> int:
            known = self._output_bytes.get(agent.id, {})
            if agent.id == agent_id:
                known = {**known, key: output_bytes}
            return max([OUTPUT_BYTES_PER_TOKEN * floor_tokens(agent, floors), *known.values()])

        skip = Counter(self._calls_started)
        kept = Decimal(0)
        for planned_agent, least in call_floors(
            self.spec.definition, self.spec.task, self.spec.prices, floors, bound
        ):
            if skip[planned_agent] > 0:
                skip[planned_agent] -= 1
            else:
                kept += least
        return kept

    def affordable(
        self, remaining: Decimal, agent: AgentSpec, key: str, prompt_tokens: int, price: Price
    ) -> int:
        """The most output tokens, up to max_tokens, the call `key` of `agent` can be given out
        of `remaining` beside what the calls after it need; -1 when not even the floor fits.
        What later calls need grows linearly with this call's output (prompts quote it), so two
        evaluations give the answer, which a third checks."""
        floor = self.floor(agent)

        def spare(tokens: int) -> Decimal:
            kept = self.kept_aside(key, agent.id, OUTPUT_BYTES_PER_TOKEN * tokens)
            return remaining - kept - cost_usd(prompt_tokens, tokens, price)

        at_most = spare(agent.max_tokens)
        if at_most >= 0:  # the usual case: nothing to clamp, one evaluation
            return agent.max_tokens
        at_floor = spare(floor)
        if at_floor < 0 or agent.max_tokens == floor:
            return -1
        # spare() falls linearly from at_floor >= 0 to at_most < 0: where it crosses zero.
        tokens = floor + int(at_floor * (agent.max_tokens - floor) / (at_floor - at_most))
        while tokens > floor and spare(tokens) < 0:  # Decimal rounding: at most a step or two
            tokens -= 1
        return tokens
