"""The ways a team works on a task: one class per topology, all of them in `TOPOLOGIES` by name.

A topology says which roles it has, what a team needs to run it (checked with every definition),
and who talks to whom with what (`run`, written against `Steps`). Budget, concurrency, events
and cancellation are the runner's, and the cost estimate is a dry run of the same `run`
(estimate.py), so adding a topology is one class here, listed in `TOPOLOGIES`, plus a template
YAML (templates_app/builtin/) that names it.
"""

# Definition and AgentSpec are only annotations here: types.py validates definitions against
# this module, so importing it at run time would be a cycle.
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from swarms.engine import prompts
from swarms.engine.bounds import MAX_AGENTS_EXPANDED
from swarms.engine.chat import Message
from swarms.engine.plan import parse_plan
from swarms.engine.prompts import Contribution

if TYPE_CHECKING:
    from swarms.engine.types import AgentSpec, Definition


@dataclass(frozen=True)
class Job:
    """One LLM call to make: who, with which messages, and how events should describe it."""

    agent: AgentSpec
    messages: tuple[Message, ...]
    summary: str  # what the agent works on, for `agent.started`
    label: str = ""  # heading detail for partial output ("plan", a subtask, "round 2")
    # Above 0, the answer is read as a plan of at most this many subtasks: a dry run then
    # answers with that many, so the estimate counts a call for every slot.
    plan_items: int = 0


class Steps(Protocol):
    """What a topology may ask of the runner (or of the estimate's dry run)."""

    def expect_calls(self, count: int) -> None:
        """How many calls the run will make in total (for progress); may be revised down."""

    def delegate(self, manager: AgentSpec, target: AgentSpec, subtask: str, note: str) -> None:
        """Record that the manager handed `subtask` to `target`."""

    def check(self) -> None:
        """Raise if the run has been halted (budget, provider error)."""

    async def call(self, job: Job) -> str:
        """Make one call and return its text; raises if the run is halted."""

    async def fan_out(self, jobs: Sequence[Job]) -> list[str | None]:
        """Make independent calls concurrently; None for a call that was not made."""


class Topology(ABC):
    """One way a team works. `run` may await nothing but its steps: the estimate drives it
    without an event loop."""

    name: ClassVar[str]
    # The roles it schedules, as errors list them; None: any role, run in listed order.
    roles: ClassVar[tuple[str, ...] | None]
    # Roles whose agents may be replicated into `<id>-1`, `<id>-2`, ...
    replicable_roles: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def team_errors(self, count: Mapping[str, int], limits: Mapping[str, int]) -> list[str]:
        """What keeps a team with `count` agents per role (replicas counted) from running
        under `limits` (max_steps, rounds, ...): the roles it needs, and steps enough."""

    @abstractmethod
    async def run(self, steps: Steps, definition: Definition, task: str) -> str:
        """Work on `task` through `steps` and return the final output."""


class Hierarchical(Topology):
    """A manager plans one subtask per worker, the workers report in parallel, and the writer
    (or the manager, when there is none) synthesises their reports."""

    name = "hierarchical"
    roles = ("manager", "worker", "writer")
    replicable_roles = ("worker",)

    def team_errors(self, count: Mapping[str, int], limits: Mapping[str, int]) -> list[str]:
        errors = []
        if count.get("manager", 0) != 1:
            errors.append("agents: hierarchical needs exactly one manager")
        if count.get("worker", 0) < 1:
            errors.append("agents: hierarchical needs at least one worker")
        if count.get("writer", 0) > 1:
            errors.append("agents: hierarchical allows at most one writer")
        if limits["max_steps"] < 3:
            errors.append("limits.max_steps: hierarchical needs at least 3 (plan, work, synthesis)")
        return errors

    async def run(self, steps: Steps, definition: Definition, task: str) -> str:
        shared = definition.instructions
        manager = definition.role("manager")[0]
        # Worker replicas, less what max_steps leaves after the plan and the synthesis.
        workers = definition.role("worker")[: definition.limits.max_steps - 2]
        writer = (definition.role("writer") or definition.role("manager"))[0]
        steps.expect_calls(len(workers) + 2)

        plan_messages = prompts.plan_messages(shared, manager, task, len(workers))
        plan_text = await steps.call(
            Job(manager, plan_messages, task, "plan", plan_items=len(workers))
        )
        subtasks = parse_plan(plan_text, max_items=MAX_AGENTS_EXPANDED)
        pairs, note = _assign_subtasks(subtasks, workers, task)
        steps.expect_calls(len(pairs) + 2)
        for number, (worker, subtask) in enumerate(pairs, start=1):
            steps.delegate(manager, worker, subtask, note if number == len(pairs) else "")

        outputs = await steps.fan_out(
            [
                Job(worker, prompts.work_messages(shared, worker, task, subtask), subtask, subtask)
                for worker, subtask in pairs
            ]
        )
        steps.check()
        inputs = [
            Contribution(worker.id, text, subtask)
            for (worker, subtask), text in zip(pairs, outputs, strict=True)
            if text is not None
        ]
        messages = prompts.synthesis_messages(shared, writer, task, inputs)
        summary = f"synthesise {len(inputs)} inputs"
        return await steps.call(Job(writer, messages, summary, "synthesis"))


