"""Each topology: who is called in which order, and what each agent is given."""

import asyncio
import json

import pytest

from swarms.engine import prompts
from swarms.engine.estimate import estimate_cost, minimum_cost, planned_calls
from swarms.engine.prompts import Contribution, read_prompt
from swarms.engine.providers import CompletionRequest
from swarms.engine.schema import validate_definition
from swarms.engine.topologies import TOPOLOGIES, Job, Topology
from swarms.engine.types import Definition

from .fakes import (
    PRICES,
    TASK,
    RecordingProvider,
    agent,
    definition_dict,
    make_definition,
    run,
    run_input,
    user_text,
)

pytestmark = pytest.mark.anyio


def scripted(plan: str | None = None):
    """Replies `OUT(<agent>#<n>)` (n: the agent's call count); a manager's plan call gets `plan`."""
    calls: dict[str, int] = {}

    def reply(request: CompletionRequest) -> str:
        if plan is not None and read_prompt(request.messages).step == "plan":
            return plan
        calls[request.agent_id] = calls.get(request.agent_id, 0) + 1
        return f"OUT({request.agent_id}#{calls[request.agent_id]})"

    return reply


# --- hierarchical ---------------------------------------------------------------------------------


async def test_hierarchical_plan_then_workers_then_writer():
    provider = RecordingProvider(reply=scripted('["Costs", "Policy", "Exports"]'))
    result, log = await run(run_input(make_definition("hierarchical")), provider)

    ids = provider.agent_ids()
    assert ids[0] == "manager"
    assert sorted(ids[1:4]) == ["researcher-1", "researcher-2", "researcher-3"]
    assert ids[4:] == ["writer"]
    assert "at most 3 independent subtasks" in user_text(provider.requests[0])

    subtasks = {
        worker: read_prompt(provider.request_for(worker).messages).subtask
        for worker in ("researcher-1", "researcher-2", "researcher-3")
    }
    assert subtasks == {
        "researcher-1": "Costs",
        "researcher-2": "Policy",
        "researcher-3": "Exports",
    }

    writer_prompt = read_prompt(provider.request_for("writer").messages)
    assert writer_prompt.step == "synthesise"
    assert [(i.agent_id, i.text, i.label) for i in writer_prompt.inputs] == [
        ("researcher-1", "OUT(researcher-1#1)", "Costs"),
        ("researcher-2", "OUT(researcher-2#1)", "Policy"),
        ("researcher-3", "OUT(researcher-3#1)", "Exports"),
    ]
    assert result.status == "completed"
    assert result.output == "OUT(writer#1)"

    delegated = log.of_type("agent.delegated")
    assert [(e.agent_id, e.data) for e in delegated] == [
        ("manager", {"target": "researcher-1", "summary": "Costs"}),
        ("manager", {"target": "researcher-2", "summary": "Policy"}),
        ("manager", {"target": "researcher-3", "summary": "Exports"}),
    ]


async def test_hierarchical_without_writer_has_the_manager_synthesise():
    data = definition_dict("hierarchical")
    data["agents"] = data["agents"][:2]
    provider = RecordingProvider(reply=scripted('["Costs", "Policy", "Exports"]'))
    result, _ = await run(
        run_input(make_definition("hierarchical", agents=data["agents"])), provider
    )
    assert provider.agent_ids()[0] == provider.agent_ids()[-1] == "manager"
    assert read_prompt(provider.requests[-1].messages).step == "synthesise"
    assert result.output == "OUT(manager#1)"


async def test_hierarchical_drops_subtasks_beyond_the_workers_with_a_note():
    plan = json.dumps({"subtasks": ["A", "B", "C", "D", "E"]})
    provider = RecordingProvider(reply=scripted(plan))
    result, log = await run(run_input(make_definition("hierarchical")), provider)
    delegated = log.of_type("agent.delegated")
    assert [e.data["summary"] for e in delegated] == ["A", "B", "C"]
    assert "note" not in delegated[0].data
    assert delegated[-1].data["note"].startswith("2 more subtask(s) dropped")
    assert len(provider.requests) == 5
    assert result.status == "completed"


async def test_hierarchical_fewer_subtasks_uses_fewer_workers():
    provider = RecordingProvider(reply=scripted('["Only one thing"]'))
    result, log = await run(run_input(make_definition("hierarchical")), provider)
    assert provider.agent_ids() == ["manager", "researcher-1", "writer"]
    assert log.of_type("run.progress")[-1].data["progress"] == 1.0
    assert result.status == "completed"


async def test_hierarchical_max_steps_caps_the_workers():
    provider = RecordingProvider(reply=scripted('["A", "B", "C"]'))
    definition = make_definition("hierarchical", limits={"max_steps": 4})
    result, _ = await run(run_input(definition), provider)
    assert provider.agent_ids() == ["manager", "researcher-1", "researcher-2", "writer"]
    assert "at most 2 independent subtasks" in user_text(provider.requests[0])
    assert result.status == "completed"


