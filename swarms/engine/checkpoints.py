"""The checkpoint keys of a run's calls, the settled steps an earlier attempt left under them,
and what the steps of a turn with tools store (the tool calls a call asked for, each tool
call's outcome) so a resumed run replays them.

A call's key is what was asked (agent, model, messages) and how many identical calls came before
it in the run, so the same call gets the same key in every attempt of the run; a retried call's
attempts are `<key>~2`, `<key>~3`, ...
"""

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence

from swarms.engine.chat import Message
from swarms.engine.tools import ToolCall, ToolOutcome
from swarms.engine.types import AgentSpec, Step

RETRY_KEY = "~"


class StepKeys:
    """Keys the calls of one run in the order they are asked for."""

    def __init__(self, checkpoints: Mapping[str, Step], max_attempts: int) -> None:
        self.checkpoints = checkpoints
        self.max_attempts = max_attempts
        self._occurrences: Counter[str] = Counter()

    def key(self, agent: AgentSpec, messages: tuple[Message, ...]) -> str:
        asked = json.dumps(
            [agent.id, agent.model, [[m.role, m.content] for m in messages]], ensure_ascii=False
        )
        digest = hashlib.sha256(asked.encode()).hexdigest()[:48]
        self._occurrences[digest] += 1
        return f"{digest}-{self._occurrences[digest]}"

    def settled(self, key: str) -> Step | None:
        """The settled step of this call in an earlier attempt of the run, by any of its
        retry keys."""
        for attempt in range(1, self.max_attempts + 1):
            step = self.checkpoints.get(attempt_key(key, attempt))
            if step is not None and step.usage is not None:
                return step
        return None


def attempt_key(key: str, attempt: int) -> str:
    """The key of one attempt of the call `key`."""
    return key if attempt == 1 else f"{key}{RETRY_KEY}{attempt}"


def call_key(step_key: str) -> str:
    """The key of the call an attempt's key belongs to."""
    return step_key.split(RETRY_KEY)[0]


# --- what the steps of a turn with tools store ---------------------------------------------------

# A settled call that asked for tools keeps them in its step's output, after this line, so a
# resumed run replays the request too (a model's text never starts with it).
TOOL_CALLS_MARK = "[[sverm:tool_calls]]\n"
# A tool call's checkpoint and ledger row: "model" `tool:<name>`, provider "tool", no tokens.
TOOL_MODEL_PREFIX = "tool:"
TOOL_PROVIDER = "tool"


def pack_output(text: str, calls: Sequence[ToolCall]) -> str:
    """A settled call's output: the text, and the tool calls when there were some."""
    if not calls:
        return text
    listed = [[call.id, call.name, call.arguments] for call in calls]
    return f"{TOOL_CALLS_MARK}{json.dumps({'text': text, 'tool_calls': listed})}"


def unpack_output(output: str) -> tuple[str, tuple[ToolCall, ...]]:
    """The text and tool calls `pack_output` stored."""
    if not output.startswith(TOOL_CALLS_MARK):
        return output, ()
    data = json.loads(output[len(TOOL_CALLS_MARK) :])
    return data["text"], tuple(ToolCall(*call) for call in data["tool_calls"])


def tool_key(asked: str, index: int) -> str:
    """The checkpoint key of the `index`th tool call the call `asked` asked for: the same in
    every attempt of the run."""
    digest = hashlib.sha256(f"{asked}#{index}".encode()).hexdigest()[:48]
    return f"{digest}-t"


def step_approval_key(key: str) -> str:
    """The approval key of the step whose call is `key`, the same in every attempt."""
    return f"{hashlib.sha256(key.encode()).hexdigest()[:48]}-s"


def pack_outcome(outcome: ToolOutcome) -> str:
    """A settled tool call's output: its whole outcome, replayed as it was."""
    return json.dumps(dataclasses.asdict(outcome))


def unpack_outcome(output: str) -> ToolOutcome:
    return ToolOutcome(**json.loads(output))
