"""Tools in the engine: the loop of a turn (calls, tool results fed back, a last call without
tools at the limit), the agent and workspace allowlists, bad arguments, slow, broken and huge
tools, the hard budget, and a resumed run replaying a turn without paying for it again."""

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from swarms.engine import ProviderRouter, Step, run_swarm
from swarms.engine import events as ev
from swarms.engine.checkpoints import pack_output, unpack_output
from swarms.engine.schema import validate_definition
from swarms.engine.tools import (
    AGENT_ALLOWLIST,
    WORKSPACE_ALLOWLIST,
    Toolbox,
    ToolCall,
    ToolError,
    ToolSpec,
)
from swarms.engine.types import Decision, Definition
from tests.engine.fakes import (
    MODEL,
    CallbackLog,
    RecordingProvider,
    agent,
    run,
    run_input,
)

pytestmark = pytest.mark.anyio

URL = "https://example.org/hydrogen"
TASK_WITH_URL = f"Investigate the Norwegian hydrogen economy using {URL} and report"


class Echo:
    """A tool that answers what it was asked, after `delay` seconds."""

    def __init__(self, name: str = "lookup", *, delay: float = 0.0, result: str | None = None):
        self.spec = ToolSpec(
            name,
            "Look a thing up.",
            {
                "type": "object",
                "properties": {"url": {"type": "string"}},
                "required": ["url"],
                "additionalProperties": False,
            },
        )
        self.delay = delay
        self.result = result
        self.calls: list[Mapping[str, Any]] = []

    async def invoke(self, arguments: Mapping[str, Any]) -> str:
        self.calls.append(arguments)
        await asyncio.sleep(self.delay)
        if self.result is not None:
            return self.result
        return f"URL: {arguments['url']}\nStatus: 200\nTitle: Page about hydrogen\n\nText."


class Broken(Echo):
    async def invoke(self, arguments: Mapping[str, Any]) -> str:
        raise KeyError("boom")


class Refusing(Echo):
    async def invoke(self, arguments: Mapping[str, Any]) -> str:
        self.calls.append(arguments)
        raise ToolError("HTTP 404 from the server")


def sequential(tools: list[str], **limits: int) -> Definition:
    data: dict[str, Any] = {
        "topology": "sequential",
        "agents": [agent("drafter", "drafter", tools=tools), agent("editor", "editor")],
    }
    if limits:
        data["limits"] = limits
    return Definition.from_dict(data)


def tool_events(log: CallbackLog) -> list[tuple[str, dict]]:
    return [(e.type, e.data) for e in log.events if e.type in (ev.TOOL_CALLED, ev.TOOL_RESULT)]


async def test_the_simulation_fetches_the_tasks_url_and_cites_what_it_read():
    tool = Echo()
    spec = run_input(sequential(["lookup"]), task=TASK_WITH_URL)
    result, log = await run(spec, tools=Toolbox({"lookup": tool}))

    assert result.status == "completed"
    assert tool.calls == [{"url": URL}]
    (called, called_data), (returned, result_data) = tool_events(log)
    assert (called, returned) == (ev.TOOL_CALLED, ev.TOOL_RESULT)
    assert called_data["tool"] == result_data["tool"] == "lookup"
    assert json.loads(called_data["arguments"]) == {"url": URL}
    assert called_data["call_id"] == result_data["call_id"]
    assert "error" not in result_data and result_data["duration_ms"] >= 0
    # Two calls for the drafter's turn (one asking for the tool, one answering), one for the
    # editor; one agent.started and one agent.completed per turn.
    calls = [u for u in result.usage if u.provider != "tool"]
    assert [u.agent_id for u in calls] == ["drafter", "drafter", "editor"]
    assert [(u.agent_id, u.model) for u in result.usage if u.provider == "tool"] == [
        ("drafter", "tool:lookup")
    ]
    assert [e.agent_id for e in log.of_type(ev.AGENT_STARTED)] == ["drafter", "editor"]
    completed = log.of_type(ev.AGENT_COMPLETED)
    assert "Page about hydrogen (https://example.org/hydrogen)" in completed[0].data["output"]
    drafter_cost = sum(u.cost_usd for u in result.usage if u.agent_id == "drafter")
    assert Decimal(completed[0].data["cost_usd"]) == drafter_cost
    assert result.total_cost_usd == sum(u.cost_usd for u in result.usage)
    messages = log.of_type(ev.AGENT_MESSAGE)
    assert messages[0].data["tool_calls"] == 1 and "tool_calls" not in messages[1].data
    types = log.types()
    assert (
        types.index(ev.TOOL_CALLED) < types.index(ev.TOOL_RESULT) < types.index(ev.AGENT_COMPLETED)
    )


