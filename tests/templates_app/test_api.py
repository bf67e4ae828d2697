"""/api/templates: list (keyset, filter, orderBy), create from YAML or a definition, get, PATCH,
DELETE; roles, tenant isolation, read-only built-ins, and every kind of bad input."""

import copy

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.roles import Role
from accounts.services import workspace_create
from templates_app.models import SwarmTemplate
from tests.conftest import assert_problem
from tests.factories import make_template
from tests.templates_app.definitions import BUILTIN_IDS, PARALLEL, SEQUENTIAL_YAML, parallel

pytestmark = pytest.mark.django_db

TEMPLATE_FIELDS = {
    "id", "workspaceId", "name", "description", "topology", "builtIn", "definition", "yaml",
    "estimatedCostRange", "createdAt", "updatedAt",
}  # fmt: skip


def ids_of(response) -> list[str]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"data", "pageInfo"}
    return [item["id"] for item in body["data"]]


def fields_of(body) -> list[str]:
    return [error["field"] for error in body["errors"]]


OMIT = object()


def create(client, workspace, **body):
    """POST a valid template, changed by `body` (OMIT leaves a field out)."""
    payload = {"workspaceId": workspace.pk, "id": "my-team", "name": "My team"}
    payload.update(body)
    if "definition" not in payload and "yaml" not in payload:
        payload["definition"] = copy.deepcopy(PARALLEL)
    payload = {key: value for key, value in payload.items() if value is not OMIT}
    return client.post("/api/templates", payload, format="json")


# ---------------------------------------------------------------------------------------------
# List
# ---------------------------------------------------------------------------------------------
def test_list_shows_builtins_and_own_templates_only(api_client, workspace, other_workspace):
    make_template(workspace, "mine")
    make_template(other_workspace, "theirs")
    response = api_client.get("/api/templates", {"limit": 100})
    assert set(ids_of(response)) == BUILTIN_IDS | {"mine"}
    by_id = {item["id"]: item for item in response.json()["data"]}
    assert set(by_id["mine"]) == TEMPLATE_FIELDS
    assert by_id["mine"]["workspaceId"] == workspace.pk and by_id["mine"]["builtIn"] is False
    research = by_id["research-swarm-v1"]
    assert research["workspaceId"] is None and research["builtIn"] is True
    assert research["topology"] == "hierarchical"
    assert research["estimatedCostRange"].startswith("$")
    assert yaml.safe_load(research["yaml"])["name"] == research["name"] == "Research Swarm"
    assert response.json()["pageInfo"]["total"] == len(BUILTIN_IDS) + 1


def test_list_in_one_workspace(api_client, user, workspace):
    second = workspace_create(name="Second", owner=user)
    make_template(workspace, "mine")
    make_template(second, "second-team")
    assert set(ids_of(api_client.get("/api/templates", {"workspace_id": second.pk}))) == (
        BUILTIN_IDS | {"second-team"}
    )


def test_list_in_a_foreign_workspace_is_404(api_client, other_workspace):
    assert_problem(api_client.get("/api/templates", {"workspace_id": other_workspace.pk}), 404,
                   "not_found")  # fmt: skip


def test_list_filter_and_order(api_client, workspace):
    make_template(workspace, "zeta-team", name="Zeta")
    make_template(workspace, "alpha-team", name="Alpha")
    own = api_client.get(
        "/api/templates",
        {"filter": '{"workspaceId": {"isNull": false}}', "orderBy": '[{"name": "asc"}]'},
    )
    assert ids_of(own) == ["alpha-team", "zeta-team"]
    debates = api_client.get("/api/templates", {"filter": '{"topology": {"eq": "debate"}}'})
    assert ids_of(debates) == ["debate-swarm-v1"]
    builtins = api_client.get(
        "/api/templates",
        {"filter": '{"workspaceId": {"isNull": true}}', "orderBy": '[{"id": "asc"}]'},
    )
    assert ids_of(builtins) == sorted(BUILTIN_IDS)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"filter": '{"topology": {"eq": "mesh"}}'}, "topology"),
        ({"filter": '{"yaml": {"eq": "x"}}'}, "unknown field 'yaml'"),
        ({"orderBy": '[{"definition": "asc"}]'}, "cannot order by 'definition'"),
        ({"filter": "{not json"}, "not valid JSON"),
    ],
)
def test_list_refuses_bad_filters(api_client, params, fragment):
    body = assert_problem(api_client.get("/api/templates", params), 400, "invalid_request")
    assert fragment in body["detail"]


