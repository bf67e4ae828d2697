"""Validation of swarm definitions in their dict (YAML/JSON) shape, with errors that name the path.

The API and the template loader call `validate_definition` on every write so a bad definition is
refused with a 4xx before anything runs; `Definition` calls it again so the engine can rely on a
well-formed team (exactly one manager, enough steps, ...) without defensive checks of its own.
The rules of each topology (its roles, who may have replicas, what its team needs) are its own
class's, in topologies.py; the bounds every definition stays within are in bounds.py.
"""

import re
from collections.abc import Mapping
from typing import Any

from swarms.engine.bounds import (
    MAX_AGENT_ENTRIES,
    MAX_AGENT_TOOLS,
    MAX_AGENTS_EXPANDED,
    MAX_INSTRUCTIONS_CHARS,
    MAX_MODEL_CHARS,
    MAX_PARALLEL,
    MAX_REPLICAS,
    MAX_ROUNDS,
    MAX_STEPS,
    MAX_TOKENS,
    MAX_TOOL_CALLS,
    MAX_TOOL_NAME_CHARS,
)
from swarms.engine.topologies import REPLICABLE_ROLES, TOPOLOGIES, TOPOLOGY_NAMES, Topology

TOP_LEVEL_FIELDS = ("version", "topology", "instructions", "limits", "agents")
LIMIT_FIELDS = ("max_parallel", "max_steps", "rounds", "max_tool_calls")
AGENT_FIELDS = (
    "id", "role", "model", "instructions", "max_tokens", "replicas", "tools", "requires_approval",
    "approve_steps",
)  # fmt: skip

_REPLICABLE = " and ".join(REPLICABLE_ROLES)  # "worker and debater", as errors name them

_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# A tool's name as models see it (OpenAI's function names: letters, digits, '_' and '-'); an MCP
# server's tools are `<server>__<tool>`.
TOOL_NAME = re.compile(rf"[A-Za-z][A-Za-z0-9_-]{{0,{MAX_TOOL_NAME_CHARS - 1}}}")


def validate_definition(
    data: Any, known_models: set[str] | None = None, known_tools: set[str] | None = None
) -> list[str]:
    """Every problem with `data`, each as `path: message`; an empty list means valid.

    `known_models`, when given, is the set of model names that have a price (and a route);
    `known_tools` the set of tool names the workspace has.
    """
    if not isinstance(data, Mapping):
        return ["definition: must be a mapping"]
    errors = _unknown_fields(data, TOP_LEVEL_FIELDS, prefix="")
    if "version" in data and (not _is_int(data["version"]) or data["version"] != 1):
        errors.append("version: must be 1")

    name = data.get("topology")
    topology = TOPOLOGIES.get(name) if isinstance(name, str) else None
    if name is None:
        errors.append("topology: required")
    elif topology is None:
        errors.append(f"topology: must be one of {', '.join(TOPOLOGY_NAMES)}")
    _check_text(data, "instructions", "instructions", errors)

    limits = _validate_limits(data.get("limits", {}), errors)
    agents = _validate_agents(data.get("agents"), topology, known_models, known_tools, errors)
    if topology is not None and agents is not None:
        errors.extend(_team_errors(topology, agents, limits))
    return errors


def lists_tools(data: Any) -> bool:
    """Whether any agent of a definition in its dict shape (valid or not yet checked) lists a
    tool: only then do its workspace's tools and allowlist need reading."""
    agents = data.get("agents") if isinstance(data, Mapping) else None
    return isinstance(agents, list) and any(
        isinstance(agent, Mapping) and isinstance(agent.get("tools"), list) and agent["tools"]
        for agent in agents
    )