async def test_an_agent_without_tools_or_a_task_without_url_makes_one_call_per_turn():
    tool = Echo()
    result, log = await run(run_input(sequential([])), tools=Toolbox({"lookup": tool}))
    assert result.status == "completed" and tool.calls == [] and tool_events(log) == []
    result, log = await run(run_input(sequential(["lookup"])), tools=Toolbox({"lookup": tool}))
    assert [u.agent_id for u in result.usage] == ["drafter", "editor"] and tool.calls == []


async def test_the_model_is_offered_only_tools_its_agent_lists_and_the_workspace_allows():
    provider = RecordingProvider()
    toolbox = Toolbox(
        {"lookup": Echo(), "other": Echo("other"), "banned": Echo("banned")},
        workspace_allows=lambda name: name != "banned",
    )
    await run(run_input(sequential(["lookup", "banned"])), provider, tools=toolbox)
    drafter, editor = provider.requests
    assert [spec.name for spec in drafter.tools] == ["lookup"]
    assert editor.tools == ()


async def test_calls_outside_the_allowlists_are_refused_and_the_model_told_why():
    def calls(request):
        return (
            ToolCall("c1", "other", json.dumps({"url": URL})),
            ToolCall("c2", "banned", json.dumps({"url": URL})),
            ToolCall("c3", "lookup", json.dumps({"url": URL})),
        )

    provider = RecordingProvider(tool_calls=calls)
    tools = {"lookup": Echo(), "other": Echo("other"), "banned": Echo("banned")}
    toolbox = Toolbox(tools, workspace_allows=lambda name: name != "banned")
    result, log = await run(
        run_input(sequential(["lookup", "banned"], max_tool_calls=3)), provider, tools=toolbox
    )

    assert result.status == "completed"
    results = [data for type_, data in tool_events(log) if type_ == ev.TOOL_RESULT]
    assert [r.get("rule_source") for r in results] == [AGENT_ALLOWLIST, WORKSPACE_ALLOWLIST, None]
    assert tools["other"].calls == [] and tools["banned"].calls == []
    assert tools["lookup"].calls == [{"url": URL}]
    # The answering call reads each refusal as the tool's answer to its call.
    answers = [m for m in provider.requests[1].messages if m.role == "tool"]
    assert [m.tool_call_id for m in answers] == ["c1", "c2", "c3"]
    assert "refused (agent_allowlist)" in answers[0].content
    assert "refused (workspace_allowlist)" in answers[1].content


async def test_bad_arguments_and_failing_tools_are_reported_and_the_run_goes_on():
    arguments = iter(["{not json", json.dumps({"url": 5}), json.dumps({"url": URL})])

    def calls(request):
        return (ToolCall("c", "lookup", next(arguments)),)

    tools = {"lookup": Refusing()}
    provider = RecordingProvider(tool_calls=calls)
    result, log = await run(
        run_input(sequential(["lookup"], max_tool_calls=3)), provider, tools=Toolbox(tools)
    )
    assert result.status == "completed"
    errors = [data["error"] for type_, data in tool_events(log) if type_ == ev.TOOL_RESULT]
    assert errors[0].startswith("the arguments are not valid JSON")
    assert errors[1].startswith("invalid arguments: url: 5 is not of type 'string'")
    assert errors[2] == "HTTP 404 from the server"
    assert tools["lookup"].calls == [{"url": URL}]  # bad arguments never reach the tool


async def test_a_broken_tool_does_not_break_the_run():
    provider = RecordingProvider(
        tool_calls=lambda r: (ToolCall("c", "lookup", json.dumps({"url": URL})),)
    )
    result, log = await run(
        run_input(sequential(["lookup"], max_tool_calls=1)),
        provider,
        tools=Toolbox({"lookup": Broken()}),
    )
    assert result.status == "completed"
    (data,) = [d for t, d in tool_events(log) if t == ev.TOOL_RESULT]
    assert data["error"] == "KeyError: 'boom'"


