"""Which tools a workspace has and which its allowlist lets its agents call."""

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from django.conf import settings

from accounts.models import Workspace
from swarms.engine.tools import Tool, Toolbox
from tools.fetch import HttpFetch


def builtin_tools() -> dict[str, Tool]:
    """The tools every workspace has, by name (fresh instances: they read settings when built)."""
    fetch = HttpFetch()
    return {fetch.spec.name: fetch}


def workspace_tools(*, workspace_id: str) -> dict[str, Tool]:
    """The tools agents of `workspace_id` may name: the built-in ones."""
    return builtin_tools()


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
