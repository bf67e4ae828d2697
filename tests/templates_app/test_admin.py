"""The template admin: changelist columns, filters and search; the YAML re-validated on save so an
invalid definition can never be stored; built-ins shown read-only and never deleted."""

import json
import re
from html import unescape

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from accounts.models import User
from templates_app.models import SwarmTemplate
from tests.conftest import PASSWORD
from tests.factories import make_template
from tests.templates_app.definitions import BUILTIN_IDS, SEQUENTIAL_YAML

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:templates_app_swarmtemplate_changelist"
ADD = "admin:templates_app_swarmtemplate_add"


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser(email="ops@example.com", password=PASSWORD)


@pytest.fixture
def admin_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def change_url(template_id: str) -> str:
    return reverse("admin:templates_app_swarmtemplate_change", args=[quote(template_id)])


def listed(client, **params) -> set[str]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200, response.content[:500]
    return {obj.pk for obj in response.context["cl"].result_list}


def form_data(template: SwarmTemplate, **changes) -> dict:
    data = {"name": template.name, "description": template.description, "yaml": template.yaml}
    data.update(changes)
    return data


def test_changelist_columns_filters_and_search(admin_client, workspace):
    make_template(workspace, "mine", name="Acme reviewers")
    response = admin_client.get(reverse(CHANGELIST))
    html = response.content.decode()
    assert "built in" in html and "Acme" in html  # the workspace column
    assert listed(admin_client) == BUILTIN_IDS | {"mine"}
    assert listed(admin_client, topology__exact="debate") == {"debate-swarm-v1"}
    assert listed(admin_client, built_in="yes") == BUILTIN_IDS
    assert listed(admin_client, built_in="no") == {"mine"}
    assert listed(admin_client, q="reviewers") == {"mine"}
    assert listed(admin_client, q="research-swarm") == {
        "research-swarm-v1",
        "web-research-swarm-v1",
    }


def test_change_page_shows_the_definition_pretty_printed(admin_client, workspace):
    template = make_template(workspace, "mine")
    html = admin_client.get(change_url("mine")).content.decode()
    pretty = re.search(r"<pre>(\{\n  .*?)</pre>", html, re.DOTALL)
    assert pretty, html
    assert json.loads(unescape(pretty[1])) == template.definition
    assert "\n  &quot;topology&quot;: &quot;parallel&quot;,\n" in pretty[1]
    assert 'name="definition"' not in html  # shown, not editable


def test_editing_the_yaml_revalidates_and_updates_the_definition(admin_client, workspace):
    template = make_template(workspace, "mine")
    source = SEQUENTIAL_YAML.replace("Two Step", "Team").replace("\n", "\r\n")
    response = admin_client.post(change_url("mine"), form_data(template, yaml=source))
    assert response.status_code == 302, response.context["adminform"].form.errors
    template.refresh_from_db()
    assert template.topology == "sequential"
    assert [a["id"] for a in template.definition["agents"]] == ["drafter", "editor"]
    assert template.yaml == source.replace("\r\n", "\n")
    assert template.description == "Drafts, then edits"  # from the YAML, as none was given


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("topology: parallel\nagents: [\n", "line 3, column 1"),
        ("- just\n- a list\n", "must be a mapping"),
        (SEQUENTIAL_YAML.replace("gpt-4o-mini", "gpt-9").replace("Two Step", "Team"),
         "definition.agents[0].model: unknown model"),
        (SEQUENTIAL_YAML, "definition.name"),  # names it "Two Step", the form says "Team"
    ],
)  # fmt: skip
def test_the_admin_refuses_an_invalid_yaml(admin_client, workspace, source, fragment):
    template = make_template(workspace, "mine")
    response = admin_client.post(change_url("mine"), form_data(template, yaml=source))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert fragment in " ".join(errors["yaml"])
    stored = SwarmTemplate.objects.get(pk="mine")
    assert (stored.yaml, stored.definition, stored.topology) == (
        template.yaml, template.definition, template.topology,
    )  # fmt: skip


def test_the_admin_adds_a_workspace_template(admin_client, superuser, workspace):
    assert admin_client.get(reverse(ADD)).status_code == 200
    data = {"id": "two-step", "workspace": workspace.pk, "name": "Two Step", "description": "",
            "yaml": SEQUENTIAL_YAML}  # fmt: skip
    response = admin_client.post(reverse(ADD), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    template = SwarmTemplate.objects.get(pk="two-step")
    assert template.workspace == workspace and template.created_by == superuser
    assert template.topology == "sequential" and template.description == "Drafts, then edits"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "research-swarm-v1"}, "id"),
        ({"id": "Bad_Id"}, "id"),
        ({"workspace": ""}, "workspace"),
        ({"yaml": "agents: ["}, "yaml"),
    ],
)
def test_the_admin_refuses_bad_new_templates(admin_client, workspace, changes, field):
    data = {"id": "two-step", "workspace": workspace.pk, "name": "Two Step",
            "yaml": SEQUENTIAL_YAML, **changes}  # fmt: skip
    response = admin_client.post(reverse(ADD), data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert SwarmTemplate.objects.filter(workspace__isnull=False).count() == 0


def test_builtins_are_read_only_and_cannot_be_deleted(admin_client):
    research = SwarmTemplate.objects.get(pk="research-swarm-v1")
    page = admin_client.get(change_url("research-swarm-v1"))
    assert page.status_code == 200
    assert 'name="yaml"' not in page.content.decode()  # view-only
    response = admin_client.post(change_url("research-swarm-v1"), form_data(research, name="X"))
    assert response.status_code == 403
    delete_url = reverse("admin:templates_app_swarmtemplate_delete", args=["research-swarm-v1"])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    admin_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": ["research-swarm-v1"], "post": "yes"},
    )
    assert SwarmTemplate.objects.get(pk="research-swarm-v1").name == "Research Swarm"


def test_workspace_templates_can_be_deleted(admin_client, workspace):
    make_template(workspace, "mine")
    delete_url = reverse("admin:templates_app_swarmtemplate_delete", args=["mine"])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not SwarmTemplate.objects.filter(pk="mine").exists()