async def test_a_model_that_keeps_calling_tools_is_cut_off_at_the_limit():
    provider = RecordingProvider(
        tool_calls=lambda r: (
            ToolCall("a", "lookup", json.dumps({"url": URL})),
            ToolCall("b", "lookup", json.dumps({"url": URL + "/2"})),
        )
    )
    tool = Echo()
    result, log = await run(
        run_input(sequential(["lookup"], max_tool_calls=3)),
        provider,
        tools=Toolbox({"lookup": tool}),
    )
    assert result.status == "completed"
    drafter = [r for r in provider.requests if r.agent_id == "drafter"]
    # 2 tool calls, then 1 more within the limit of 3 (the 4th refused), then an answer.
    assert [r.tool_choice for r in drafter] == ["auto", "auto", "none"]
    assert len(tool.calls) == 3
    results = [d for t, d in tool_events(log) if t == ev.TOOL_RESULT]
    assert "max_tool_calls" in results[-1]["error"]
    assert len(log.of_type(ev.TOOL_CALLED)) == 4  # asked for, and told it was over the limit


async def test_slow_and_huge_tool_results_are_bounded():
    slow = Echo(delay=5)
    provider = RecordingProvider(
        tool_calls=lambda r: (ToolCall("c", "lookup", json.dumps({"url": URL})),)
    )
    result, log = await run(
        run_input(sequential(["lookup"], max_tool_calls=1)),
        provider,
        tools=Toolbox({"lookup": slow}, timeout_seconds=0.05),
    )
    assert result.status == "completed"
    (data,) = [d for t, d in tool_events(log) if t == ev.TOOL_RESULT]
    assert data["error"] == "no result within 0.05 s"

    huge = Echo(result="x" * 100_000)
    provider = RecordingProvider(
        tool_calls=lambda r: (ToolCall("c", "lookup", json.dumps({"url": URL})),)
    )
    result, log = await run(
        run_input(sequential(["lookup"], max_tool_calls=1)),
        provider,
        tools=Toolbox({"lookup": huge}, max_result_chars=1000),
    )
    (data,) = [d for t, d in tool_events(log) if t == ev.TOOL_RESULT]
    assert data["truncated"] is True
    (answer,) = [m for m in provider.requests[1].messages if m.role == "tool"]
    assert len(answer.content) < 1100 and "100000 characters, 1000 shown" in answer.content


async def test_tool_calls_and_results_count_against_the_hard_budget():
    huge = Echo(result="y" * 20_000)
    provider = RecordingProvider(
        tool_calls=lambda r: (ToolCall("c", "lookup", json.dumps({"url": URL})),)
    )
    budget = "0.004"
    result, _log = await run(
        run_input(sequential(["lookup"], max_tool_calls=20), budget=budget),
        provider,
        tools=Toolbox({"lookup": huge}),
    )
    assert result.total_cost_usd <= Decimal(budget)
    assert result.status in ("completed", "failed")
    # Each follow-up's prompt grew by the result, and each reservation covered it.
    sizes = [sum(len(m.content) for m in r.messages) for r in provider.requests]
    assert sizes == sorted(sizes)


class Steps(CallbackLog):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Step] = []

    async def on_step(self, step: Step) -> None:
        self.steps.append(step)