def test_list_pages_with_keyset_cursors(api_client, workspace):
    for n in range(3):
        make_template(workspace, f"team-{n}")
    seen, after = [], None
    while True:
        params = {"limit": 4, "orderBy": '[{"id": "asc"}]'}
        if after:
            params["after"] = after
        response = api_client.get("/api/templates", params)
        seen += ids_of(response)
        page = response.json()["pageInfo"]
        if not page["hasNextPage"]:
            break
        after = page["endCursor"]
    assert seen == sorted(BUILTIN_IDS | {"team-0", "team-1", "team-2"})


def test_list_query_count_does_not_grow_with_rows(api_client, workspace):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api_client.get("/api/templates").status_code == 200
        return len(queries)

    make_template(workspace, "team-0")
    few = count()
    for n in range(1, 8):
        make_template(workspace, f"team-{n}")
    assert count() == few


def test_viewer_reads(member_of, client_for, workspace):
    make_template(workspace, "mine")
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert "mine" in ids_of(viewer.get("/api/templates"))
    assert viewer.get("/api/templates/mine").json()["id"] == "mine"


def test_anonymous_is_401(anon_client):
    assert_problem(anon_client.get("/api/templates"), 401, "unauthorized")


# ---------------------------------------------------------------------------------------------
# Create
# ---------------------------------------------------------------------------------------------
def test_admin_creates_from_yaml(api_client, workspace, user):
    response = create(api_client, workspace, id="two-step", name=OMIT, yaml=SEQUENTIAL_YAML)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == TEMPLATE_FIELDS
    assert body["id"] == "two-step" and body["workspaceId"] == workspace.pk
    assert (body["name"], body["description"]) == ("Two Step", "Drafts, then edits")
    assert body["topology"] == "sequential" and body["builtIn"] is False
    assert body["yaml"] == SEQUENTIAL_YAML
    assert "name" not in body["definition"]
    stored = SwarmTemplate.objects.get(pk="two-step")
    assert stored.created_by == user and stored.definition == body["definition"]


def test_admin_creates_from_a_definition(api_client, workspace):
    response = create(api_client, workspace, description="Two workers")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["definition"] == PARALLEL
    assert yaml.safe_load(body["yaml"]) == PARALLEL
    assert (body["name"], body["description"], body["topology"]) == (
        "My team", "Two workers", "parallel",
    )  # fmt: skip


def test_admin_api_key_creates(key_client, workspace):
    client, _, _ = key_client(workspace, Role.ADMIN)
    assert create(client, workspace).status_code == 201


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER])
def test_operators_and_viewers_cannot_create(member_of, client_for, workspace, role):
    client = client_for(member_of(workspace, role))
    assert_problem(create(client, workspace), 403, "forbidden")
    assert not SwarmTemplate.objects.filter(pk="my-team").exists()


