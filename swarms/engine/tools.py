"""Tools an agent may call during its turn, and the rules that refuse them.

A tool is anything with a `spec` (name, description, JSON schema of its arguments) and an async
`invoke(arguments) -> str`; where it comes from (the built-in `http_fetch`, an MCP server) is the
caller's business. A run gets a `Toolbox`: the tools its workspace registered and allows. An agent
offers the model only the tools its definition lists (`agents[].tools`, the agent allowlist) that
the workspace allows (the workspace allowlist); a call outside either is not run: the model reads
a refusal and the run's events say which rule refused it.

Plain Python, no Django: the Django side builds the Toolbox (tools/ app).
"""

import asyncio
import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

# Which rule refused a tool call: the agent's own list, the workspace's, or an operator.
AGENT_ALLOWLIST = "agent_allowlist"
WORKSPACE_ALLOWLIST = "workspace_allowlist"
OPERATOR_DENIAL = "operator_denial"

# What one result may put in the model's context: longer results are cut, saying so.
MAX_RESULT_CHARS = 20_000
# How long one tool call may take before the model is told it timed out.
TOOL_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class ToolSpec:
    """How a tool is described to the model (the OpenAI `function` shape)."""

    name: str
    description: str
    parameters: Mapping[str, Any]  # JSON schema of the arguments: an object schema
    price_usd: Decimal = Decimal(0)  # charged per call, under the run's budget
    requires_approval: bool = False  # its calls wait for an operator (as registered)


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for: its id (to answer it), the tool, the arguments as JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolOutcome:
    """What came of one call: `content` is what the model reads back (an explanation when it
    failed or was refused); `error` says why it failed, `refused_by` which rule refused it."""

    content: str
    error: str | None = None
    refused_by: str | None = None
    duration_ms: int = 0
    truncated: bool = False
    invoked: bool = False  # the tool itself was called (its price is charged)


class ToolError(Exception):
    """A tool call failed in a way the model should be told about (bad URL, HTTP 404, ...)."""


@runtime_checkable
class Tool(Protocol):
    spec: ToolSpec

    async def invoke(self, arguments: Mapping[str, Any]) -> str:
        """Do the work; raise ToolError with a message the model can act on."""
        ...


def schema_error(schema: Mapping[str, Any], arguments: Any) -> str | None:
    """The first way `arguments` break `schema`, or None (jsonschema, imported when a tool runs)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


class Toolbox:
    """The tools one run may use. `workspace_allows(name)` is the workspace allowlist; an agent's
    `tools` list is its own. Used from the run's event loop."""

    def __init__(
        self,
        tools: Mapping[str, Tool],
        workspace_allows: Callable[[str], bool] = lambda _name: True,
        *,
        timeout_seconds: float = TOOL_TIMEOUT_SECONDS,
        max_result_chars: int = MAX_RESULT_CHARS,
    ) -> None:
        self.tools = dict(tools)
        self.workspace_allows = workspace_allows
        self.timeout_seconds = timeout_seconds
        self.max_result_chars = max_result_chars

    def specs_for(self, allowed: Collection[str]) -> tuple["ToolSpec", ...]:
        """What the model is offered for an agent whose definition lists `allowed`."""
        return tuple(
            self.tools[name].spec
            for name in allowed
            if name in self.tools and self.workspace_allows(name)
        )

    def refusal(self, allowed: Collection[str], name: str) -> tuple[str, str] | None:
        """(rule_source, message) when a call of `name` by an agent listing `allowed` is refused."""
        if name not in allowed:
            return AGENT_ALLOWLIST, f"the agent's tools do not include '{name}'"
        if not self.workspace_allows(name):
            return WORKSPACE_ALLOWLIST, f"the workspace does not allow the tool '{name}'"
        if name not in self.tools:
            return WORKSPACE_ALLOWLIST, f"no tool '{name}' is registered in the workspace"
        return None

    async def run(
        self, allowed: Collection[str], call: ToolCall, *, arguments: str | None = None
    ) -> ToolOutcome:
        """Run one call (with `arguments` instead of the model's when an operator edited
        them), or say why it was not run; never raises (but for cancellation)."""
        refused = self.refusal(allowed, call.name)
        if refused is not None:
            rule, message = refused
            return ToolOutcome(
                content=f"Tool call refused ({rule}): {message}.", error=message, refused_by=rule
            )
        tool = self.tools[call.name]
        try:
            arguments = json.loads((call.arguments if arguments is None else arguments) or "{}")
        except json.JSONDecodeError as exc:
            message = f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})"
            return ToolOutcome(content=f"Tool call failed: {message}.", error=message)
        invalid = schema_error(tool.spec.parameters, arguments)
        if invalid is not None:
            message = f"invalid arguments: {invalid}"
            return ToolOutcome(content=f"Tool call failed: {message}.", error=message)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_seconds):
                text = await tool.invoke(arguments)
        except TimeoutError:
            message = f"no result within {self.timeout_seconds:g} s"
            error: str | None = message
            text = f"Tool call failed: {message}."
        except ToolError as exc:
            error = str(exc)
            text = f"Tool call failed: {error}"
        except Exception as exc:  # a broken tool must not break the run: the model is told
            error = f"{type(exc).__name__}: {exc}"
            text = f"Tool call failed: {error}"
        else:
            error = None
        duration_ms = round((time.monotonic() - started) * 1000)
        truncated = len(text) > self.max_result_chars
        if truncated:
            text = (
                text[: self.max_result_chars]
                + f"\n[cut: the result had {len(text)} characters, {self.max_result_chars} shown]"
            )
        return ToolOutcome(
            content=text, error=error, duration_ms=duration_ms, truncated=truncated, invoked=True
        )


def over_limit_outcome() -> ToolOutcome:
    """What the model reads for a call past its turn's `limits.max_tool_calls`."""
    message = "the turn's tool call limit (limits.max_tool_calls) was reached"
    return ToolOutcome(content=f"Tool call not run: {message}. Answer now.", error=message)


def unaffordable_outcome(price: Decimal) -> ToolOutcome:
    """What the model reads for a priced call the run's budget cannot pay."""
    message = f"the run's budget cannot pay for this call (${format(price, 'f')})"
    return ToolOutcome(content=f"Tool call not run: {message}.", error=message)


def empty_toolbox() -> Toolbox:
    """A run that may call no tool at all."""
    return Toolbox({})