async def test_a_resumed_run_replays_a_tool_turn_without_paying_or_calling_again():
    tool = Echo()
    spec = run_input(sequential(["lookup"]), task=TASK_WITH_URL)
    first = Steps()
    router = ProviderRouter.simulated_only()
    result = await run_swarm(
        spec, router=router, on_event=first.on_event, on_step=first.on_step,
        tools=Toolbox({"lookup": tool}),
    )  # fmt: skip
    settled = {s.key: s for s in first.steps if s.status == "settled"}
    assert len(settled) == 4  # three LLM calls and the tool call
    asked = [s for s in settled.values() if s.model != "tool:lookup" and unpack_output(s.output)[1]]
    assert len(asked) == 1  # the drafter's first call, with its tool call kept

    provider = RecordingProvider()
    again = Steps()
    resumed = await run_swarm(
        spec.__class__(**{**spec.__dict__, "checkpoints": settled}),
        router=ProviderRouter(routes={}, default=provider),
        on_event=again.on_event,
        on_step=again.on_step,
        tools=Toolbox({"lookup": tool}),
    )
    assert resumed.status == "completed"
    assert provider.requests == []  # every call replayed, none paid again
    assert resumed.total_cost_usd == result.total_cost_usd
    assert len(tool.calls) == 1  # its result was replayed too: the tool did not run again
    assert again.steps == []  # nothing new to record


def test_a_settled_steps_output_keeps_the_tool_calls():
    calls = (ToolCall("c1", "lookup", '{"url": "x"}'),)
    assert unpack_output(pack_output("text", calls)) == ("text", calls)
    assert unpack_output(pack_output("plain", ())) == ("plain", ())
    assert pack_output("plain", ()) == "plain"


def test_definitions_name_tools_and_the_limit_of_calls():
    base = {"topology": "sequential", "agents": [{"id": "a", "role": "r", "model": MODEL}]}

    def errors(agent_extra=None, limits=None, known=None):
        data = {**base, "agents": [{**base["agents"][0], **(agent_extra or {})}]}
        if limits is not None:
            data["limits"] = limits
        return validate_definition(data, known_tools=known)

    assert errors({"tools": ["http_fetch"]}) == []
    assert errors({"tools": "http_fetch"}) == [
        "agents[0].tools: must be a list of at most 16 tool names"
    ]
    assert errors({"tools": ["http_fetch", "http_fetch"]}) == [
        "agents[0].tools[1]: 'http_fetch' is listed twice"
    ]
    assert errors({"tools": ["1bad name"]})[0].startswith("agents[0].tools[0]: must be a tool name")
    assert errors({"tools": ["nope"]}, known={"http_fetch"}) == [
        "agents[0].tools[0]: unknown tool 'nope'"
    ]
    assert errors(limits={"max_tool_calls": 0}) == []
    assert errors(limits={"max_tool_calls": 21}) == [
        "limits.max_tool_calls: must be an integer from 0 to 20"
    ]
    definition = Definition.from_dict({**base, "agents": [{**base["agents"][0], "tools": ["t"]}]})
    assert definition.agents[0].tools == ("t",)
    assert definition.to_dict()["agents"][0]["tools"] == ["t"]


# --- approval gates, priced tools -----------------------------------------------------------


def parallel_readers(requires_approval) -> Definition:
    return Definition.from_dict(
        {
            "topology": "parallel",
            "agents": [
                agent("reader", "worker", replicas=2, tools=["lookup"],
                      requires_approval=requires_approval),
                agent("merger", "aggregator"),
            ],
        }
    )  # fmt: skip


async def execute(spec, provider, toolbox):
    log = Steps()
    result = await run_swarm(
        spec, router=ProviderRouter(routes={}, default=provider), on_event=log.on_event,
        on_step=log.on_step, tools=toolbox,
    )  # fmt: skip
    return result, log


def once(request):
    """A model that asks for the page once, then answers from it."""
    if any(m.role == "tool" for m in request.messages):
        return ()
    return (ToolCall(f"c-{request.agent_id}", "lookup", json.dumps({"url": URL})),)