def test_operator_api_key_cannot_create(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    assert_problem(create(client, workspace), 403, "forbidden")


def test_create_in_a_foreign_workspace_is_404(api_client, other_workspace):
    assert_problem(create(api_client, other_workspace), 404, "not_found")
    assert not SwarmTemplate.objects.filter(pk="my-team").exists()


@pytest.mark.parametrize("taken", ["research-swarm-v1", "in-use", "elsewhere"])
def test_a_taken_id_is_409(api_client, workspace, other_workspace, taken):
    make_template(workspace, "in-use")
    make_template(other_workspace, "elsewhere")
    before = SwarmTemplate.objects.count()
    body = assert_problem(create(api_client, workspace, id=taken), 409, "conflict")
    assert taken in body["detail"]
    assert SwarmTemplate.objects.count() == before


@pytest.mark.parametrize(
    "bad_id", ["ab", "Research", "-team", "team-", "my_team", "a b c", "x" * 101, "team/one"]
)
def test_a_bad_slug_is_400(api_client, workspace, bad_id):
    body = assert_problem(create(api_client, workspace, id=bad_id), 400, "invalid_request")
    assert set(fields_of(body)) == {"id"}


def test_unknown_fields_are_400(api_client, workspace):
    body = assert_problem(create(api_client, workspace, colour="red"), 400, "invalid_request")
    assert fields_of(body) == ["colour"]


def test_definition_and_yaml_are_exclusive(api_client, workspace):
    both = create(api_client, workspace, yaml=SEQUENTIAL_YAML, definition=PARALLEL)
    assert "not both" in assert_problem(both, 400, "invalid_request")["detail"]
    neither = api_client.post(
        "/api/templates", {"workspaceId": workspace.pk, "id": "my-team", "name": "x"},
        format="json",
    )  # fmt: skip
    assert "`definition`" in assert_problem(neither, 400, "invalid_request")["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"definition": "topology: parallel"}, "definition"),
        ({"definition": None}, "definition"),
        ({"yaml": {"topology": "parallel"}}, "yaml"),
        ({"yaml": ""}, "yaml"),
        ({"name": ""}, "name"),
        ({"workspaceId": 5, "name": "x" * 201}, "name"),
    ],
)
def test_wrong_types_are_400(api_client, workspace, body, field):
    assert field in fields_of(assert_problem(create(api_client, workspace, **body), 400,
                                             "invalid_request"))  # fmt: skip


def test_bad_yaml_is_400_with_its_line(api_client, workspace):
    response = create(api_client, workspace, yaml="topology: parallel\nagents: [\n")
    body = assert_problem(response, 400, "invalid_request")
    assert fields_of(body) == ["yaml"]
    assert "line 3, column 1" in body["detail"]
    assert not SwarmTemplate.objects.filter(pk="my-team").exists()


def test_invalid_definition_is_400_naming_the_path(api_client, workspace):
    definition = parallel()
    definition["agents"][2]["model"] = "gpt-9"
    body = assert_problem(create(api_client, workspace, definition=definition), 400,
                          "invalid_request")  # fmt: skip
    assert body["errors"] == [{
        "field": "definition.agents[2].model", "pointer": "#/definition/agents/2/model",
        "detail": "unknown model 'gpt-9'", "code": "invalid",
    }]  # fmt: skip
    assert "definition.agents[2].model: unknown model 'gpt-9'" in body["detail"]
    assert not SwarmTemplate.objects.filter(pk="my-team").exists()


def test_invalid_yaml_definition_is_400_naming_the_path(api_client, workspace):
    source = SEQUENTIAL_YAML.replace("max_steps: 2", "max_steps: 1")
    body = assert_problem(create(api_client, workspace, name=OMIT, yaml=source), 400,
                          "invalid_request")  # fmt: skip
    assert fields_of(body) == ["definition.limits.max_steps"]
    assert body["errors"][0]["pointer"] == "#/definition/limits/max_steps"


def test_a_name_contradicting_the_yaml_is_400(api_client, workspace):
    body = assert_problem(create(api_client, workspace, name="Other", yaml=SEQUENTIAL_YAML), 400,
                          "invalid_request")  # fmt: skip
    assert fields_of(body) == ["definition.name"]


def test_an_oversized_yaml_is_400(api_client, workspace):
    body = assert_problem(create(api_client, workspace, yaml=SEQUENTIAL_YAML + "#" * 70_000),
                          400, "invalid_request")  # fmt: skip
    assert fields_of(body) == ["yaml"] and "64 KiB" in body["detail"]


