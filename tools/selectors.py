"""Which tools a workspace has and which its allowlist lets its agents call."""

import json
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from django.conf import settings

from accounts.models import Workspace
from sverm.sealed import unseal
from swarms.engine.tools import Tool, Toolbox
from tools.fetch import HttpFetch
from tools.mcp import McpEndpoint, McpTool, tool_name
from tools.models import McpServer

# The purpose MCP credentials are sealed under (tools/services.py seals them).
MCP_HEADERS_SEALED_AS = "sverm-mcp-headers"


def builtin_tools() -> dict[str, Tool]:
    """The tools every workspace has, by name (fresh instances: they read settings when built)."""
    fetch = HttpFetch()
    return {fetch.spec.name: fetch}


def workspace_tools(*, workspace_id: str) -> dict[str, Tool]:
    """The tools agents of `workspace_id` may name: the built-in ones, and those of its enabled
    MCP servers as last listed (one query)."""
    tools = builtin_tools()
    for server in McpServer.objects.filter(workspace_id=workspace_id, enabled=True):
        endpoint = mcp_endpoint(server)
        for listed in server.tools:
            name = tool_name(server.name, listed["name"])
            if name is not None and name not in tools:
                tools[name] = McpTool(
                    endpoint, name, listed["name"], listed,
                    price_usd=server.price_per_call_usd,
                    requires_approval=server.requires_approval, source=server.pk,
                )  # fmt: skip
    return tools


def workspace_tool_list(*, workspace_id: str) -> list[dict]:
    """Every tool agents of the workspace may list: name, description, source and the JSON
    schema of its arguments (built-in first, then each MCP server's)."""
    return [
        {
            "name": name,
            "description": tool.spec.description,
            "source": tool.source if isinstance(tool, McpTool) else "builtin",
            "parameters": dict(tool.spec.parameters),
        }
        for name, tool in workspace_tools(workspace_id=workspace_id).items()
    ]


def mcp_endpoint(server: McpServer) -> McpEndpoint:
    """Where the server is and the headers it is sent (unsealed)."""
    headers = {}
    if server.headers_sealed:
        headers = json.loads(unseal(MCP_HEADERS_SEALED_AS, server.headers_sealed))
    return McpEndpoint(server.url, headers)


def mcp_headers(server: McpServer) -> dict[str, str]:
    return dict(mcp_endpoint(server).headers)


def workspace_tool_allowlist(*, workspace_id: str) -> list[str]:
    """The workspace allowlist: names and `*` patterns (one query)."""
    allowed = Workspace.objects.filter(pk=workspace_id).values_list("allowed_tools", flat=True)
    return list(allowed.first() or [])


def tool_allowed(patterns: Iterable[str], name: str) -> bool:
    """Whether `name` matches one of the allowlist's names or patterns (case-sensitive)."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def tools_refused(patterns: Iterable[str], wanted: Mapping[str, Iterable[str]]) -> list[str]:
    """`agent: tool` for each tool an agent lists that the allowlist does not allow."""
    patterns = list(patterns)
    return [
        f"{agent_id}: {name}"
        for agent_id, names in wanted.items()
        for name in names
        if not tool_allowed(patterns, name)
    ]


def run_toolbox(*, workspace_id: str) -> Toolbox:
    """The tools a run of `workspace_id` may call, with the allowlist as it is now (a query:
    call it off the run's event loop)."""
    patterns = workspace_tool_allowlist(workspace_id=workspace_id)
    return Toolbox(
        workspace_tools(workspace_id=workspace_id),
        lambda name: tool_allowed(patterns, name),
        timeout_seconds=settings.SVERM_TOOL_TIMEOUT_SECONDS,
        max_result_chars=settings.SVERM_TOOL_MAX_RESULT_CHARS,
    )
