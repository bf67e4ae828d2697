"""The four ways a team works on a task, written against `Steps` so they only say who talks to
whom and with what; budget, concurrency, events and cancellation live in the runner."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from swarms.engine import prompts
from swarms.engine.chat import Message
from swarms.engine.plan import parse_plan
from swarms.engine.prompts import Contribution
from swarms.engine.schema import MAX_AGENTS_EXPANDED
from swarms.engine.types import AgentSpec, Definition

DEBATE_SIDES = ("for", "against")


@dataclass(frozen=True)
class Job:
    """One LLM call to make: who, with which messages, and how events should describe it."""

    agent: AgentSpec
    messages: tuple[Message, ...]
    summary: str  # what the agent works on, for `agent.started`
    label: str = ""  # heading detail for partial output ("plan", a subtask, "round 2")


class Steps(Protocol):
    """What a topology may ask of the runner."""

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


async def run_topology(steps: Steps, definition: Definition, task: str) -> str:
    """Run the definition's topology and return the final output."""
    topology = {
        "hierarchical": _hierarchical,
        "sequential": _sequential,
        "parallel": _parallel,
        "debate": _debate,
    }[definition.topology]
    return await topology(steps, definition, task)


def worker_slots(definition: Definition) -> int:
    """Workers a hierarchical run can use: its worker replicas, less what max_steps leaves after
    the plan and the synthesis."""
    return min(len(definition.role("worker")), definition.limits.max_steps - 2)


def synthesiser(definition: Definition) -> AgentSpec:
    """Who writes a hierarchical run's answer: the writer, or the manager when there is none."""
    return (definition.role("writer") or definition.role("manager"))[0]


def assign_subtasks(
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


async def _hierarchical(steps: Steps, definition: Definition, task: str) -> str:
    shared = definition.instructions
    manager = definition.role("manager")[0]
    workers = definition.role("worker")[: worker_slots(definition)]
    writer = synthesiser(definition)
    steps.expect_calls(len(workers) + 2)

    plan_text = await steps.call(
        Job(manager, prompts.plan_messages(shared, manager, task, len(workers)), task, "plan")
    )
    subtasks = parse_plan(plan_text, max_items=MAX_AGENTS_EXPANDED)
    pairs, note = assign_subtasks(subtasks, workers, task)
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
    return await steps.call(Job(writer, messages, f"synthesise {len(inputs)} inputs", "synthesis"))


async def _sequential(steps: Steps, definition: Definition, task: str) -> str:
    agents = definition.expanded_agents()
    steps.expect_calls(len(agents))
    previous: Contribution | None = None
    for agent in agents:
        messages = prompts.relay_messages(definition.instructions, agent, task, previous)
        summary = task if previous is None else f"continue from {previous.agent_id}"
        previous = Contribution(agent.id, await steps.call(Job(agent, messages, summary)))
    assert previous is not None  # a valid definition has at least one agent
    return previous.text


async def _parallel(steps: Steps, definition: Definition, task: str) -> str:
    shared = definition.instructions
    workers = definition.role("worker")
    aggregator = definition.role("aggregator")[0]
    steps.expect_calls(len(workers) + 1)
    outputs = await steps.fan_out(
        [Job(worker, prompts.work_messages(shared, worker, task, None), task) for worker in workers]
    )
    steps.check()
    inputs = [
        Contribution(worker.id, text)
        for worker, text in zip(workers, outputs, strict=True)
        if text is not None
    ]
    messages = prompts.synthesis_messages(shared, aggregator, task, inputs)
    return await steps.call(Job(aggregator, messages, f"merge {len(inputs)} inputs", "merge"))


async def _debate(steps: Steps, definition: Definition, task: str) -> str:
    shared = definition.instructions
    debaters = definition.role("debater")
    judge = definition.role("judge")[0]
    rounds = definition.limits.rounds
    steps.expect_calls(rounds * len(debaters) + 1)
    transcript: list[Contribution] = []
    # Turns, not concurrency: each debater answers what was said before it.
    for round_number in range(1, rounds + 1):
        for index, debater in enumerate(debaters):
            side = DEBATE_SIDES[index % len(DEBATE_SIDES)]
            messages = prompts.argue_messages(
                shared, debater, task, transcript, round_number=round_number, rounds=rounds,
                side=side,
            )  # fmt: skip
            summary = f"round {round_number} of {rounds}, arguing {side}"
            text = await steps.call(Job(debater, messages, summary, f"round {round_number}"))
            transcript.append(Contribution(debater.id, text, str(round_number)))
    messages = prompts.judge_messages(shared, judge, task, transcript)
    return await steps.call(Job(judge, messages, f"judge {len(transcript)} turns", "verdict"))