def _validate_limits(limits: Any, errors: list[str]) -> dict[str, int]:
    defaults = {"max_parallel": 4, "max_steps": 50, "rounds": 2, "max_tool_calls": 4}
    if not isinstance(limits, Mapping):
        errors.append("limits: must be a mapping")
        return defaults
    errors.extend(_unknown_fields(limits, LIMIT_FIELDS, prefix="limits."))
    bounds = {
        "max_parallel": (1, MAX_PARALLEL),
        "max_steps": (1, MAX_STEPS),
        "rounds": (1, MAX_ROUNDS),
        "max_tool_calls": (0, MAX_TOOL_CALLS),
    }
    result = dict(defaults)
    for name, (lower, upper) in bounds.items():
        if name in limits:
            if _int_in_range(limits[name], lower, upper):
                result[name] = limits[name]
            else:
                errors.append(f"limits.{name}: must be an integer from {lower} to {upper}")
    return result


def _validate_agents(
    agents: Any,
    topology: Topology | None,
    known_models: set[str] | None,
    known_tools: set[str] | None,
    errors: list[str],
) -> list[tuple[int, str, int]] | None:
    """Check each agent entry; return (index, role, replicas) of those with a valid role, or None
    when the list itself is unusable (then team-level checks would only add noise)."""
    if agents is None:
        errors.append("agents: required")
        return None
    if not isinstance(agents, list) or not agents:
        errors.append("agents: must be a non-empty list of agents")
        return None
    if len(agents) > MAX_AGENT_ENTRIES:
        errors.append(f"agents: at most {MAX_AGENT_ENTRIES} entries")
        return None

    team: list[tuple[int, str, int]] = []
    seen_ids: dict[str, int] = {}
    for index, agent in enumerate(agents):
        path = f"agents[{index}]"
        if not isinstance(agent, Mapping):
            errors.append(f"{path}: must be a mapping")
            continue
        errors.extend(_unknown_fields(agent, AGENT_FIELDS, prefix=f"{path}."))
        agent_id = _check_id(agent, path, errors)
        role = _check_role(agent, path, topology, errors)
        _check_model(agent, path, known_models, errors)
        _check_tools(agent, path, known_tools, errors)
        _check_approval(agent, path, errors)
        if not isinstance(agent.get("approve_steps", False), bool):
            errors.append(f"{path}.approve_steps: must be true or false")
        _check_text(agent, "instructions", f"{path}.instructions", errors)
        if "max_tokens" in agent and not _int_in_range(agent["max_tokens"], 1, MAX_TOKENS):
            errors.append(f"{path}.max_tokens: must be an integer from 1 to {MAX_TOKENS}")
        replicas = agent.get("replicas", 1)
        if not _int_in_range(replicas, 1, MAX_REPLICAS):
            errors.append(f"{path}.replicas: must be an integer from 1 to {MAX_REPLICAS}")
            replicas = 1
        elif replicas > 1 and role is not None and role not in REPLICABLE_ROLES:
            errors.append(f"{path}.replicas: only {_REPLICABLE} agents can have replicas")
        elif replicas > 1 and topology is not None and not topology.replicable_roles:
            errors.append(f"{path}.replicas: {topology.name} agents cannot have replicas")

        if agent_id is not None:
            for expanded in expand_ids(agent_id, replicas):
                if expanded in seen_ids:
                    errors.append(f"{path}.id: duplicate agent id '{expanded}'")
                    break
                seen_ids[expanded] = index
        if role is not None:  # counted even if other fields are wrong: no knock-on errors
            team.append((index, role, replicas))
    if len(seen_ids) > MAX_AGENTS_EXPANDED:
        errors.append(f"agents: at most {MAX_AGENTS_EXPANDED} agents after replicas")
    return team


def _team_errors(topology: Topology, team: list[tuple[int, str, int]], limits: dict) -> list[str]:
    """Topology-level rules: the roles a topology needs, and enough steps to run it at all."""
    count: dict[str, int] = {}
    for _, role, replicas in team:
        count[role] = count.get(role, 0) + replicas
    return topology.team_errors(count, limits)