async def test_hierarchical_unusable_plan_gives_every_worker_the_whole_task():
    provider = RecordingProvider(reply=scripted("I would rather not make a plan."))
    result, log = await run(run_input(make_definition("hierarchical")), provider)
    for worker in ("researcher-1", "researcher-2", "researcher-3"):
        assert read_prompt(provider.request_for(worker).messages).subtask == TASK
    delegated = log.of_type("agent.delegated")
    assert len(delegated) == 3
    assert "no usable subtasks" in delegated[-1].data["note"]
    assert result.status == "completed"


async def test_shared_and_agent_instructions_reach_the_system_prompt():
    data = definition_dict("hierarchical", instructions="Cite sources.")
    data["agents"][1]["instructions"] = "Dig deep."
    provider = RecordingProvider(reply=scripted('["A"]'))
    await run(
        run_input(
            make_definition("hierarchical", **{k: data[k] for k in ("instructions", "agents")})
        ),
        provider,
    )
    system = provider.request_for("researcher-1").messages[0]
    assert system.role == "system"
    assert system.content.startswith("Cite sources.")
    assert "Dig deep." in system.content
    assert provider.request_for("researcher-1").max_tokens == 1024
    assert provider.request_for("writer").max_tokens == 2048


# --- sequential -----------------------------------------------------------------------------------


async def test_sequential_passes_each_output_to_the_next_agent():
    provider = RecordingProvider(reply=scripted())
    result, _ = await run(run_input(make_definition("sequential")), provider)
    assert provider.agent_ids() == ["drafter", "editor", "critic"]
    first, second, third = (read_prompt(r.messages) for r in provider.requests)
    assert first.previous is None and first.task == TASK
    assert (second.previous.agent_id, second.previous.text) == ("drafter", "OUT(drafter#1)")
    assert (third.previous.agent_id, third.previous.text) == ("editor", "OUT(editor#1)")
    assert result.output == "OUT(critic#1)"


# --- parallel -------------------------------------------------------------------------------------


async def test_parallel_gives_every_worker_the_task_and_the_aggregator_all_outputs():
    provider = RecordingProvider(reply=scripted())
    result, _ = await run(run_input(make_definition("parallel")), provider)
    ids = provider.agent_ids()
    assert sorted(ids[:3]) == ["analyst-1", "analyst-2", "analyst-3"]
    assert ids[3] == "merger"
    for request in provider.requests[:3]:
        facts = read_prompt(request.messages)
        assert (facts.step, facts.task, facts.subtask) == ("work", TASK, "")
    merged = read_prompt(provider.request_for("merger").messages)
    assert [(i.agent_id, i.text) for i in merged.inputs] == [
        ("analyst-1", "OUT(analyst-1#1)"),
        ("analyst-2", "OUT(analyst-2#1)"),
        ("analyst-3", "OUT(analyst-3#1)"),
    ]
    assert result.output == "OUT(merger#1)"


# --- debate ---------------------------------------------------------------------------------------


async def test_debate_alternates_turns_for_the_rounds_then_the_judge_sees_everything():
    provider = RecordingProvider(reply=scripted(), latency=0.01)
    definition = make_definition("debate", limits={"rounds": 3, "max_parallel": 4})
    result, _ = await run(run_input(definition), provider)
    assert provider.agent_ids() == ["pro", "con", "pro", "con", "pro", "con", "judge"]
    assert provider.max_in_flight == 1  # turns, never concurrent

    turns = [read_prompt(r.messages) for r in provider.requests[:-1]]
    assert [(t.round_number, t.side) for t in turns] == [
        (1, "for"), (1, "against"), (2, "for"), (2, "against"), (3, "for"), (3, "against"),
    ]  # fmt: skip
    assert turns[0].inputs == ()
    assert [i.text for i in turns[3].inputs] == ["OUT(pro#1)", "OUT(con#1)", "OUT(pro#2)"]

    judge = read_prompt(provider.request_for("judge").messages)
    assert judge.step == "judge"
    assert [(i.agent_id, i.label, i.text) for i in judge.inputs] == [
        ("pro", "1", "OUT(pro#1)"), ("con", "1", "OUT(con#1)"),
        ("pro", "2", "OUT(pro#2)"), ("con", "2", "OUT(con#2)"),
        ("pro", "3", "OUT(pro#3)"), ("con", "3", "OUT(con#3)"),
    ]  # fmt: skip
    assert result.output == "OUT(judge#1)"


async def test_debate_with_replicated_debaters():
    definition = make_definition(
        "debate", agents=[agent("speaker", "debater", replicas=3), agent("judge", "judge")],
        limits={"rounds": 1},
    )  # fmt: skip
    provider = RecordingProvider(reply=scripted())
    await run(run_input(definition), provider)
    assert provider.agent_ids() == ["speaker-1", "speaker-2", "speaker-3", "judge"]


