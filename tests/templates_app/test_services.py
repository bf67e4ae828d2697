"""Template services and selectors: parsing and validation with paths, the cost range, the
built-ins that `migrate` installs, and which templates a caller may read."""

import copy
import logging
import re
from decimal import Decimal

import pytest
import yaml

from accounts.roles import Role
from accounts.tenancy import Caller
from billing.models import ModelPrice
from sverm.api.errors import Conflict, Forbidden, InvalidRequest, NotFound
from swarms.engine import validate_definition
from swarms.providers import price_map
from templates_app import selectors, services
from templates_app.models import SwarmTemplate
from tests.factories import make_template
from tests.templates_app.definitions import BUILTIN_IDS, PARALLEL, SEQUENTIAL_YAML, parallel

pytestmark = pytest.mark.django_db

RANGE = re.compile(r"^\$(\d+\.\d{2,}) - \$(\d+\.\d{2,})$")


def bounds(cost_range: str) -> tuple[Decimal, Decimal]:
    match = RANGE.fullmatch(cost_range)
    assert match, cost_range
    return Decimal(match[1]), Decimal(match[2])


def parse_error(source) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        services.definition_parse(source=source)
    return caught.value


# ---------------------------------------------------------------------------------------------
# Built-ins
# ---------------------------------------------------------------------------------------------
def test_migrate_installs_every_builtin():
    builtins = SwarmTemplate.objects.filter(workspace__isnull=True)
    assert set(builtins.values_list("id", flat=True)) == BUILTIN_IDS
    assert set(services.builtin_sources()) == BUILTIN_IDS
    assert set(builtins.values_list("topology", flat=True)) == {
        "hierarchical", "parallel", "sequential", "debate",
    }  # fmt: skip


@pytest.mark.parametrize("template_id", sorted(BUILTIN_IDS))
def test_each_builtin_validates_against_priced_models(template_id):
    template = SwarmTemplate.objects.get(pk=template_id)
    assert template.built_in
    assert validate_definition(template.definition, known_models=set(price_map())) == []
    assert template.topology == template.definition["topology"]
    document = yaml.safe_load(template.yaml)
    assert document.pop("name") == template.name and template.name
    assert document.pop("description") == template.description and template.description
    assert document == template.definition
    assert template.yaml == services.builtin_sources()[template_id]


def test_research_swarm_is_a_manager_three_researchers_and_a_writer():
    definition = SwarmTemplate.objects.get(pk="research-swarm-v1").definition
    assert definition["topology"] == "hierarchical"
    team = [(a["role"], a.get("replicas", 1)) for a in definition["agents"]]
    assert team == [("manager", 1), ("worker", 3), ("writer", 1)]


def test_sync_is_idempotent_and_repairs_drift():
    assert services.templates_sync_builtins() == []  # migrate already installed them
    research = SwarmTemplate.objects.get(pk="research-swarm-v1")
    stamp = research.updated_at
    SwarmTemplate.objects.filter(pk="research-swarm-v1").update(name="Tampered", definition={})
    SwarmTemplate.objects.filter(pk="debate-swarm-v1").delete()

    assert sorted(services.templates_sync_builtins()) == ["debate-swarm-v1", "research-swarm-v1"]
    research.refresh_from_db()
    assert research.name == "Research Swarm"
    assert research.definition["topology"] == "hierarchical"
    assert research.updated_at > stamp
    assert SwarmTemplate.objects.get(pk="debate-swarm-v1").built_in
    assert services.templates_sync_builtins() == []


def test_sync_leaves_a_workspace_template_holding_a_builtin_id(workspace, caplog):
    SwarmTemplate.objects.filter(pk="debate-swarm-v1").delete()
    mine = make_template(workspace, "team-template")
    SwarmTemplate.objects.filter(pk=mine.pk).update(id="debate-swarm-v1")
    with caplog.at_level(logging.WARNING, logger="templates_app.services"):
        assert services.templates_sync_builtins() == []
    assert SwarmTemplate.objects.get(pk="debate-swarm-v1").workspace_id == workspace.pk
    assert "debate-swarm-v1" in caplog.text


