"""Test doubles and builders for the engine tests: definitions, prices, a recording provider
and a log of the run's callbacks."""

import asyncio
import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from swarms.engine import simulation
from swarms.engine.cancel import CancelToken
from swarms.engine.chat import message_text, tools_text
from swarms.engine.providers import Completion, CompletionRequest, ProviderRouter
from swarms.engine.runner import run_swarm
from swarms.engine.tools import Toolbox, ToolCall
from swarms.engine.types import (
    CallPolicy,
    Definition,
    Event,
    Price,
    RunInput,
    RunResult,
    Usage,
)

MODEL = "gpt-4o-mini"
PRICES = {MODEL: Price(input_per_million=Decimal("0.15"), output_per_million=Decimal("0.60"))}
TASK = "Investigate the Norwegian hydrogen economy"


def agent(agent_id: str, role: str, **extra: Any) -> dict[str, Any]:
    return {"id": agent_id, "role": role, "model": MODEL, **extra}


def definition_dict(topology: str, **options: Any) -> dict[str, Any]:
    """A small valid definition of each topology; `options` override top-level keys."""
    teams = {
        "hierarchical": [
            agent("manager", "manager"),
            agent("researcher", "worker", replicas=3),
            agent("writer", "writer", max_tokens=2048),
        ],
        "sequential": [
            agent("drafter", "drafter"),
            agent("editor", "editor"),
            agent("critic", "critic"),
        ],
        "parallel": [agent("analyst", "worker", replicas=3), agent("merger", "aggregator")],
        "debate": [agent("pro", "debater"), agent("con", "debater"), agent("judge", "judge")],
    }
    return {"topology": topology, "agents": teams[topology], **options}


def make_definition(topology: str, **options: Any) -> Definition:
    return Definition.from_dict(definition_dict(topology, **options))


# Retries without pauses, so tests of retried calls take no time.
QUICK_RETRIES = CallPolicy(retry_delays=(0.0,))


def run_input(
    definition: Definition,
    *,
    budget: str = "5",
    task: str = TASK,
    prices=None,
    calls: CallPolicy = QUICK_RETRIES,
) -> RunInput:
    return RunInput(
        run_id="run_test",
        task=task,
        definition=definition,
        budget_usd=Decimal(budget),
        prices=prices or PRICES,
        calls=calls,
    )


class RecordingProvider:
    """A Provider that records every request, tracks concurrency and aborted calls.

    Replies come from `reply(request)` (default: the simulation's text, so managers return real
    plans); tokens are counted like the simulated provider's.
    """

    name = "fake"

    def __init__(
        self,
        *,
        latency: float | Callable[[CompletionRequest], float] = 0.0,
        reply: Callable[[CompletionRequest], str] | None = None,
        tokens: Callable[[CompletionRequest, str], tuple[int, int]] | None = None,
        tool_calls: Callable[[CompletionRequest], tuple[ToolCall, ...]] | None = None,
    ) -> None:
        self.latency = latency
        self.reply = reply
        self.tokens = tokens
        self.tool_calls = tool_calls
        self.requests: list[CompletionRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.aborted: list[str] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            latency = self.latency(request) if callable(self.latency) else self.latency
            await asyncio.sleep(latency)
            calls = ()
            if self.tool_calls is not None and request.tools and request.tool_choice != "none":
                calls = self.tool_calls(request)
            if calls:
                text = ""
            elif self.reply is not None:
                text = self.reply(request)
            else:
                text = simulation.reply(request.model, request.agent_id, request.messages)
            text = text[: request.max_tokens * 4]
            if self.tokens is not None:
                tokens_in, tokens_out = self.tokens(request, text)
            else:
                tokens_in = self.max_prompt_tokens(request.messages, request.tools)
                tokens_out = math.ceil((len(text) + sum(len(c.arguments) for c in calls)) / 4)
            return Completion(
                text=text, tokens_in=tokens_in, tokens_out=tokens_out, tool_calls=calls
            )
        except asyncio.CancelledError:
            self.aborted.append(request.agent_id)
            raise
        finally:
            self.in_flight -= 1

    def max_prompt_tokens(self, messages, tools=()) -> int:
        return math.ceil((sum(len(message_text(m)) for m in messages) + len(tools_text(tools))) / 4)

    def agent_ids(self) -> list[str]:
        return [request.agent_id for request in self.requests]

    def request_for(self, agent_id: str) -> CompletionRequest:
        (request,) = [r for r in self.requests if r.agent_id == agent_id]
        return request


def user_text(request: CompletionRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role == "user")


class CallbackLog:
    """The run's callbacks: everything they received, in order, as ("event"|"usage", value)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Event | Usage]] = []

    async def on_event(self, event: Event) -> None:
        json.dumps(event.data)  # must be JSON-serialisable as is
        self.log.append(("event", event))

    async def on_usage(self, usage: Usage) -> None:
        self.log.append(("usage", usage))

    @property
    def events(self) -> list[Event]:
        return [item for kind, item in self.log if kind == "event"]

    @property
    def usages(self) -> list[Usage]:
        return [item for kind, item in self.log if kind == "usage"]

    def types(self) -> list[str]:
        return [event.type for event in self.events]

    def of_type(self, type_: str) -> list[Event]:
        return [event for event in self.events if event.type == type_]


async def run(
    spec: RunInput,
    provider=None,
    *,
    log: CallbackLog | None = None,
    cancel: CancelToken | None = None,
    tools: Toolbox | None = None,
) -> tuple[RunResult, CallbackLog]:
    """run_swarm with every model routed to `provider` (default: the simulation)."""
    log = log or CallbackLog()
    router = (
        ProviderRouter.simulated_only()
        if provider is None
        else ProviderRouter(routes={}, default=provider)
    )
    result = await run_swarm(
        spec,
        router=router,
        on_event=log.on_event,
        on_usage=log.on_usage,
        cancel=cancel,
        tools=tools,
    )
    return result, log


class ConcurrencyProbe:
    """Wraps a real provider and counts how many of its calls are in flight at once."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.inner.complete(request)
        finally:
            self.in_flight -= 1

    def max_prompt_tokens(self, messages, tools=()) -> int:
        return self.inner.max_prompt_tokens(messages, tools)
