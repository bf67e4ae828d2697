"""MCP servers as tool sources, against a real MCP server (tests/mcp_server.py: the official SDK
over streamable HTTP on loopback): discovery, calls through the engine's toolbox, and servers
that refuse us, fail, answer garbage, answer too much or never answer."""

import asyncio

import pytest

from swarms.engine.tools import Toolbox, ToolCall
from tests.mcp_server import TOKEN, McpTestServer
from tools.mcp import McpEndpoint, McpTool, McpUnavailable, mcp_list_tools, tool_name

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def mcp():
    with McpTestServer() as server:
        yield server


@pytest.fixture
def allowed(settings):
    settings.SVERM_MCP_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.SVERM_TOOL_TIMEOUT_SECONDS = 5
    return settings


def listed(mcp, headers=AUTH, url=None, timeout=5.0):
    return asyncio.run(mcp_list_tools(McpEndpoint(url or mcp.url, headers), timeout=timeout))


def toolbox(mcp, *, timeout=5.0, max_result_chars=20_000) -> Toolbox:
    tools = {}
    for tool in listed(mcp):
        name = tool_name("docs", tool["name"])
        tools[name] = McpTool(McpEndpoint(mcp.url, AUTH), name, tool["name"], tool)
    return Toolbox(tools, timeout_seconds=timeout, max_result_chars=max_result_chars)


def run(box: Toolbox, name: str, arguments: str):
    return asyncio.run(box.run([name], ToolCall("c1", name, arguments)))


def test_discovery_lists_each_tool_with_its_schema(mcp, allowed):
    tools = {tool["name"]: tool for tool in listed(mcp)}
    assert set(tools) == {"echo", "huge", "slow", "broken"}
    assert tools["echo"]["description"] == "Echo the text back."
    schema = tools["echo"]["input_schema"]
    assert schema["required"] == ["text"] and schema["properties"]["text"]["type"] == "string"
    assert tool_name("docs", "echo") == "docs__echo"
    assert tool_name("docs", "read.file") == "docs__read_file"


def test_a_call_goes_to_the_server_and_its_answer_comes_back(mcp, allowed):
    outcome = run(toolbox(mcp), "docs__echo", '{"text": "hello"}')
    assert (outcome.content, outcome.error) == ("echo: hello", None)
    assert ("echo", {"text": "hello"}) in mcp.calls


def test_arguments_are_checked_against_the_servers_schema_before_calling(mcp, allowed):
    before = len(mcp.calls)
    outcome = run(toolbox(mcp), "docs__echo", '{"text": 5}')
    assert outcome.error == "invalid arguments: text: 5 is not of type 'string'"
    assert len(mcp.calls) == before


def test_a_failing_tool_is_an_error_the_model_reads(mcp, allowed):
    outcome = run(toolbox(mcp), "docs__broken", "{}")
    assert outcome.error.startswith("the tool reported an error: Error executing tool broken")


def test_a_huge_result_is_cut(mcp, allowed):
    outcome = run(toolbox(mcp, max_result_chars=1000), "docs__huge", '{"chars": 500000}')
    assert outcome.truncated and outcome.error is None
    assert len(outcome.content) < 1100 and "500000 characters, 1000 shown" in outcome.content


def test_a_slow_tool_times_out(mcp, allowed):
    outcome = run(toolbox(mcp, timeout=0.5), "docs__slow", '{"seconds": 30}')
    assert outcome.error == "no result within 0.5 s"


def test_servers_that_refuse_fail_or_never_answer(mcp, allowed):
    with pytest.raises(McpUnavailable, match="answered HTTP 401 Unauthorized"):
        listed(mcp, headers={})
    with pytest.raises(McpUnavailable, match="the MCP server failed"):
        listed(mcp, url=mcp.garbage_url)
    with pytest.raises(McpUnavailable, match=r"gave no answer within 0\.5 s"):
        listed(mcp, url=mcp.silent_url, timeout=0.5)


def test_the_ssrf_guard_refuses_private_addresses_unless_allowed(mcp, settings):
    settings.SVERM_MCP_ALLOWED_HOSTS = []
    with pytest.raises(McpUnavailable, match="loopback"):
        listed(mcp)
    with pytest.raises(McpUnavailable, match="link-local"):
        listed(mcp, url="http://169.254.169.254/mcp")
    with pytest.raises(McpUnavailable, match="private"):
        listed(mcp, url="http://10.1.2.3/mcp")
