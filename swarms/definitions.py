"""The default swarm definition, used until a swarm is made from a template or inline definition.

Plain data, no Django: the engine reads the same shape.
"""

from typing import Any

DEFAULT_MODEL = "gpt-4o-mini"


def default_definition(*, models: list[str], instructions: str = "") -> dict[str, Any]:
    """A hierarchical team: a manager plans, two researchers work in parallel, a writer
    synthesises. With several models the roles take them in turn (manager first, writer last)."""
    models = models or [DEFAULT_MODEL]
    manager, worker, writer = models[0], models[1 % len(models)], models[-1]
    return {
        "version": 1,
        "topology": "hierarchical",
        "instructions": instructions,
        "limits": {"max_parallel": 4, "max_steps": 12},
        "agents": [
            {"id": "manager", "role": "manager", "model": manager, "max_tokens": 1024,
             "instructions": "Plan the task and delegate subtasks to the researchers."},
            {"id": "researcher", "role": "worker", "model": worker, "max_tokens": 1024,
             "replicas": 2, "instructions": "Research your subtask and report findings."},
            {"id": "writer", "role": "writer", "model": writer, "max_tokens": 2048,
             "instructions": "Synthesise the findings into a clear markdown answer."},
        ],
    }  # fmt: skip
