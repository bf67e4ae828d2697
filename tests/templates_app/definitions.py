"""Definitions for the template tests: the built-in ids, a parallel team (as a dict, and sized
to order) and a sequential one as YAML."""

import copy

BUILTIN_IDS = {
    "research-swarm-v1",
    "code-review-swarm-v1",
    "writing-swarm-v1",
    "pipeline-swarm-v1",
    "brainstorm-swarm-v1",
    "debate-swarm-v1",
    "web-research-swarm-v1",
}

PARALLEL = {
    "version": 1,
    "topology": "parallel",
    "instructions": "Be brief.",
    "limits": {"max_parallel": 2, "max_steps": 5},
    "agents": [
        {"id": "a", "role": "worker", "model": "gpt-4o-mini", "max_tokens": 256},
        {"id": "b", "role": "worker", "model": "gpt-4o-mini", "max_tokens": 256},
        {"id": "merge", "role": "aggregator", "model": "gpt-4o-mini", "max_tokens": 512},
    ],
}

SEQUENTIAL_YAML = """\
# Two steps.
name: Two Step
description: Drafts, then edits
topology: sequential
limits:
  max_steps: 2
agents:
  - id: drafter
    role: drafter
    model: gpt-4o-mini
    max_tokens: 512
  - id: editor
    role: editor
    model: deepseek-chat
    max_tokens: 512
"""


def parallel(workers: int = 2, model: str = "gpt-4o-mini", max_tokens: int = 256) -> dict:
    definition = copy.deepcopy(PARALLEL)
    definition["limits"]["max_steps"] = workers + 1
    definition["agents"] = [
        {"id": f"w{n}", "role": "worker", "model": model, "max_tokens": max_tokens}
        for n in range(workers)
    ] + [{"id": "merge", "role": "aggregator", "model": model, "max_tokens": max_tokens}]
    return definition
