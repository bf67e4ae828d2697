"""/v1/templates (seed 002): the list's exact shape, the YAML of one template as
application/yaml, and the workspace a call acts in (API key, JWT + Sverm-Workspace)."""

import pytest
import yaml
from django.urls import include, path
from drf_spectacular.generators import SchemaGenerator

from accounts.roles import Role
from accounts.services import workspace_create
from templates_app.models import SwarmTemplate
from tests.conftest import assert_v1_error
from tests.factories import make_template
from tests.templates_app.definitions import BUILTIN_IDS, SEQUENTIAL_YAML

pytestmark = pytest.mark.django_db

SEED_TEMPLATE_KEYS = {"id", "name", "description", "topology", "estimated_cost_range"}


def listed(response) -> dict[str, dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"templates"}
    assert isinstance(body["templates"], list)
    for item in body["templates"]:
        assert set(item) == SEED_TEMPLATE_KEYS
    return {item["id"]: item for item in body["templates"]}


def test_list_has_exactly_the_seed_shape(key_client, workspace):
    make_template(workspace, "mine", name="Mine")
    client, _, _ = key_client(workspace, Role.VIEWER)
    templates = listed(client.get("/v1/templates"))
    assert set(templates) == BUILTIN_IDS | {"mine"}
    research = templates["research-swarm-v1"]
    assert research["name"] == "Research Swarm"
    assert research["description"] == "Investigates a topic and produces a report"
    assert research["topology"] == "hierarchical"
    assert research["estimated_cost_range"].startswith("$")
    assert " - $" in research["estimated_cost_range"]
    assert templates["mine"]["topology"] == "parallel"


def test_builtins_come_first_then_by_id(key_client, workspace):
    make_template(workspace, "aaa-first-by-id")
    client, _, _ = key_client(workspace)
    order = list(listed(client.get("/v1/templates")))
    assert order == [*sorted(BUILTIN_IDS), "aaa-first-by-id"]


def test_api_keys_act_in_their_own_workspace(key_client, user, workspace, other_workspace):
    second = workspace_create(name="Second", owner=user)
    make_template(workspace, "mine")
    make_template(second, "second-team")
    make_template(other_workspace, "theirs")
    client, _, _ = key_client(workspace)
    assert set(listed(client.get("/v1/templates"))) == BUILTIN_IDS | {"mine"}
    assert client.get("/v1/templates/mine").status_code == 200
    for hidden in ("second-team", "theirs"):
        error = assert_v1_error(client.get(f"/v1/templates/{hidden}"), 404, "not_found")
        assert error["message"] == f"Template {hidden} not found."
    # A key cannot switch workspace with the header.
    assert_v1_error(client.get("/v1/templates", HTTP_SVERM_WORKSPACE=second.pk), 404, "not_found")


def test_jwt_acts_in_the_header_workspace(api_client, user, workspace, other_workspace):
    second = workspace_create(name="Second", owner=user)
    make_template(workspace, "mine")
    make_template(second, "second-team")
    in_second = api_client.get("/v1/templates", HTTP_SVERM_WORKSPACE=second.pk)
    assert set(listed(in_second)) == BUILTIN_IDS | {"second-team"}
    in_first = api_client.get("/v1/templates", HTTP_SVERM_WORKSPACE=workspace.pk)
    assert set(listed(in_first)) == BUILTIN_IDS | {"mine"}
    response = api_client.get("/v1/templates/second-team", HTTP_SVERM_WORKSPACE=workspace.pk)
    assert_v1_error(response, 404, "not_found")
    foreign = api_client.get("/v1/templates", HTTP_SVERM_WORKSPACE=other_workspace.pk)
    assert_v1_error(foreign, 404, "not_found")


def test_jwt_without_header_uses_the_only_workspace(api_client, workspace, other_workspace):
    make_template(workspace, "mine")
    make_template(other_workspace, "theirs")
    assert set(listed(api_client.get("/v1/templates"))) == BUILTIN_IDS | {"mine"}


def test_get_returns_the_yaml_as_application_yaml(key_client, workspace):
    client, _, _ = key_client(workspace, Role.VIEWER)
    for template_id in sorted(BUILTIN_IDS):
        response = client.get(f"/v1/templates/{template_id}")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/yaml"
        stored = SwarmTemplate.objects.get(pk=template_id)
        text = response.content.decode("utf-8")
        assert text == stored.yaml
        document = yaml.safe_load(text)
        assert document.pop("name") == stored.name
        assert document.pop("description") == stored.description
        assert document == stored.definition


def test_get_a_workspace_template_written_as_json(key_client, workspace):
    template = make_template(workspace, "mine")
    client, _, _ = key_client(workspace)
    response = client.get("/v1/templates/mine", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml"
    assert yaml.safe_load(response.content) == template.definition


def test_get_keeps_the_yaml_as_written(key_client, workspace):
    make_template(workspace, "two-step", source=SEQUENTIAL_YAML, name=None)
    client, _, _ = key_client(workspace)
    assert client.get("/v1/templates/two-step").content.decode() == SEQUENTIAL_YAML


def test_unknown_template_is_404_in_the_seed_envelope(key_client, workspace):
    client, _, _ = key_client(workspace)
    error = assert_v1_error(client.get("/v1/templates/no-such-thing"), 404, "not_found")
    assert "no-such-thing" in error["message"]


def test_missing_credentials_are_401(anon_client):
    assert_v1_error(anon_client.get("/v1/templates"), 401, "unauthorized")
    assert_v1_error(anon_client.get("/v1/templates/research-swarm-v1"), 401, "unauthorized")


def test_templates_are_read_only_on_v1(key_client, workspace):
    client, _, _ = key_client(workspace, Role.ADMIN)
    assert_v1_error(client.post("/v1/templates", {}, format="json"), 405, "method_not_allowed")
    response = client.delete("/v1/templates/research-swarm-v1")
    assert_v1_error(response, 405, "method_not_allowed")
    assert SwarmTemplate.objects.filter(pk="research-swarm-v1").exists()


def test_schema_documents_the_yaml_media_type():
    # This app's routes only, mounted as sverm/urls.py mounts them.
    patterns = [path("api/", include("templates_app.urls")),
                path("v1/", include("templates_app.urls_v1"))]  # fmt: skip
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    operation = schema["paths"]["/v1/templates/{id}"]["get"]
    # The schema of the YAML document a parser reads from the body (what schemathesis checks).
    (media,) = operation["responses"]["200"]["content"].items()
    assert media[0] == "application/yaml"
    document = media[1]["schema"]
    assert document["type"] == "object" and document["required"] == ["topology", "agents"]
    assert document["properties"]["agents"]["items"]["required"] == ["id", "role", "model"]
    assert set(operation["responses"]["404"]["content"]) == {"application/json"}
    listing = schema["paths"]["/v1/templates"]["get"]["responses"]["200"]
    ref = listing["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == {"templates"}
    assert set(schema["components"]["schemas"]["V1Template"]["properties"]) == SEED_TEMPLATE_KEYS
    assert {"get", "post"} <= set(schema["paths"]["/api/templates"])
    assert {"get", "patch", "delete"} <= set(schema["paths"]["/api/templates/{id}"])
