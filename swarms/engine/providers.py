"""LLM providers behind one small protocol: OpenAI-compatible endpoints, and an offline simulation.

Each provider also states a true upper bound of the prompt tokens it will bill, because the budget
reserves a call's worst case before starting it. Configured providers are built by kind
(`PROVIDER_KINDS`): another kind of client is a class here with a `kind` and `from_config`.
"""

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from swarms.engine import simulation
from swarms.engine.chat import Completion, CompletionRequest, Message, message_text, tools_text
from swarms.engine.tools import ToolCall, ToolSpec

__all__ = [
    "PROVIDER_KINDS",
    "Completion",
    "CompletionRequest",
    "Message",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "ProviderRouter",
    "SimulatedProvider",
    "provider_from_config",
    "utf8_prompt_bound",
]


class ProviderError(Exception):
    """One attempt of a call failed. The runner retries a `retryable` one under the call's
    deadline (after `retry_after` seconds when the provider said so), else the run fails
    `provider_error`. `maybe_billed`: the request may have been processed (a timeout, a dropped
    connection), so its reservation stays held against the budget instead of being released."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        maybe_billed: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.maybe_billed = maybe_billed
        self.retry_after = retry_after


@runtime_checkable
class Provider(Protocol):
    name: str

    async def complete(self, request: CompletionRequest) -> Completion: ...

    def max_prompt_tokens(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> int:
        """A true upper bound of the `tokens_in` the provider will report for these messages,
        with these tools offered."""
        ...

    async def aclose(self) -> None:
        """Release what the provider holds (connections) once its run is over; classes that
        subclass the protocol and hold nothing inherit this no-op."""
        return None


def utf8_prompt_bound(messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> int:
    """Upper bound of prompt tokens for any byte-level BPE tokenizer, without tokenizer files.

    Every token covers at least one byte, so the UTF-8 size bounds the content's tokens (tool
    calls, and the offered tools' JSON descriptions, included); the per-message, per-call,
    per-tool and per-request terms cover the chat template's role and separator tokens.
    """
    content = sum(len(message_text(message).encode("utf-8")) for message in messages)
    calls = sum(len(message.tool_calls) for message in messages)
    tools_bytes = len(tools_text(tools).encode("utf-8"))
    return content + 8 * len(messages) + 16 + 16 * calls + tools_bytes + 16 * len(tools)


def _chars_to_tokens(text_length: int) -> int:
    return math.ceil(text_length / 4)


class SimulatedProvider(Provider):
    """Offline, deterministic stand-in for an LLM: the same request always gives the same text.

    Its answers follow the agent's role and step (a manager plans in JSON, workers report, a writer
    synthesises, ...), so a run without any API key still exercises every topology end to end.
    Tokens are counted as ceil(characters / 4), the usual rule of thumb for English.
    """

    kind: ClassVar[str] = "simulated"
    name = "simulated"

    def __init__(self, latency_seconds: float = 0.0) -> None:
        self.latency_seconds = latency_seconds

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> "SimulatedProvider":
        """`{"latency_seconds": 0.2}`; the name is always "simulated" (runs say so)."""
        return cls(latency_seconds=float(config.get("latency_seconds", 0.0)))

    async def complete(self, request: CompletionRequest) -> Completion:
        await asyncio.sleep(self.latency_seconds)
        tokens_in = self.max_prompt_tokens(request.messages, request.tools)
        if request.tools and request.tool_choice != "none":
            calls = simulation.tool_calls(request.model, request.messages, request.tools)
            if calls:
                text = simulation.tool_preamble(calls)[: request.max_tokens * 4]
                used = _chars_to_tokens(len(text) + sum(len(c.arguments) for c in calls))
                if used <= request.max_tokens:
                    return Completion(
                        text=text, tokens_in=tokens_in, tokens_out=used, tool_calls=calls
                    )
        text = simulation.reply(request.model, request.agent_id, request.messages)
        text = text[: request.max_tokens * 4]  # tokens_out must never exceed max_tokens
        return Completion(text=text, tokens_in=tokens_in, tokens_out=_chars_to_tokens(len(text)))

    def max_prompt_tokens(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> int:
        # Exact for this provider: it reports precisely this many tokens.
        chars = sum(len(message_text(message)) for message in messages) + len(tools_text(tools))
        return _chars_to_tokens(chars)


class OpenAIProvider(Provider):
    """Chat completions on any OpenAI-compatible endpoint through the official `openai` SDK.

    One request per `complete()`: the SDK's own retries are off, because a provider may bill
    every attempt and the runner must reserve each one under the run's budget and the call's
    deadline. Failures say whether they are worth retrying (408/409/429/5xx, timeouts, dropped
    connections) and whether they may have been billed (a timeout or a connection lost after
    the request was sent). `max_tokens_param` exists because OpenAI's reasoning models only
    accept `max_completion_tokens` while most compatible servers only know `max_tokens`.
    """

    kind: ClassVar[str] = "openai-compatible"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        timeout: float = 60.0,
        name: str = "openai",
        max_tokens_param: str = "max_tokens",
    ) -> None:
        if max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise ValueError("max_tokens_param must be 'max_tokens' or 'max_completion_tokens'")
        # The SDK (~1,000 modules, ~35 MiB with pydantic) is imported by the first provider
        # that needs it: a process that only simulates, or only serves the API, never does.
        import openai

        self.name = name
        self.max_tokens_param = max_tokens_param
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0
        )

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> "OpenAIProvider":
        """`{"api_key": ..., "base_url": "" (OpenAI's), "timeout": 60}`."""
        return cls(
            name=name,
            base_url=config.get("base_url") or None,
            api_key=config["api_key"],
            timeout=float(config.get("timeout", 60)),
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        import httpx
        import openai

        options: dict[str, Any] = {}
        if request.timeout_seconds is not None:
            options["timeout"] = request.timeout_seconds
        if request.tools:
            options["tools"] = [_wire_tool(spec) for spec in request.tools]
            options["tool_choice"] = request.tool_choice
        try:
            response = await self._client.chat.completions.create(
                model=request.model,
                messages=[_wire_message(m) for m in request.messages],
                **{self.max_tokens_param: request.max_tokens},
                **options,
            )
        except openai.APITimeoutError as exc:
            raise ProviderError(
                f"{self.name}: model '{request.model}' timed out", retryable=True,
                maybe_billed=True,
            ) from exc  # fmt: skip
        except openai.APIStatusError as exc:
            raise ProviderError(
                f"{self.name}: model '{request.model}' answered HTTP {exc.status_code}: "
                f"{_short(exc.message)}",
                retryable=exc.status_code in RETRYABLE_STATUSES or exc.status_code >= 500,
                retry_after=_retry_after(exc.response.headers),
            ) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(
                f"{self.name}: cannot reach the endpoint for model '{request.model}': "
                f"{_short(str(exc))}",
                retryable=True,
                # Refused before anything was sent: nothing to bill. Lost afterwards: maybe.
                maybe_billed=not isinstance(exc.__cause__, httpx.ConnectError),
            ) from exc
        except openai.OpenAIError as exc:
            raise ProviderError(f"{self.name}: {_short(str(exc))}") from exc

        if not response.choices:
            raise ProviderError(f"{self.name}: model '{request.model}' returned no choices")
        message = response.choices[0].message
        text = message.content or ""
        calls = tuple(
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments or "")
            for call in message.tool_calls or ()
            if getattr(call, "function", None) is not None
        )
        usage = response.usage
        if usage is None:
            # Some compatible servers omit usage; charge safe upper bounds rather than nothing.
            written = len(text.encode("utf-8")) + sum(
                len(f"{c.name}{c.arguments}".encode()) for c in calls
            )
            return Completion(
                text=text,
                tokens_in=self.max_prompt_tokens(request.messages, request.tools),
                tokens_out=min(request.max_tokens, written),
                tool_calls=calls,
            )
        return Completion(
            text=text,
            tokens_in=usage.prompt_tokens or 0,
            tokens_out=usage.completion_tokens or 0,
            tool_calls=calls,
        )

    def max_prompt_tokens(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> int:
        return utf8_prompt_bound(messages, tools)

    async def aclose(self) -> None:
        await self._client.close()


class ProviderRouter:
    """Picks the provider of a model: an exact-name route, else the default."""

    def __init__(self, routes: Mapping[str, Provider], default: Provider) -> None:
        self.routes = dict(routes)
        self.default = default

    def for_model(self, model: str) -> Provider:
        return self.routes.get(model, self.default)

    @property
    def simulated(self) -> bool:
        """True when every provider this router can return is the simulation."""
        providers = [*self.routes.values(), self.default]
        return all(provider.name == SimulatedProvider.name for provider in providers)

    @classmethod
    def simulated_only(cls, latency_seconds: float = 0.0) -> "ProviderRouter":
        return cls(routes={}, default=SimulatedProvider(latency_seconds=latency_seconds))


# How a configured provider is built, by its kind; a configuration without one is
# OpenAI-compatible.
PROVIDER_KINDS: dict[str, Callable[[str, Mapping[str, Any]], Provider]] = {
    cls.kind: cls.from_config for cls in (OpenAIProvider, SimulatedProvider)
}
DEFAULT_KIND = OpenAIProvider.kind


def provider_from_config(name: str, config: Mapping[str, Any]) -> Provider:
    """The provider `name` as configured: `config["kind"]` (default "openai-compatible") picks
    the class, which reads the rest; ValueError for an unknown kind."""
    kind = config.get("kind", DEFAULT_KIND)
    if kind not in PROVIDER_KINDS:
        known = ", ".join(sorted(PROVIDER_KINDS))
        raise ValueError(f"provider {name!r}: unknown kind {kind!r} (known: {known})")
    return PROVIDER_KINDS[kind](name, config)


RETRYABLE_STATUSES = frozenset({408, 409, 429})


def _wire_message(message: Message) -> dict[str, Any]:
    """A message in the chat-completions shape: tool calls on an assistant message, the call
    id on a tool message."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.role == "tool":
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _wire_tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": dict(spec.parameters),
        },
    }


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asked to wait (`retry-after-ms`, `retry-after` in seconds)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) / scale)
        except (KeyError, ValueError):
            continue
    return None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