# ---------------------------------------------------------------------------------------------
# Get, update, delete
# ---------------------------------------------------------------------------------------------
def test_any_authenticated_user_reads_builtins(make_user, client_for):
    loner = client_for(make_user())  # a member of no workspace
    response = loner.get("/api/templates/research-swarm-v1")
    assert response.status_code == 200
    assert response.json()["builtIn"] is True
    assert set(ids_of(loner.get("/api/templates"))) == BUILTIN_IDS


def test_another_workspaces_template_is_404(api_client, other_workspace):
    make_template(other_workspace, "theirs")
    for method in ("get", "patch", "delete"):
        response = getattr(api_client, method)("/api/templates/theirs", {}, format="json")
        assert_problem(response, 404, "not_found")
    assert SwarmTemplate.objects.filter(pk="theirs").exists()
    assert_problem(api_client.get("/api/templates/no-such-template"), 404, "not_found")


def test_admin_patches_name_and_definition(api_client, workspace):
    make_template(workspace, "mine")
    response = api_client.patch("/api/templates/mine", {"name": "Renamed"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Renamed"
    response = api_client.patch("/api/templates/mine", {"yaml": SEQUENTIAL_YAML}, format="json")
    body = response.json()
    assert (body["name"], body["topology"], body["yaml"]) == (
        "Two Step", "sequential", SEQUENTIAL_YAML,
    )  # fmt: skip
    stored = SwarmTemplate.objects.get(pk="mine")
    assert stored.topology == "sequential" and stored.definition == body["definition"]


def test_patch_refuses_bad_input_and_changes_nothing(api_client, workspace):
    template = make_template(workspace, "mine")
    cases = [
        ({"definition": {"topology": "mesh", "agents": []}}, "definition.topology"),
        ({"yaml": "agents: ["}, "yaml"),
        ({"id": "renamed"}, "id"),
        ({"workspaceId": "wsp_x"}, "workspaceId"),
    ]
    for body, field in cases:
        problem = assert_problem(api_client.patch("/api/templates/mine", body, format="json"),
                                 400, "invalid_request")  # fmt: skip
        assert field in fields_of(problem), body
    both = api_client.patch(
        "/api/templates/mine", {"yaml": SEQUENTIAL_YAML, "definition": PARALLEL}, format="json"
    )
    assert_problem(both, 400, "invalid_request")
    stored = SwarmTemplate.objects.get(pk="mine")
    assert (stored.definition, stored.yaml, stored.updated_at) == (
        template.definition, template.yaml, template.updated_at,
    )  # fmt: skip


def test_operators_cannot_patch_or_delete(member_of, client_for, workspace):
    make_template(workspace, "mine")
    operator = client_for(member_of(workspace, Role.OPERATOR))
    assert_problem(operator.patch("/api/templates/mine", {"name": "x"}, format="json"), 403,
                   "forbidden")  # fmt: skip
    assert_problem(operator.delete("/api/templates/mine"), 403, "forbidden")
    assert SwarmTemplate.objects.get(pk="mine").name == "Team"


def test_builtins_are_403_on_writes_even_for_staff(api_client, make_user, client_for):
    staff = client_for(make_user(is_staff=True))
    for client in (api_client, staff):
        assert_problem(client.patch("/api/templates/research-swarm-v1", {"name": "Mine"},
                                    format="json"), 403, "forbidden")  # fmt: skip
        assert_problem(client.delete("/api/templates/research-swarm-v1"), 403, "forbidden")
    assert SwarmTemplate.objects.get(pk="research-swarm-v1").name == "Research Swarm"


def test_admin_deletes(api_client, workspace):
    make_template(workspace, "mine")
    response = api_client.delete("/api/templates/mine")
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert not SwarmTemplate.objects.filter(pk="mine").exists()
    assert_problem(api_client.get("/api/templates/mine"), 404, "not_found")
