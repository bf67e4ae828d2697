"""MCP server writes: registering one (its tools discovered there and then), changing,
refreshing and removing it. Credentials are sealed (sverm/sealed.py) and never read back out."""

import asyncio
import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from audit.services import audit_diff, audit_fields, audit_record
from sverm.api.errors import Conflict, InvalidRequest
from sverm.sealed import seal
from tools.mcp import (
    MAX_TOOLS_PER_SERVER,
    McpEndpoint,
    McpUnavailable,
    mcp_list_tools,
    tool_name,
)
from tools.models import McpServer
from tools.selectors import MCP_HEADERS_SEALED_AS, mcp_headers


def _discover(server: str, url: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
    """The tools the server named `server` offers (those models can call by their name there,
    `<server>__<tool>`), and a note on any left out."""
    timeout = settings.SVERM_MCP_TIMEOUT_SECONDS
    listed = asyncio.run(mcp_list_tools(McpEndpoint(url, headers), timeout=timeout))
    kept, skipped = [], []
    for tool in listed[:MAX_TOOLS_PER_SERVER]:
        (kept if tool_name(server, tool["name"]) else skipped).append(tool)
    note = ""
    if skipped or len(listed) > MAX_TOOLS_PER_SERVER:
        names = ", ".join(t["name"] for t in skipped) or "none"
        note = (
            f"left out: tools whose names models cannot call ({names}); at most "
            f"{MAX_TOOLS_PER_SERVER} tools are kept"
        )
    return kept, note


def _discovered_or_400(
    server: str, url: str, headers: dict[str, str]
) -> tuple[list[dict[str, Any]], str]:
    try:
        return _discover(server, url, headers)
    except McpUnavailable as exc:
        raise InvalidRequest.for_field(
            "url", str(exc), message=f"Could not list the MCP server's tools: {exc}"
        ) from None


def mcp_server_create(
    *,
    workspace: Workspace,
    name: str,
    url: str,
    headers: dict[str, str],
    created_by: User | None,
    requires_approval: bool = False,
    price_per_call_usd: Decimal = Decimal(0),
) -> McpServer:
    """Register a server after asking it for its tools (400 naming why when it cannot be
    asked; 409 when the workspace has a server of that name)."""
    if McpServer.objects.filter(workspace=workspace, name=name).exists():
        raise Conflict(_taken(workspace, name))
    tools, note = _discovered_or_400(name, url, headers)
    server = McpServer(
        workspace=workspace, name=name, url=url, created_by=created_by, tools=tools,
        tools_fetched_at=timezone.now(), last_error=note, requires_approval=requires_approval,
        price_per_call_usd=price_per_call_usd,
    )  # fmt: skip
    _set_headers(server, headers)
    try:
        with transaction.atomic():
            server.save()
            _server_audit("mcp_server.create", server,
                          after=audit_fields(server, MCP_SERVER_AUDITED))  # fmt: skip
    except IntegrityError:
        raise Conflict(_taken(workspace, name)) from None
    return server


# A server's fields its audit events show: header names, never their values.
MCP_SERVER_AUDITED = ("name", "url", "header_names", "enabled", "requires_approval",
                      "price_per_call_usd")  # fmt: skip


def _server_audit(action: str, server: McpServer, *, before=None, after=None) -> None:
    audit_record(action=action, workspace_id=server.workspace_id, target_type="mcp_server",
                 target_id=server.pk, before=before, after=after)  # fmt: skip


def mcp_server_update(
    *,
    server: McpServer,
    url: str | None = None,
    headers: dict[str, str] | None = None,
    enabled: bool | None = None,
    requires_approval: bool | None = None,
    price_per_call_usd: Decimal | None = None,
) -> McpServer:
    """Change where it is, what it is sent, or whether its tools are offered; a new address
    or new headers are checked by listing its tools again (400 when that fails)."""
    before = audit_fields(server, MCP_SERVER_AUDITED)
    headers_changed = headers is not None and headers != mcp_headers(server)
    if url is not None or headers is not None:
        new_url = server.url if url is None else url
        new_headers = mcp_headers(server) if headers is None else headers
        server.tools, server.last_error = _discovered_or_400(server.name, new_url, new_headers)
        server.tools_fetched_at = timezone.now()
        server.url = new_url
        _set_headers(server, new_headers)
    if enabled is not None:
        server.enabled = enabled
    if requires_approval is not None:
        server.requires_approval = requires_approval
    if price_per_call_usd is not None:
        server.price_per_call_usd = price_per_call_usd
    with transaction.atomic():
        server.save()
        old, new = audit_diff(before, audit_fields(server, MCP_SERVER_AUDITED))
        if headers_changed:  # the values are secrets: that they changed shows, not them
            old["headers"], new["headers"] = "<redacted>", "<redacted, changed>"
        if new:
            _server_audit("mcp_server.update", server, before=old, after=new)
    return server


def mcp_server_refresh(*, server: McpServer) -> McpServer:
    """Ask the server for its tools again. When it cannot be asked, the tools it offered last
    stay (runs keep working while it is down) and `last_error` says why."""
    before = _tool_names(server)
    try:
        tools, note = _discover(server.name, server.url, mcp_headers(server))
    except McpUnavailable as exc:
        server.last_error = f"refresh failed at {timezone.now():%Y-%m-%d %H:%M:%S} UTC: {exc}"
    else:
        server.tools, server.last_error, server.tools_fetched_at = tools, note, timezone.now()
    with transaction.atomic():
        server.save(update_fields=["tools", "last_error", "tools_fetched_at", "updated_at"])
        old, new = audit_diff(before, _tool_names(server))
        if new:
            _server_audit("mcp_server.refresh", server, before=old, after=new)
    return server


def _tool_names(server: McpServer) -> dict:
    """What a refresh changes that the trail keeps: the tools' names and the last error."""
    return {"tools": sorted(tool["name"] for tool in server.tools), "last_error": server.last_error}


@transaction.atomic
def mcp_server_delete(*, server: McpServer) -> None:
    _server_audit("mcp_server.delete", server, before=audit_fields(server, MCP_SERVER_AUDITED))
    server.delete()


def _taken(workspace: Workspace, name: str) -> str:
    return f"Workspace {workspace.pk} already has an MCP server named '{name}'."


def _set_headers(server: McpServer, headers: dict[str, str]) -> None:
    server.headers_sealed = seal(MCP_HEADERS_SEALED_AS, json.dumps(headers)) if headers else ""
    server.header_names = sorted(headers)
