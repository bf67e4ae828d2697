"""MCP servers as tool sources, through the official `mcp` SDK over the streamable HTTP
transport: `mcp_list_tools` discovers what a server offers, `McpTool` calls one of its tools for
an agent. Each call opens its own session: no connection outlives the call that needed it.

Before connecting, the server's address passes the SSRF guard (sverm/ssrf.py) with the hosts
SVERM_MCP_ALLOWED_HOSTS allows; the SDK then connects by name. The SDK is imported by the first
call: a process whose agents use no MCP server never loads it.
"""

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from sverm.ssrf import DestinationRefused, resolve_target
from swarms.engine.schema import TOOL_NAME
from swarms.engine.tools import ToolError, ToolSpec

# How a server's tool is named for models: `<server>__<tool>`, within the engine's tool names.
SEPARATOR = "__"
MAX_DESCRIPTION_CHARS = 2000
# Tools kept from one server's listing: the rest are left out (and said so in last_error).
MAX_TOOLS_PER_SERVER = 64
_INVALID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class McpEndpoint:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


class McpUnavailable(Exception):
    """The server could not be reached, refused us, or did not speak MCP."""


def tool_name(server: str, remote: str) -> str | None:
    """The name models call a server's tool by, or None when it cannot have one."""
    name = f"{server}{SEPARATOR}{_INVALID.sub('_', remote)}"
    return name if TOOL_NAME.fullmatch(name) else None


def _innermost(error: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _describe(error: BaseException) -> str:
    """`_innermost` in one line."""
    error = _innermost(error)
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]


async def _checked(url: str) -> None:
    allowed = settings.SVERM_MCP_ALLOWED_HOSTS
    try:
        await asyncio.to_thread(resolve_target, url, allowed_hosts=allowed, what="MCP server")
    except DestinationRefused as exc:
        raise McpUnavailable(str(exc)) from None
    except (OSError, UnicodeError) as exc:
        raise McpUnavailable(f"cannot resolve the MCP server's host: {_describe(exc)}") from None


async def _session(endpoint: McpEndpoint, work, timeout: float):
    """Run `work(client)` in a session with the server, within `timeout` seconds."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    await _checked(endpoint.url)
    refusals: list[str] = []  # the SDK's errors do not say what HTTP status the server gave

    async def note_refusal(response) -> None:
        if response.status_code >= 400:
            refusals.append(f"HTTP {response.status_code} {response.reason_phrase}".strip())

    silent = f"the MCP server gave no answer within {timeout:g} s"
    http = httpx2.AsyncClient(
        headers=dict(endpoint.headers), timeout=timeout, trust_env=False,
        event_hooks={"response": [note_refusal]},
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            async with (
                http,
                Client(streamable_http_client(endpoint.url, http_client=http)) as client,
            ):
                return await work(client)
    except TimeoutError:
        raise McpUnavailable(silent) from None
    except Exception as exc:  # the SDK's transport and protocol errors, in task groups
        inner = _innermost(exc)
        if isinstance(inner, (ToolError, McpUnavailable)):
            raise inner from None
        if isinstance(inner, httpx2.TimeoutException):
            # The HTTP client's own timeout (the same seconds) can fire before the deadline
            # does, on a loaded machine: the same silence, said the same way.
            raise McpUnavailable(silent) from None
        answered = f"answered {refusals[0]}: " if refusals else "failed: "
        raise McpUnavailable(f"the MCP server {answered}{_describe(exc)}") from exc


async def mcp_list_tools(endpoint: McpEndpoint, *, timeout: float) -> list[dict[str, Any]]:
    """What the server offers, all pages of `tools/list`: [{name, description, input_schema}]."""

    async def listing(client) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                schema = getattr(tool, "input_schema", None) or {"type": "object"}
                found.append(
                    {
                        "name": tool.name,
                        "description": (tool.description or "")[:MAX_DESCRIPTION_CHARS],
                        "input_schema": json.loads(json.dumps(schema)),
                    }
                )
            cursor = getattr(page, "next_cursor", None)
            if not cursor or len(found) >= MAX_TOOLS_PER_SERVER:
                return found

    return await _session(endpoint, listing, timeout)


def _content_text(result) -> str:
    """A tool result's content as text: its text parts, what other parts are, and its
    structured content when it has no text."""
    parts = []
    for item in result.content or []:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)
        elif kind == "resource" and getattr(item.resource, "text", None) is not None:
            parts.append(item.resource.text)
        elif kind == "resource_link":
            parts.append(f"[resource: {item.uri}]")
        else:
            parts.append(f"[{kind or 'content'}: {getattr(item, 'mime_type', '') or 'binary'}]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False))
    return "\n".join(parts)


async def mcp_call(
    endpoint: McpEndpoint, remote: str, arguments: Mapping[str, Any], *, timeout: float
) -> str:
    """Call the server's tool `remote`; ToolError with the server's words when it reports an
    error, McpUnavailable when it cannot be asked."""

    async def calling(client) -> str:
        result = await client.call_tool(remote, dict(arguments))
        text = _content_text(result)
        if getattr(result, "is_error", False):
            raise ToolError(f"the tool reported an error: {text[:500] or 'no details'}")
        return text

    return await _session(endpoint, calling, timeout)


class McpTool:
    """One tool of an MCP server, as the engine calls tools."""

    def __init__(
        self,
        endpoint: McpEndpoint,
        name: str,
        remote: str,
        listed: Mapping,
        *,
        price_usd: Decimal = Decimal(0),
        requires_approval: bool = False,
        source: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.remote = remote
        self.source = source  # the registered server's id
        schema = listed.get("input_schema") or {"type": "object"}
        self.spec = ToolSpec(
            name, listed.get("description", ""), schema, price_usd, requires_approval
        )

    async def invoke(self, arguments: Mapping[str, Any]) -> str:
        timeout = settings.SVERM_TOOL_TIMEOUT_SECONDS
        try:
            return await mcp_call(self.endpoint, self.remote, arguments, timeout=timeout)
        except McpUnavailable as exc:
            raise ToolError(str(exc)) from None