# ---------------------------------------------------------------------------------------------
# definition_parse
# ---------------------------------------------------------------------------------------------
def test_yaml_is_kept_as_written_and_metadata_stripped():
    definition, text = services.definition_parse(source=SEQUENTIAL_YAML)
    assert text == SEQUENTIAL_YAML
    assert "name" not in definition and "description" not in definition
    assert definition["topology"] == "sequential"
    assert [a["id"] for a in definition["agents"]] == ["drafter", "editor"]


def test_a_dict_is_dumped_to_yaml_that_parses_back():
    source = {"name": "Team", **copy.deepcopy(PARALLEL)}
    definition, text = services.definition_parse(source=source)
    assert definition == PARALLEL
    assert yaml.safe_load(text) == source
    assert list(yaml.safe_load(text)) == list(source)  # key order kept


def test_yaml_syntax_errors_name_line_and_column():
    error = parse_error("topology: parallel\nagents:\n  - id: a\n    role: [worker\n")
    assert error.status == 400
    (field_error,) = error.field_errors
    assert field_error["field"] == "yaml" and field_error["pointer"] == "#/yaml"
    assert re.search(r"line \d+, column \d+", field_error["detail"])
    assert field_error["detail"] in error.message


def test_yaml_mapping_value_error_points_at_its_line():
    error = parse_error("topology: parallel\nagents: - x: y: z\n")
    assert "line 2, column" in error.field_errors[0]["detail"]


@pytest.mark.parametrize(
    ("source", "kind"),
    [("- a\n- b\n", "list"), ("just text", "str"), ("", "nothing"), ("# only\n", "nothing")],
)
def test_a_document_that_is_not_a_mapping_is_refused(source, kind):
    error = parse_error(source)
    (field_error,) = error.field_errors
    assert field_error["field"] == "definition"
    assert field_error["pointer"] == "#/definition"
    assert kind in field_error["detail"]


def test_sources_over_64_kib_are_refused_and_under_accepted():
    padded = SEQUENTIAL_YAML + "#" * (services.MAX_SOURCE_BYTES - len(SEQUENTIAL_YAML))
    assert len(padded.encode()) == services.MAX_SOURCE_BYTES
    services.definition_parse(source=padded)
    error = parse_error(padded + "#")
    assert error.field_errors[0]["field"] == "yaml"
    assert "65537 bytes" in error.message


def test_a_dict_over_64_kib_as_yaml_is_refused():
    source = parallel(workers=4)
    for agent in source["agents"]:
        agent["instructions"] = "y" * 19_000  # each within the schema's 20,000
    error = parse_error(source)
    assert error.field_errors[0]["field"] == "definition"
    assert "64 KiB" in error.message


def test_deep_nesting_is_a_400_not_a_crash():
    error = parse_error("topology: " + "[" * 5000 + "]" * 5000)
    assert error.field_errors[0]["field"] == "yaml"


def test_unknown_model_names_its_path():
    source = copy.deepcopy(PARALLEL)
    source["agents"][2]["model"] = "gpt-9"
    error = parse_error(source)
    assert error.field_errors == [
        {
            "field": "definition.agents[2].model",
            "pointer": "#/definition/agents/2/model",
            "detail": "unknown model 'gpt-9'",
            "code": "invalid",
        }
    ]
    assert "definition.agents[2].model: unknown model 'gpt-9'" in error.message