def _assign_subtasks(
    subtasks: Sequence[str], workers: Sequence[AgentSpec], task: str
) -> tuple[list[tuple[AgentSpec, str]], str]:
    """Pair subtasks with workers in order, one each; returns the pairs and a note about what
    was dropped or substituted ('' when the plan fit)."""
    if not subtasks:
        note = "the manager's plan had no usable subtasks; every worker gets the whole task"
        return [(worker, task) for worker in workers], note
    pairs = list(zip(workers, subtasks, strict=False))
    dropped = len(subtasks) - len(pairs)
    note = ""
    if dropped:
        note = (
            f"{dropped} more subtask(s) dropped: the run has {len(workers)} worker slot(s) "
            "(worker replicas within limits.max_steps)"
        )
    return pairs, note


class Sequential(Topology):
    """A relay: each agent, in listed order, improves on the previous one's output."""

    name = "sequential"
    roles = None

    def team_errors(self, count: Mapping[str, int], limits: Mapping[str, int]) -> list[str]:
        needed = sum(count.values())
        if limits["max_steps"] < needed:
            return [f"limits.max_steps: sequential needs at least {needed} (one per agent)"]
        return []

    async def run(self, steps: Steps, definition: Definition, task: str) -> str:
        agents = definition.expanded_agents()
        steps.expect_calls(len(agents))
        previous: Contribution | None = None
        for agent in agents:
            messages = prompts.relay_messages(definition.instructions, agent, task, previous)
            summary = task if previous is None else f"continue from {previous.agent_id}"
            previous = Contribution(agent.id, await steps.call(Job(agent, messages, summary)))
        assert previous is not None  # a valid definition has at least one agent
        return previous.text


class Parallel(Topology):
    """Every worker takes the whole task at once; the aggregator merges their reports."""

    name = "parallel"
    roles = ("aggregator", "worker")
    replicable_roles = ("worker",)

    def team_errors(self, count: Mapping[str, int], limits: Mapping[str, int]) -> list[str]:
        errors = []
        if count.get("worker", 0) < 1:
            errors.append("agents: parallel needs at least one worker")
        if count.get("aggregator", 0) != 1:
            errors.append("agents: parallel needs exactly one aggregator")
        needed = count.get("worker", 0) + 1
        if limits["max_steps"] < needed:
            errors.append(
                f"limits.max_steps: parallel needs at least {needed} "
                "(one per worker, plus the aggregator)"
            )
        return errors

    async def run(self, steps: Steps, definition: Definition, task: str) -> str:
        shared = definition.instructions
        workers = definition.role("worker")
        aggregator = definition.role("aggregator")[0]
        steps.expect_calls(len(workers) + 1)
        outputs = await steps.fan_out(
            [
                Job(worker, prompts.work_messages(shared, worker, task, None), task)
                for worker in workers
            ]
        )
        steps.check()
        inputs = [
            Contribution(worker.id, text)
            for worker, text in zip(workers, outputs, strict=True)
            if text is not None
        ]
        messages = prompts.synthesis_messages(shared, aggregator, task, inputs)
        return await steps.call(Job(aggregator, messages, f"merge {len(inputs)} inputs", "merge"))


class Debate(Topology):
    """Debaters take turns for and against over `limits.rounds`; the judge gives the verdict."""

    name = "debate"
    roles = ("debater", "judge")
    replicable_roles = ("debater",)
    SIDES = ("for", "against")

    def team_errors(self, count: Mapping[str, int], limits: Mapping[str, int]) -> list[str]:
        errors = []
        debaters = count.get("debater", 0)
        if debaters < 2:
            errors.append("agents: debate needs at least two debaters")
        if count.get("judge", 0) != 1:
            errors.append("agents: debate needs exactly one judge")
        needed = debaters * limits["rounds"] + 1
        if limits["max_steps"] < needed:
            errors.append(
                f"limits.max_steps: debate needs at least {needed} (rounds x debaters + the judge)"
            )
        return errors

    async def run(self, steps: Steps, definition: Definition, task: str) -> str:
        shared = definition.instructions
        debaters = definition.role("debater")
        judge = definition.role("judge")[0]
        rounds = definition.limits.rounds
        steps.expect_calls(rounds * len(debaters) + 1)
        transcript: list[Contribution] = []
        # Turns, not concurrency: each debater answers what was said before it.
        for round_number in range(1, rounds + 1):
            for index, debater in enumerate(debaters):
                side = self.SIDES[index % len(self.SIDES)]
                messages = prompts.argue_messages(
                    shared, debater, task, transcript, round_number=round_number, rounds=rounds,
                    side=side,
                )  # fmt: skip
                summary = f"round {round_number} of {rounds}, arguing {side}"
                text = await steps.call(Job(debater, messages, summary, f"round {round_number}"))
                transcript.append(Contribution(debater.id, text, str(round_number)))
        messages = prompts.judge_messages(shared, judge, task, transcript)
        return await steps.call(Job(judge, messages, f"judge {len(transcript)} turns", "verdict"))


# Every topology a definition may name. The order is the one errors list replicable roles in.
TOPOLOGIES: dict[str, Topology] = {
    topology.name: topology for topology in (Hierarchical(), Sequential(), Parallel(), Debate())
}
TOPOLOGY_NAMES = tuple(sorted(TOPOLOGIES))
# Roles that may have replicas in some topology (a role the others do not know is refused there).
REPLICABLE_ROLES = tuple(
    dict.fromkeys(role for topology in TOPOLOGIES.values() for role in topology.replicable_roles)
)
