"""The tool-calling protocol toward an OpenAI-compatible endpoint, through the real `openai` SDK
and a real chat-completions HTTP server (tests/llm_server.py): tools offered as functions, the
model's tool calls read back, the results sent as `tool` messages answering each call, and the
turn's last call made with `tool_choice: "none"`."""

import json

import pytest

from swarms.engine import events as ev
from swarms.engine.providers import OpenAIProvider
from swarms.engine.tools import Toolbox
from tests.engine.fakes import run, run_input
from tests.engine.test_tools import URL, Echo, sequential
from tests.llm_server import LLMServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def llm():
    with LLMServer() as server:
        yield server


async def test_a_tool_turn_over_the_wire(llm):
    llm.behaviour.tool_call = {"name": "lookup", "arguments": {"url": URL}}
    provider = OpenAIProvider(base_url=llm.base_url, api_key="sk-test", name="openai")
    tool = Echo()
    try:
        result, log = await run(
            run_input(sequential(["lookup"])), provider, tools=Toolbox({"lookup": tool})
        )
    finally:
        await provider.aclose()

    assert result.status == "completed"
    assert tool.calls == [{"url": URL}]
    asking, answering, editor = llm.requests
    assert asking.tools == ["lookup"] and asking.tool_choice == "auto"
    assert editor.tools == [] and editor.tool_choice is None
    # The follow-up carries the model's call and the tool's answer to it, by id.
    assistant, tool_message = answering.messages[-2:]
    (call,) = assistant["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"url": URL}
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == call["id"]
    assert "Title: Page about hydrogen" in tool_message["content"]
    # Billed as the server reported, call by call.
    llm_usage = [u for u in result.usage if u.provider != "tool"]
    assert [u.tokens_out for u in llm_usage] == [r.completion_tokens for r in llm.requests]
    (tool_usage,) = [u for u in result.usage if u.provider == "tool"]
    assert (tool_usage.model, tool_usage.cost_usd) == ("tool:lookup", 0)
    called = log.of_type(ev.TOOL_CALLED)
    assert [e.data["call_id"] for e in called] == [call["id"]]


async def test_the_last_call_of_a_turn_forbids_tools(llm):
    llm.behaviour.tool_call = {"name": "lookup", "arguments": {"url": URL}}
    provider = OpenAIProvider(base_url=llm.base_url, api_key="sk-test", name="openai")
    try:
        result, _log = await run(
            run_input(sequential(["lookup"], max_tool_calls=0)),
            provider,
            tools=Toolbox({"lookup": Echo()}),
        )
    finally:
        await provider.aclose()
    assert result.status == "completed"
    drafter, _editor = llm.requests
    assert drafter.tools == ["lookup"] and drafter.tool_choice == "none"