def test_every_problem_is_listed_with_its_path():
    source = copy.deepcopy(PARALLEL)
    source["limits"]["max_steps"] = 0
    source["agents"][0]["max_tokens"] = "lots"
    source["agents"][1]["colour"] = "red"
    source["extra"] = True
    errors = {e["field"]: e for e in parse_error(source).field_errors}
    assert set(errors) == {
        "definition.limits.max_steps",
        "definition.agents[0].max_tokens",
        "definition.agents[1].colour",
        "definition.extra",
    }
    assert errors["definition.agents[1].colour"]["pointer"] == "#/definition/agents/1/colour"
    assert errors["definition.agents[1].colour"]["code"] == "unknown_field"
    assert errors["definition.extra"]["pointer"] == "#/definition/extra"
    assert errors["definition.limits.max_steps"]["pointer"] == "#/definition/limits/max_steps"


def test_missing_topology_is_required():
    source = copy.deepcopy(PARALLEL)
    del source["topology"]
    errors = parse_error(source).field_errors
    assert {"field": "definition.topology", "pointer": "#/definition/topology",
            "detail": "required", "code": "required"} in errors  # fmt: skip


def test_unknown_keys_with_odd_characters_get_escaped_pointers():
    source = copy.deepcopy(PARALLEL)
    source["agents"][0]["a/b: c"] = 1
    (error,) = parse_error(source).field_errors
    assert error["field"] == "definition.agents[0].a/b: c"
    assert error["pointer"] == "#/definition/agents/0/a~1b: c"


def test_nul_characters_are_refused_where_they_are():
    source = SEQUENTIAL_YAML.replace(
        "    max_tokens: 512\n  - id: editor", '    instructions: "a\\0b"\n    max_tokens: 512\n'
        "  - id: editor"
    )  # fmt: skip
    (error,) = parse_error(source).field_errors
    assert error["field"] == "definition.agents[0].instructions"
    assert error["pointer"] == "#/definition/agents/0/instructions"
    assert "NUL" in error["detail"]


@pytest.mark.parametrize(
    ("metadata", "field"),
    [({"name": 3}, "definition.name"), ({"name": " "}, "definition.name"),
     ({"description": ["x"]}, "definition.description")],
)  # fmt: skip
def test_metadata_must_be_text(metadata, field):
    errors = parse_error({**copy.deepcopy(PARALLEL), **metadata}).field_errors
    assert [e["field"] for e in errors] == [field]


# ---------------------------------------------------------------------------------------------
# Cost range
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        ("0.0512", "0.4901", "$0.05 - $0.50"),
        ("0.05", "0.501", "$0.05 - $0.51"),  # the upper bound rounds up
        ("0.055", "1.2", "$0.05 - $1.20"),
        ("0.0034", "0.0091", "$0.003 - $0.010"),  # below a cent: more decimals
        ("0.00004", "0.0002", "$0.00004 - $0.00020"),
        ("0", "0", "$0.00 - $0.00"),
        ("12.3456", "40", "$12.34 - $40.00"),
    ],
)
def test_usd_range_formatting(low, high, expected):
    assert services.usd_range(Decimal(low), Decimal(high)) == expected


@pytest.mark.parametrize("template_id", sorted(BUILTIN_IDS))
def test_builtin_cost_ranges_are_ordered_and_not_zero(template_id):
    definition = SwarmTemplate.objects.get(pk=template_id).definition
    low, high = bounds(services.estimated_cost_range(definition))
    assert Decimal(0) < low <= high


def test_cost_range_grows_with_agents():
    small = bounds(services.estimated_cost_range(parallel(workers=1)))
    large = bounds(services.estimated_cost_range(parallel(workers=6)))
    assert small[0] < large[0] and small[1] < large[1]


def test_a_cheap_paid_model_never_shows_zero():
    definition = {"topology": "sequential", "limits": {"max_steps": 1}, "agents": [
        {"id": "one", "role": "step", "model": "gpt-4.1-nano", "max_tokens": 8}]}  # fmt: skip
    cost_range = services.estimated_cost_range(definition)
    low, high = bounds(cost_range)
    assert low > 0 and high > 0
    assert cost_range != "$0.00 - $0.00"