async def test_calls_that_need_approval_pause_the_run_with_nothing_in_flight():
    tool = Echo()
    provider = RecordingProvider(tool_calls=once)
    spec = run_input(parallel_readers(True))
    result, log = await execute(spec, provider, Toolbox({"lookup": tool}))

    assert result.status == ev.PAUSED
    assert sorted(r.agent_id for r in result.pending) == ["reader-1", "reader-2"]
    assert {r.tool for r in result.pending} == {"lookup"} and tool.calls == []
    assert len({r.key for r in result.pending}) == 2
    requested = log.of_type(ev.APPROVAL_REQUESTED)
    assert sorted(e.data["key"] for e in requested) == sorted(r.key for r in result.pending)
    assert not [t for t in log.types() if t in ev.TERMINAL_EVENTS]
    # Each reader's first call was made and settled; nothing else started or is held.
    assert [r.agent_id for r in provider.requests] == ["reader-1", "reader-2"]
    assert {s.status for s in log.steps} == {"reserved", "settled"}
    assert result.total_cost_usd == sum(u.cost_usd for u in result.usage) > 0

    # The operators decide; the next attempt replays what was paid and goes on.
    first, second = sorted(result.pending, key=lambda r: r.agent_id)
    decisions = {
        first.key: Decision(approved=True, arguments=json.dumps({"url": URL + "/edited"})),
        second.key: Decision(approved=False, reason="not that site"),
    }
    settled = {s.key: s for s in log.steps if s.status == "settled"}
    resumed_provider = RecordingProvider(tool_calls=provider.tool_calls)
    resumed, again = await execute(
        dataclasses.replace(spec, checkpoints=settled, approvals=decisions),
        resumed_provider,
        Toolbox({"lookup": tool}),
    )
    assert resumed.status == "completed", resumed
    assert tool.calls == [{"url": URL + "/edited"}]  # the edited call; the denied one never ran
    results = {e.agent_id: e.data for e in again.of_type(ev.TOOL_RESULT)}
    assert results["reader-2"]["rule_source"] == "operator_denial"
    assert "not that site" in results["reader-2"]["error"]
    called = {e.agent_id: e.data for e in again.of_type(ev.TOOL_CALLED)}
    assert called["reader-1"]["approval"] == "approved_with_edits"
    assert called["reader-2"]["approval"] == "denied"
    # Nothing paid twice: the readers' first calls were replayed, not asked again.
    assert sorted(r.agent_id for r in resumed_provider.requests) == [
        "merger", "reader-1", "reader-2"
    ]  # fmt: skip
    assert all(r.tool_choice == "auto" for r in resumed_provider.requests if r.agent_id != "merger")
    assert not again.of_type(ev.APPROVAL_REQUESTED)


async def test_only_the_listed_tools_wait_for_approval():
    provider = RecordingProvider(
        tool_calls=lambda r: (ToolCall("c", "lookup", json.dumps({"url": URL})),)
    )
    result, _log = await execute(
        run_input(parallel_readers(["lookup"])), provider, Toolbox({"lookup": Echo()})
    )
    assert result.status == ev.PAUSED
    result, _log = await execute(
        run_input(parallel_readers(False)), RecordingProvider(tool_calls=provider.tool_calls),
        Toolbox({"lookup": Echo()}),
    )  # fmt: skip
    assert result.status == "completed"


async def test_a_priced_tool_is_charged_under_the_budget():
    tool = Echo()
    tool.spec = dataclasses.replace(tool.spec, price_usd=Decimal("0.0015"))
    provider = RecordingProvider(
        tool_calls=lambda r: (ToolCall("c", "lookup", json.dumps({"url": URL})),)
    )
    result, log = await execute(
        run_input(sequential(["lookup"], max_tool_calls=1)), provider, Toolbox({"lookup": tool})
    )
    assert result.status == "completed"
    (charged,) = [u for u in result.usage if u.provider == "tool"]
    assert charged.cost_usd == Decimal("0.0015")
    assert result.total_cost_usd == sum(u.cost_usd for u in result.usage)

    # A price the budget cannot pay: the call is not run, the model is told.
    tool.spec = dataclasses.replace(tool.spec, price_usd=Decimal("50"))
    tool.calls.clear()
    result, log = await execute(
        run_input(sequential(["lookup"], max_tool_calls=1), budget="1"),
        RecordingProvider(tool_calls=provider.tool_calls),
        Toolbox({"lookup": tool}),
    )
    assert result.status == "completed" and tool.calls == []
    (data,) = [e.data for e in log.of_type(ev.TOOL_RESULT)]
    assert data["error"] == "the run's budget cannot pay for this call ($50)"
    assert result.total_cost_usd <= Decimal(1)


