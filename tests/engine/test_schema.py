"""Definition validation (errors that name the path) and the Definition value built from it."""

import copy

import pytest

from swarms.engine.schema import validate_definition
from swarms.engine.types import AgentSpec, Definition, Limits

from .fakes import MODEL, agent, definition_dict

VALID = {
    "version": 1,
    "topology": "hierarchical",
    "instructions": "Be precise.",
    "limits": {"max_parallel": 4, "max_steps": 12, "rounds": 2},
    "agents": [
        {"id": "manager", "role": "manager", "model": MODEL, "instructions": "Plan.",
         "max_tokens": 1024},
        {"id": "researcher", "role": "worker", "model": MODEL, "max_tokens": 1024, "replicas": 3},
        {"id": "writer", "role": "writer", "model": MODEL, "max_tokens": 2048},
    ],
}  # fmt: skip


TOPOLOGY_CHOICES = "topology: must be one of debate, hierarchical, parallel, sequential"
MAX_TOKENS_RANGE = "agents[0].max_tokens: must be an integer from 1 to 32768"
MAX_PARALLEL_RANGE = "limits.max_parallel: must be an integer from 1 to 64"
BAD_ID = "agents[0].id: must be 1-48 letters, digits, '-' or '_', starting with a letter or digit"
BAD_MODEL = "agents[0].model: must be a model name of at most 200 characters"
HIERARCHICAL_ROLES = "agents[2].role: must be one of manager, worker, writer for hierarchical"
REPLICAS_ROLE = "agents[2].replicas: only worker and debater agents can have replicas"
FEW_STEPS = "limits.max_steps: hierarchical needs at least 3 (plan, work, synthesis)"
ONE_MANAGER = "agents: hierarchical needs exactly one manager"


def with_changes(change) -> dict:
    data = copy.deepcopy(VALID)
    change(data)
    return data


@pytest.mark.parametrize("topology", ["hierarchical", "sequential", "parallel", "debate"])
def test_every_topology_has_a_valid_example(topology):
    assert validate_definition(definition_dict(topology)) == []


def test_valid_definition_has_no_errors_even_with_known_models():
    assert validate_definition(VALID) == []
    assert validate_definition(VALID, known_models={MODEL}) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["agents"][2].update(model="gpt-9"), "agents[2].model: unknown model 'gpt-9'"),
        (
            lambda d: d.update(topology="swarm"),
            TOPOLOGY_CHOICES,
        ),
        (lambda d: d.update(topology=7), TOPOLOGY_CHOICES),
        (lambda d: d.pop("topology"), "topology: required"),
        (lambda d: d["agents"][0].update(role="worker"), ONE_MANAGER),
        (
            lambda d: d["agents"].append(agent("boss", "manager")),
            ONE_MANAGER,
        ),
        (lambda d: d["agents"].pop(1), "agents: hierarchical needs at least one worker"),
        (lambda d: d["agents"][0].update(max_tokens=0), MAX_TOKENS_RANGE),
        (lambda d: d["agents"][0].update(max_tokens=40000), MAX_TOKENS_RANGE),
        (lambda d: d["agents"][0].update(max_tokens="1024"), MAX_TOKENS_RANGE),
        (lambda d: d["agents"][0].update(max_tokens=True), MAX_TOKENS_RANGE),
        (lambda d: d["limits"].update(max_parallel=0), MAX_PARALLEL_RANGE),
        (lambda d: d["limits"].update(max_parallel=65), MAX_PARALLEL_RANGE),
        (
            lambda d: d["limits"].update(rounds=2.5),
            "limits.rounds: must be an integer from 1 to 20",
        ),
        (lambda d: d["limits"].update(timeout=3), "limits.timeout: unknown field"),
        (lambda d: d.update(limits=[1]), "limits: must be a mapping"),
        (lambda d: d["agents"][1].update(colour="red"), "agents[1].colour: unknown field"),
        (lambda d: d.update(owner="me"), "owner: unknown field"),
        (
            lambda d: d["agents"][2].update(id="manager"),
            "agents[2].id: duplicate agent id 'manager'",
        ),
        (
            lambda d: d["agents"][2].update(id="researcher-2"),
            "agents[2].id: duplicate agent id 'researcher-2'",
        ),
        (lambda d: d["agents"][0].update(id="bad id!"), BAD_ID),
        (lambda d: d["agents"][0].pop("model"), "agents[0].model: required"),
        (lambda d: d["agents"][0].update(model=""), BAD_MODEL),
        (lambda d: d["agents"][0].pop("role"), "agents[0].role: required"),
        (lambda d: d["agents"][2].update(role="judge"), HIERARCHICAL_ROLES),
        (lambda d: d["agents"][2].update(replicas=2), REPLICAS_ROLE),
        (
            lambda d: d["agents"][1].update(replicas=0),
            "agents[1].replicas: must be an integer from 1 to 16",
        ),
        (
            lambda d: d["agents"][0].update(instructions=["x"]),
            "agents[0].instructions: must be a string",
        ),
        (lambda d: d.update(instructions=None), "instructions: must be a string"),
        (lambda d: d.update(agents=[]), "agents: must be a non-empty list of agents"),
        (lambda d: d.update(agents={"manager": {}}), "agents: must be a non-empty list of agents"),
        (lambda d: d.pop("agents"), "agents: required"),
        (lambda d: d["agents"].__setitem__(1, "researcher"), "agents[1]: must be a mapping"),
        (lambda d: d.update(version=2), "version: must be 1"),
        (lambda d: d["limits"].update(max_steps=2), FEW_STEPS),
    ],
)
def test_errors_name_the_path(change, expected):
    errors = validate_definition(with_changes(change), known_models={MODEL})
    assert expected in errors