# --- end to end on the simulation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("topology", "calls"),
    [("hierarchical", 5), ("sequential", 3), ("parallel", 4), ("debate", 5)],
)
async def test_every_topology_runs_end_to_end_on_the_simulation(topology, calls):
    result, log = await run(run_input(make_definition(topology)))
    assert result.status == "completed"
    assert result.error_code is None
    assert result.output.startswith("## ")
    assert len(result.usage) == calls
    assert {u.provider for u in result.usage} == {"simulated"}
    assert log.events[0].data == {
        "agents_total": len(make_definition(topology).expanded_agents()),
        "topology": topology,
        "simulated": True,
    }
    assert log.events[-1].type == "run.completed"
    assert log.events[-1].data["output"] == result.output


async def test_simulated_runs_are_deterministic():
    first, _ = await run(run_input(make_definition("hierarchical")))
    second, _ = await run(run_input(make_definition("hierarchical")))
    assert first == second


# --- the registry: a topology is one class --------------------------------------------------------


class Review(Topology):
    """A test topology: every worker reads the task in turn, then the editor answers."""

    name = "review"
    roles = ("editor", "worker")
    replicable_roles = ("worker",)

    def team_errors(self, count, limits):
        if count.get("editor", 0) != 1:
            return ["agents: review needs exactly one editor"]
        return []

    async def run(self, steps, definition, task):
        reviewers = definition.role("worker")
        editor = definition.role("editor")[0]
        steps.expect_calls(len(reviewers) + 1)
        inputs = []
        for reviewer in reviewers:
            messages = prompts.work_messages("", reviewer, task, None)
            inputs.append(
                Contribution(reviewer.id, await steps.call(Job(reviewer, messages, task)))
            )
        messages = prompts.synthesis_messages("", editor, task, inputs)
        return await steps.call(Job(editor, messages, "edit", "edit"))


REVIEW = {
    "topology": "review",
    "agents": [agent("r", "worker", replicas=2), agent("editor", "editor", max_tokens=300)],
}


@pytest.fixture
def review_registered(monkeypatch):
    monkeypatch.setitem(TOPOLOGIES, Review.name, Review())


@pytest.mark.usefixtures("review_registered")
async def test_a_topology_class_in_the_registry_is_validated_run_and_estimated():
    assert validate_definition({**REVIEW, "agents": REVIEW["agents"][:1]}) == [
        "agents: review needs exactly one editor"
    ]
    assert validate_definition({**REVIEW, "agents": [agent("x", "manager"), *REVIEW["agents"]]})[
        0
    ].startswith("agents[0].role: must be one of editor, worker for review")
    definition = Definition.from_dict(REVIEW)
    provider = RecordingProvider()
    result, log = await run(run_input(definition), provider)
    assert result.status == "completed"
    assert provider.agent_ids() == ["r-1", "r-2", "editor"]
    assert log.events[0].data["topology"] == "review"
    planned = planned_calls(definition, TASK, output_chars=lambda a: 10, subtask_chars=0)
    assert [(a.id, m) for a, m in planned][:2] == [
        (request.agent_id, request.messages) for request in provider.requests[:2]
    ]
    _, worst = estimate_cost(definition, TASK, PRICES)
    assert 0 < result.total_cost_usd <= worst
    assert minimum_cost(definition, TASK, PRICES, 64) > 0


def test_an_unknown_topology_is_refused_naming_those_there_are():
    assert validate_definition({**REVIEW}) == [
        "topology: must be one of debate, hierarchical, parallel, sequential"
    ]


def test_a_topology_that_awaits_anything_but_its_steps_cannot_be_estimated(monkeypatch):
    class Sleepy(Review):
        async def run(self, steps, definition, task):
            await asyncio.sleep(0)
            return ""

    monkeypatch.setitem(TOPOLOGIES, "review", Sleepy())
    with pytest.raises(RuntimeError, match="awaited something besides its steps"):
        planned_calls(Definition.from_dict(REVIEW), TASK, output_chars=len, subtask_chars=0)


def test_the_estimate_plans_a_distinct_subtask_for_every_worker_slot_even_for_a_tiny_task():
    workers = [agent(f"w{n}", "worker", replicas=r) for n, r in enumerate((16, 16, 16, 15))]
    definition = make_definition(
        "hierarchical", agents=[agent("m", "manager"), *workers], limits={"max_steps": 500}
    )
    planned = planned_calls(definition, "x", output_chars=lambda a: 1, subtask_chars=1)
    subtasks = [read_prompt(messages).subtask for a, messages in planned if a.role == "worker"]
    assert len(subtasks) == len(set(subtasks)) == 63
    assert {len(subtask) for subtask in subtasks} == {1}
