"""The checkpoint keys of a run's calls, and the settled steps an earlier attempt left under them.

A call's key is what was asked (agent, model, messages) and how many identical calls came before
it in the run, so the same call gets the same key in every attempt of the run; a retried call's
attempts are `<key>~2`, `<key>~3`, ...
"""

import hashlib
import json
from collections import Counter
from collections.abc import Mapping

from swarms.engine.chat import Message
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