def test_a_free_model_costs_zero_and_an_unpriced_one_is_unknown():
    assert services.estimated_cost_range(parallel(model="llama-3.1-8b-instruct")) == (
        "$0.00 - $0.00"
    )
    ModelPrice.objects.filter(model="gpt-4o-mini").delete()
    assert services.estimated_cost_range(parallel()) == "unknown"


# ---------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------
def test_create_takes_name_and_description_from_the_yaml(workspace, user):
    template = services.template_create(
        workspace=workspace, template_id="two-step", source=SEQUENTIAL_YAML, created_by=user
    )
    assert (template.name, template.description) == ("Two Step", "Drafts, then edits")
    assert template.topology == "sequential" and template.yaml == SEQUENTIAL_YAML


def test_create_refuses_a_name_that_contradicts_the_yaml(workspace):
    with pytest.raises(InvalidRequest) as caught:
        services.template_create(
            workspace=workspace, template_id="two-step", source=SEQUENTIAL_YAML,
            name="Other", created_by=None,
        )  # fmt: skip
    assert [e["field"] for e in caught.value.field_errors] == ["definition.name"]
    assert not SwarmTemplate.objects.filter(pk="two-step").exists()


def test_create_needs_a_name_from_somewhere(workspace):
    with pytest.raises(InvalidRequest) as caught:
        services.template_create(
            workspace=workspace, template_id="nameless", source=PARALLEL, created_by=None
        )
    assert caught.value.field_errors[0]["field"] == "name"


def test_ids_are_one_namespace(workspace, other_workspace):
    make_template(other_workspace, "taken-id")
    for template_id in ("taken-id", "research-swarm-v1"):
        with pytest.raises(Conflict):
            make_template(workspace, template_id)


def test_builtins_are_read_only_for_services():
    research = SwarmTemplate.objects.get(pk="research-swarm-v1")
    with pytest.raises(Forbidden):
        services.template_update(template=research, data={"name": "Mine"})
    with pytest.raises(Forbidden):
        services.template_delete(template=research)
    assert SwarmTemplate.objects.get(pk="research-swarm-v1").name == "Research Swarm"


def test_update_follows_the_new_yaml_metadata(workspace):
    template = make_template(workspace)
    template = services.template_update(template=template, data={"source": SEQUENTIAL_YAML})
    assert (template.name, template.topology) == ("Two Step", "sequential")
    with pytest.raises(InvalidRequest):  # the stored YAML names it "Two Step"
        services.template_update(template=template, data={"name": "Renamed"})
    template.refresh_from_db()
    assert template.name == "Two Step"


# ---------------------------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------------------------
def test_template_get_sees_builtins_and_own_workspaces(workspace, other_workspace, user):
    mine = make_template(workspace, "mine")
    make_template(other_workspace, "theirs")
    caller = Caller(user_id=user.pk, roles={workspace.pk: Role.VIEWER})
    assert selectors.template_get(caller=caller, template_id="mine") == mine
    assert selectors.template_get(caller=caller, template_id="research-swarm-v1").built_in
    with pytest.raises(NotFound, match=r"^Template theirs not found\.$"):
        selectors.template_get(caller=caller, template_id="theirs")


def test_template_get_in_one_workspace(workspace, other_workspace, user):
    make_template(workspace, "mine")
    make_template(other_workspace, "theirs")
    both = Caller(user_id=user.pk, roles={workspace.pk: Role.ADMIN, other_workspace.pk: "viewer"})
    assert selectors.template_get(caller=both, template_id="mine", workspace_id=workspace.pk)
    with pytest.raises(NotFound):
        selectors.template_get(caller=both, template_id="theirs", workspace_id=workspace.pk)
    outsider = Caller(user_id=user.pk, roles={workspace.pk: Role.ADMIN})
    with pytest.raises(NotFound):
        selectors.template_get(
            caller=outsider, template_id="theirs", workspace_id=other_workspace.pk
        )
    found = selectors.template_get(
        caller=outsider, template_id="debate-swarm-v1", workspace_id=other_workspace.pk
    )
    assert found.built_in
