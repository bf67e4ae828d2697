"""The values exchanged with an LLM provider (re-exported by `providers`, which adds the clients).

They live apart from the provider clients so prompts and the simulation can use them without an
import cycle.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass

from swarms.engine.tools import ToolCall, ToolSpec


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant message that asked for tools
    tool_call_id: str = ""  # a tool message: the call it answers


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int
    agent_id: str
    timeout_seconds: float | None = None  # this attempt's share of the call's deadline
    tools: tuple[ToolSpec, ...] = ()  # offered to the model
    tool_choice: str = "auto"  # "auto": it may call them; "none": it must answer in text


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    tool_calls: tuple[ToolCall, ...] = ()  # the tools the model asked for, if any


def message_text(message: Message) -> str:
    """Everything a message puts in the prompt besides its role: its content, the tool calls
    it carries (name and arguments) and the id of the call it answers."""
    calls = "".join(f"{call.id}{call.name}{call.arguments}" for call in message.tool_calls)
    return f"{message.content}{calls}{message.tool_call_id}"


def tools_text(tools: Sequence[ToolSpec]) -> str:
    """The tool descriptions as a provider puts them in the prompt (a JSON rendering: its size
    bounds the tokens they cost)."""
    return "".join(
        json.dumps(
            {"name": spec.name, "description": spec.description, "parameters": spec.parameters},
            ensure_ascii=False,
        )
        for spec in tools
    )