def expand_ids(agent_id: str, replicas: int) -> list[str]:
    """Ids of an agent's replicas: the id itself when single, else `<id>-1` ... `<id>-n`."""
    if replicas == 1:
        return [agent_id]
    return [f"{agent_id}-{number}" for number in range(1, replicas + 1)]


def _check_id(agent: Mapping, path: str, errors: list[str]) -> str | None:
    value = agent.get("id")
    if value is None:
        errors.append(f"{path}.id: required")
    elif not isinstance(value, str) or not _AGENT_ID.fullmatch(value):
        errors.append(
            f"{path}.id: must be 1-48 letters, digits, '-' or '_', starting with a letter or digit"
        )
    else:
        return value
    return None


def _check_role(
    agent: Mapping, path: str, topology: Topology | None, errors: list[str]
) -> str | None:
    value = agent.get("role")
    if value is None:
        errors.append(f"{path}.role: required")
        return None
    allowed = None if topology is None else topology.roles
    if allowed is not None:
        if value not in allowed:
            errors.append(f"{path}.role: must be one of {', '.join(allowed)} for {topology.name}")
            return None
        return value
    if not isinstance(value, str) or not _ROLE.fullmatch(value):
        errors.append(f"{path}.role: must be a lowercase word of at most 32 characters")
        return None
    return value


def _check_model(
    agent: Mapping, path: str, known_models: set[str] | None, errors: list[str]
) -> None:
    value = agent.get("model")
    if value is None:
        errors.append(f"{path}.model: required")
    elif not isinstance(value, str) or not value.strip() or len(value) > MAX_MODEL_CHARS:
        errors.append(f"{path}.model: must be a model name of at most {MAX_MODEL_CHARS} characters")
    elif known_models is not None and value not in known_models:
        errors.append(f"{path}.model: unknown model '{value}'")


def _check_tools(
    agent: Mapping, path: str, known_tools: set[str] | None, errors: list[str]
) -> None:
    if "tools" not in agent:
        return
    value = agent["tools"]
    if not isinstance(value, list) or len(value) > MAX_AGENT_TOOLS:
        errors.append(f"{path}.tools: must be a list of at most {MAX_AGENT_TOOLS} tool names")
        return
    seen = set()
    for number, name in enumerate(value):
        where = f"{path}.tools[{number}]"
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            errors.append(
                f"{where}: must be a tool name of 1-{MAX_TOOL_NAME_CHARS} letters, digits, '_' "
                "or '-', starting with a letter"
            )
        elif name in seen:
            errors.append(f"{where}: '{name}' is listed twice")
        elif known_tools is not None and name not in known_tools:
            errors.append(f"{where}: unknown tool '{name}'")
        seen.add(name)


def _check_approval(agent: Mapping, path: str, errors: list[str]) -> None:
    """`requires_approval`: true (every tool call of the agent), false, or tools it lists."""
    value = agent.get("requires_approval", False)
    if isinstance(value, bool):
        return
    listed = agent.get("tools") if isinstance(agent.get("tools"), list) else []
    if not isinstance(value, list):
        errors.append(f"{path}.requires_approval: must be true, false or a list of its tools")
        return
    for number, name in enumerate(value):
        if name not in listed:
            errors.append(
                f"{path}.requires_approval[{number}]: '{name}' is not one of the agent's tools"
            )


def _check_text(data: Mapping, key: str, path: str, errors: list[str]) -> None:
    value = data.get(key, "")
    if not isinstance(value, str):
        errors.append(f"{path}: must be a string")
    elif len(value) > MAX_INSTRUCTIONS_CHARS:
        errors.append(f"{path}: must be at most {MAX_INSTRUCTIONS_CHARS} characters")


def _unknown_fields(data: Mapping, allowed: tuple[str, ...], *, prefix: str) -> list[str]:
    return [f"{prefix}{key}: unknown field" for key in data if key not in allowed]


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but `max_tokens: true` is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in_range(value: Any, low: int, high: int) -> bool:
    return _is_int(value) and low <= value <= high