def test_not_a_mapping():
    assert validate_definition(["topology"]) == ["definition: must be a mapping"]


def test_reports_every_problem_at_once():
    data = with_changes(
        lambda d: (d["agents"][0].update(max_tokens=0), d["agents"][1].update(colour=1))
    )
    errors = validate_definition(data)
    assert MAX_TOKENS_RANGE in errors
    assert "agents[1].colour: unknown field" in errors


@pytest.mark.parametrize(
    ("topology", "agents", "limits", "expected"),
    [
        ("parallel", [agent("w", "worker")], {}, "agents: parallel needs exactly one aggregator"),
        ("parallel", [agent("a", "aggregator")], {}, "agents: parallel needs at least one worker"),
        (
            "parallel",
            [agent("w", "worker", replicas=4), agent("a", "aggregator")],
            {"max_steps": 4},
            "limits.max_steps: parallel needs at least 5 (one per worker, plus the aggregator)",
        ),
        (
            "debate",
            [agent("d", "debater"), agent("j", "judge")],
            {},
            "agents: debate needs at least two debaters",
        ),
        (
            "debate",
            [agent("d", "debater", replicas=2)],
            {},
            "agents: debate needs exactly one judge",
        ),
        (
            "debate",
            [agent("d", "debater", replicas=2), agent("j", "judge")],
            {"rounds": 3, "max_steps": 6},
            "limits.max_steps: debate needs at least 7 (rounds x debaters + the judge)",
        ),
        (
            "sequential",
            [agent("a", "drafter"), agent("b", "editor")],
            {"max_steps": 1},
            "limits.max_steps: sequential needs at least 2 (one per agent)",
        ),
        (
            "sequential",
            [agent("a", "Drafter!")],
            {},
            "agents[0].role: must be a lowercase word of at most 32 characters",
        ),
        (
            "sequential",
            [agent("a", "worker", replicas=2)],
            {},
            "agents[0].replicas: sequential agents cannot have replicas",
        ),
        (
            "hierarchical",
            [
                agent("m", "manager"),
                agent("w", "worker"),
                agent("x", "writer"),
                agent("y", "writer"),
            ],
            {},
            "agents: hierarchical allows at most one writer",
        ),
    ],
)
def test_topology_rules(topology, agents, limits, expected):
    errors = validate_definition({"topology": topology, "agents": agents, "limits": limits})
    assert expected in errors


def test_from_dict_builds_frozen_values_and_expands_replicas():
    definition = Definition.from_dict(VALID)
    assert definition.topology == "hierarchical"
    assert definition.instructions == "Be precise."
    assert definition.limits == Limits(max_parallel=4, max_steps=12, rounds=2)
    assert definition.agents[0] == AgentSpec(
        id="manager", role="manager", model=MODEL, instructions="Plan.", max_tokens=1024
    )
    assert [a.id for a in definition.expanded_agents()] == [
        "manager", "researcher-1", "researcher-2", "researcher-3", "writer",
    ]  # fmt: skip
    assert all(a.replicas == 1 for a in definition.expanded_agents())
    assert [a.id for a in definition.role("worker")] == [
        "researcher-1",
        "researcher-2",
        "researcher-3",
    ]
    with pytest.raises(AttributeError):
        definition.topology = "debate"


def test_from_dict_defaults_and_round_trip():
    definition = Definition.from_dict(
        {"topology": "sequential", "agents": [agent("solo", "writer")]}
    )
    assert definition.limits == Limits()
    assert definition.agents[0].max_tokens == 1024
    assert definition.agents[0].id == "solo"  # replicas 1 keeps the id
    assert Definition.from_dict(definition.to_dict()) == definition


def test_from_dict_raises_value_error_on_nonsense():
    with pytest.raises(ValueError, match=r"agents\[0\]\.max_tokens"):
        Definition.from_dict(with_changes(lambda d: d["agents"][0].update(max_tokens=-1)))
    with pytest.raises(ValueError, match="definition: must be a mapping"):
        Definition.from_dict("topology: hierarchical")


def test_constructing_an_invalid_definition_directly_is_refused():
    with pytest.raises(ValueError, match="hierarchical needs exactly one manager"):
        Definition(topology="hierarchical", agents=(AgentSpec("w", "worker", MODEL),))
    with pytest.raises(ValueError, match=r"limits\.max_parallel"):
        Definition(
            topology="sequential",
            agents=[AgentSpec("a", "writer", MODEL)],
            limits=Limits(max_parallel=0),
        )


def test_a_bad_field_does_not_cause_knock_on_team_errors():
    data = with_changes(lambda d: d["agents"][1].update(model="gpt-9", max_tokens=0))
    assert validate_definition(data, known_models={MODEL}) == [
        "agents[1].model: unknown model 'gpt-9'",
        "agents[1].max_tokens: must be an integer from 1 to 32768",
    ]
