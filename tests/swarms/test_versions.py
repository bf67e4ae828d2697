"""/api/swarms/{id}/versions: immutable, numbered versions; new ones carry over what they omit
from the default version."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.roles import Role
from accounts.services import workspace_create
from sverm.api.ids import has_prefix
from swarms import services
from swarms.models import Swarm, SwarmVersion
from tests.conftest import assert_problem

pytestmark = pytest.mark.django_db

VERSION_FIELDS = {
    "id",
    "swarmId",
    "number",
    "instructions",
    "models",
    "definition",
    "createdBy",
    "createdAt",
}


@pytest.fixture
def swarm(workspace, user) -> Swarm:
    return services.swarm_create(
        workspace=workspace,
        name="Researchers",
        created_by=user,
        instructions="v1 instructions",
        models=["gpt-4o"],
    )


def versions_url(swarm) -> str:
    return f"/api/swarms/{swarm.pk}/versions"


def post_version(client, swarm, payload=None):
    return client.post(versions_url(swarm), payload or {}, format="json")


def default_of(swarm) -> str:
    return Swarm.objects.get(pk=swarm.pk).default_version_id


def test_list_is_newest_first(api_client, swarm, user):
    v2 = services.swarm_version_create(swarm=swarm, created_by=user, instructions="two")
    v3 = services.swarm_version_create(swarm=swarm, created_by=user, instructions="three")
    response = api_client.get(versions_url(swarm))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"data", "pageInfo"}
    assert [v["id"] for v in body["data"]] == [v3.pk, v2.pk, swarm.default_version_id]
    assert [v["number"] for v in body["data"]] == [3, 2, 1]
    assert body["pageInfo"]["total"] == 3
    assert all(set(v) == VERSION_FIELDS for v in body["data"])
    first = body["data"][-1]
    assert first["swarmId"] == swarm.pk
    assert first["instructions"] == "v1 instructions"
    assert first["models"] == ["gpt-4o"]
    assert first["createdBy"] == user.pk
    assert first["definition"]["instructions"] == "v1 instructions"


def test_list_only_shows_this_swarms_versions(api_client, swarm, workspace, user):
    other = services.swarm_create(workspace=workspace, name="Other", created_by=user)
    services.swarm_version_create(swarm=other, created_by=user)
    response = api_client.get(versions_url(swarm))
    assert [v["id"] for v in response.json()["data"]] == [swarm.default_version_id]


def test_create_numbers_versions_and_carries_over_from_default(api_client, swarm, user):
    response = post_version(api_client, swarm)
    assert response.status_code == 201, response.content
    v2 = response.json()
    assert set(v2) == VERSION_FIELDS
    assert has_prefix(v2["id"], "swv")
    assert v2["swarmId"] == swarm.pk
    assert v2["number"] == 2
    assert v2["instructions"] == "v1 instructions"
    assert v2["models"] == ["gpt-4o"]
    assert v2["createdBy"] == user.pk
    assert default_of(swarm) == swarm.default_version_id  # setDefault defaults to false

    response = post_version(api_client, swarm, {"models": ["deepseek-chat", "gpt-4o-mini"]})
    assert response.status_code == 201, response.content
    v3 = response.json()
    assert v3["number"] == 3
    assert v3["instructions"] == "v1 instructions"
    assert v3["models"] == ["deepseek-chat", "gpt-4o-mini"]
    assert {a["model"] for a in v3["definition"]["agents"]} == {"deepseek-chat", "gpt-4o-mini"}

    stored = SwarmVersion.objects.get(pk=v3["id"])
    assert (stored.number, stored.instructions, stored.model_names) == (
        3,
        "v1 instructions",
        ["deepseek-chat", "gpt-4o-mini"],
    )
    assert SwarmVersion.objects.filter(swarm=swarm).count() == 3


def test_carry_over_comes_from_the_default_not_the_latest(api_client, swarm):
    post_version(api_client, swarm, {"instructions": "not default", "models": ["gpt-4.1"]})
    response = post_version(api_client, swarm)
    assert response.json()["number"] == 3
    assert response.json()["instructions"] == "v1 instructions"
    assert response.json()["models"] == ["gpt-4o"]


def test_set_default_moves_the_default(api_client, swarm):
    Swarm.objects.filter(pk=swarm.pk).update(updated_at=timezone.now() - timedelta(days=1))
    response = post_version(api_client, swarm, {"instructions": "fresh", "setDefault": True})
    assert response.status_code == 201, response.content
    v2 = response.json()
    assert v2["instructions"] == "fresh" and v2["models"] == ["gpt-4o"]
    stored = Swarm.objects.get(pk=swarm.pk)
    assert stored.default_version_id == v2["id"]
    assert stored.updated_at > timezone.now() - timedelta(hours=1)
    assert api_client.get(f"/api/swarms/{swarm.pk}").json()["defaultVersionId"] == v2["id"]

    # The next version carries over from the new default.
    v3 = post_version(api_client, swarm, {"setDefault": False}).json()
    assert (v3["number"], v3["instructions"]) == (3, "fresh")
    assert default_of(swarm) == v2["id"]


def test_patching_the_default_changes_what_is_carried_over(api_client, swarm, user):
    v2 = services.swarm_version_create(
        swarm=swarm, created_by=user, instructions="two", models=["gpt-4.1-mini"]
    )
    api_client.patch(f"/api/swarms/{swarm.pk}", {"defaultVersionId": v2.pk}, format="json")
    v3 = post_version(api_client, swarm).json()
    assert (v3["instructions"], v3["models"]) == ("two", ["gpt-4.1-mini"])


def test_empty_instructions_are_not_carried_over(api_client, swarm):
    response = post_version(api_client, swarm, {"instructions": ""})
    assert response.status_code == 201, response.content
    assert response.json()["instructions"] == ""


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"models": []}, "models"),
        ({"models": "gpt-4o"}, "models"),
        ({"models": [f"m{i}" for i in range(11)]}, "models"),
        ({"models": [None]}, "models.0"),
        ({"instructions": None}, "instructions"),
        ({"setDefault": "perhaps"}, "setDefault"),
        ({"number": 7}, "number"),
        ({"definition": {}}, "definition"),
    ],
)
def test_invalid_create_is_400_and_creates_nothing(api_client, swarm, payload, field):
    body = assert_problem(post_version(api_client, swarm, payload), 400, "invalid_request")
    assert [e["field"] for e in body["errors"]] == [field]
    assert SwarmVersion.objects.filter(swarm=swarm).count() == 1
    assert default_of(swarm) == swarm.default_version_id


def test_get_one_version(api_client, swarm, user):
    v2 = services.swarm_version_create(swarm=swarm, created_by=user, instructions="two")
    response = api_client.get(f"{versions_url(swarm)}/{v2.pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == VERSION_FIELDS
    assert (body["id"], body["number"], body["instructions"]) == (v2.pk, 2, "two")
    listed = api_client.get(versions_url(swarm)).json()["data"][0]
    assert listed == body


def test_version_through_another_swarms_path_is_404(api_client, swarm, workspace, user):
    other = services.swarm_create(workspace=workspace, name="Other", created_by=user)
    response = api_client.get(f"{versions_url(other)}/{swarm.default_version_id}")
    assert_problem(response, 404, "not_found")
    response = api_client.get(f"{versions_url(swarm)}/swv_01doesnotexist0000000000000")
    assert_problem(response, 404, "not_found")


def test_versions_of_a_foreign_swarm_are_404(api_client, other_workspace, other_user):
    foreign = services.swarm_create(workspace=other_workspace, name="Theirs", created_by=other_user)
    assert_problem(api_client.get(versions_url(foreign)), 404, "not_found")
    url = f"{versions_url(foreign)}/{foreign.default_version_id}"
    assert_problem(api_client.get(url), 404, "not_found")
    assert_problem(post_version(api_client, foreign), 404, "not_found")
    assert SwarmVersion.objects.filter(swarm=foreign).count() == 1


def test_versions_of_an_unknown_swarm_are_404(api_client):
    unknown = "/api/swarms/swm_01doesnotexist0000000000000/versions"
    assert_problem(api_client.get(unknown), 404, "not_found")
    assert_problem(api_client.post(unknown, {}, format="json"), 404, "not_found")


def test_a_deleted_swarm_gets_no_new_versions_but_keeps_its_old_ones(api_client, swarm):
    services.swarm_soft_delete(swarm=swarm)
    assert_problem(post_version(api_client, swarm, {"setDefault": True}), 409, "conflict")
    assert SwarmVersion.objects.filter(swarm=swarm).count() == 1
    response = api_client.get(versions_url(swarm))
    assert [v["id"] for v in response.json()["data"]] == [swarm.default_version_id]
    url = f"{versions_url(swarm)}/{swarm.default_version_id}"
    assert api_client.get(url).status_code == 200


def test_viewer_reads_but_cannot_create(client_for, member_of, workspace, swarm):
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert viewer.get(versions_url(swarm)).status_code == 200
    url = f"{versions_url(swarm)}/{swarm.default_version_id}"
    assert viewer.get(url).status_code == 200
    assert_problem(post_version(viewer, swarm), 403, "forbidden")
    assert SwarmVersion.objects.filter(swarm=swarm).count() == 1


def test_operator_creates(client_for, member_of, workspace, swarm):
    operator = member_of(workspace, Role.OPERATOR)
    response = post_version(client_for(operator), swarm, {"setDefault": True})
    assert response.status_code == 201, response.content
    assert response.json()["createdBy"] == operator.pk
    assert default_of(swarm) == response.json()["id"]


def test_api_keys_act_in_their_workspace_only(key_client, workspace, swarm, user):
    second = workspace_create(name="Second", owner=user)
    elsewhere = services.swarm_create(workspace=second, name="Elsewhere", created_by=user)

    viewer, _, _ = key_client(workspace, Role.VIEWER)
    assert viewer.get(versions_url(swarm)).status_code == 200
    assert_problem(post_version(viewer, swarm), 403, "forbidden")

    operator, _, _ = key_client(workspace, Role.OPERATOR)
    response = post_version(operator, swarm)
    assert response.status_code == 201, response.content
    assert response.json()["createdBy"] == user.pk

    assert_problem(operator.get(versions_url(elsewhere)), 404, "not_found")
    assert_problem(post_version(operator, elsewhere), 404, "not_found")
    assert SwarmVersion.objects.filter(swarm=elsewhere).count() == 1


def test_versions_are_immutable(swarm):
    version = SwarmVersion.objects.get(pk=swarm.default_version_id)
    version.instructions = "rewritten"
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    assert SwarmVersion.objects.get(pk=version.pk).instructions == "v1 instructions"


def test_versions_have_no_update_or_delete_routes(api_client, swarm):
    url = f"{versions_url(swarm)}/{swarm.default_version_id}"
    assert_problem(
        api_client.patch(url, {"instructions": "x"}, format="json"), 405, "method_not_allowed"
    )
    assert_problem(api_client.delete(url), 405, "method_not_allowed")
    assert SwarmVersion.objects.get(pk=swarm.default_version_id).instructions == "v1 instructions"
