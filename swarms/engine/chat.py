"""The values exchanged with an LLM provider (re-exported by `providers`, which adds the clients).

They live apart from the provider clients so prompts and the simulation can use them without an
import cycle.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int
    agent_id: str
    timeout_seconds: float | None = None  # this attempt's share of the call's deadline


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