async def test_a_run_that_opted_in_pauses_for_budget_and_resumes_with_more():
    huge = Echo(result="y" * 20_000)

    def calls(request):
        return (ToolCall("c", "lookup", json.dumps({"url": URL})),)

    provider = RecordingProvider(tool_calls=calls)
    spec = dataclasses.replace(
        run_input(sequential(["lookup"], max_tool_calls=6), budget="0.004"), pause_on_budget=True
    )
    first, log = await execute(spec, provider, Toolbox({"lookup": huge}))
    assert first.status == ev.PAUSED and first.pending == ()
    assert first.budget_short_usd > 0 and first.total_cost_usd <= Decimal("0.004")
    (paused,) = log.of_type(ev.RUN_PAUSED)
    assert paused.data["reason"] == "budget" and paused.data["agent_id"] == "drafter"
    assert Decimal(paused.data["needed_usd"]) == first.budget_short_usd
    assert not [t for t in log.types() if t in ev.TERMINAL_EVENTS]
    assert {s.status for s in log.steps} <= {"reserved", "settled"}  # nothing left in flight
    made = len(provider.requests)

    settled = {s.key: s for s in log.steps if s.status == "settled"}
    again_provider = RecordingProvider(tool_calls=calls)
    resumed, _again = await execute(
        dataclasses.replace(spec, budget_usd=Decimal(1), checkpoints=settled),
        again_provider,
        Toolbox({"lookup": huge}),
    )
    assert resumed.status == "completed", resumed
    # What the first attempt paid was replayed; only the calls after the pause were made.
    assert len(again_provider.requests) == 6 + 1 + 1 - made
    assert resumed.total_cost_usd == first.total_cost_usd + sum(
        u.cost_usd for u in resumed.usage[len(first.usage) :]
    )
    assert len(huge.calls) == 6  # each tool call ran once across both attempts


async def test_without_opting_in_the_run_fails_at_its_budget():
    huge = Echo(result="y" * 20_000)
    provider = RecordingProvider(
        tool_calls=lambda r: (ToolCall("c", "lookup", json.dumps({"url": URL})),)
    )
    result, log = await execute(
        run_input(sequential(["lookup"], max_tool_calls=6), budget="0.004"),
        provider,
        Toolbox({"lookup": huge}),
    )
    assert (result.status, result.error_code) == ("failed", "budget_exceeded")
    assert not log.of_type(ev.RUN_PAUSED)


async def test_an_agents_steps_can_wait_for_approval_and_carry_the_operators_note():
    definition = Definition.from_dict(
        {
            "topology": "sequential",
            "agents": [agent("drafter", "drafter", approve_steps=True), agent("editor", "editor")],
        }
    )
    spec = run_input(definition)
    provider = RecordingProvider()
    first, _log = await execute(spec, provider, Toolbox({}))
    assert first.status == ev.PAUSED and provider.requests == []
    (request,) = first.pending
    assert (request.agent_id, request.tool) == ("drafter", "agent_step")
    assert json.loads(request.arguments)["task"].startswith("Investigate")

    noted = Decision(approved=True, arguments=json.dumps({"note": "Focus on ammonia."}))
    approved, _ = await execute(
        dataclasses.replace(spec, approvals={request.key: noted}), provider, Toolbox({})
    )
    assert approved.status == "completed"
    drafter = provider.request_for("drafter")
    assert "<operator_note>\nFocus on ammonia.\n</operator_note>" in drafter.messages[-1].content

    skipping = RecordingProvider()
    denied, again = await execute(
        dataclasses.replace(
            spec, approvals={request.key: Decision(approved=False, reason="not today")}
        ),
        skipping,
        Toolbox({}),
    )
    assert denied.status == "completed"
    assert [r.agent_id for r in skipping.requests] == ["editor"]  # the drafter was not called
    (done, _editor) = again.of_type(ev.AGENT_COMPLETED)
    assert done.agent_id == "drafter" and "an operator denied it: not today" in done.data["output"]


async def test_the_simulation_cites_only_the_tool_calls_that_brought_something_back():
    spec = run_input(sequential(["lookup"]), task=TASK_WITH_URL)
    result, log = await run(spec, tools=Toolbox({"lookup": Refusing()}))
    assert result.status == "completed"
    drafted = log.of_type(ev.AGENT_COMPLETED)[0].data["output"]
    assert "Sources consulted" not in drafted  # the only call failed: nothing to cite
    assert "HTTP 404" not in result.output
