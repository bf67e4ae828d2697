"""/api/swarms (seed 003): create with version 1, read, update, soft delete, restore, purge, the
list's shorthand parameters, roles, API keys and the list's query count."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Membership
from accounts.roles import Role
from accounts.services import workspace_create
from sverm.api.ids import has_prefix
from swarms import services
from swarms.definitions import DEFAULT_MODEL
from swarms.models import Swarm, SwarmVersion
from tests.conftest import assert_problem
from tests.factories import make_swarm

pytestmark = pytest.mark.django_db

SWARM_FIELDS = {
    "id",
    "workspaceId",
    "name",
    "description",
    "defaultVersionId",
    "createdBy",
    "runtimeUserId",
    "deletedAt",
    "retentionTier",
    "createdAt",
    "updatedAt",
}
PAGE_INFO_FIELDS = {"total", "hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}


def ids_of(response) -> list[str]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"data", "pageInfo"}
    return [item["id"] for item in body["data"]]


def field_names(body) -> list[str]:
    return sorted(error["field"] for error in body["errors"])


# ---------------------------------------------------------------------------------------------
# Create
# ---------------------------------------------------------------------------------------------
def test_create_answers_the_seed_shape_and_makes_version_1(api_client, workspace, user):
    before = timezone.now()
    response = api_client.post(
        "/api/swarms",
        {
            "workspaceId": workspace.pk,
            "name": "Researchers",
            "description": "Finds things out",
            "instructions": "Be terse.",
            "models": ["gpt-4o", "deepseek-chat"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == SWARM_FIELDS
    assert has_prefix(body["id"], "swm")
    assert has_prefix(body["defaultVersionId"], "swv")
    assert body["workspaceId"] == workspace.pk
    assert body["name"] == "Researchers"
    assert body["description"] == "Finds things out"
    assert body["createdBy"] == user.pk
    assert body["runtimeUserId"] is None
    assert body["deletedAt"] is None
    assert body["retentionTier"] == "standard"
    assert parse_datetime(body["createdAt"]) >= before
    assert parse_datetime(body["updatedAt"]) >= before

    swarm = Swarm.objects.get(pk=body["id"])
    assert swarm.workspace_id == workspace.pk
    version = SwarmVersion.objects.get(swarm=swarm)  # exactly one
    assert version.pk == body["defaultVersionId"] == swarm.default_version_id
    assert version.number == 1
    assert version.instructions == "Be terse."
    assert version.model_names == ["gpt-4o", "deepseek-chat"]
    assert version.created_by_id == user.pk
    assert version.definition["instructions"] == "Be terse."
    models_used = {agent["model"] for agent in version.definition["agents"]}
    assert models_used == {"gpt-4o", "deepseek-chat"}


def test_create_minimal_uses_defaults(api_client, workspace):
    response = api_client.post(
        "/api/swarms", {"workspaceId": workspace.pk, "name": "Bare"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["description"] == ""
    assert body["retentionTier"] == "standard"
    version = SwarmVersion.objects.get(pk=body["defaultVersionId"])
    assert (version.number, version.instructions, version.model_names) == (1, "", [])
    assert {agent["model"] for agent in version.definition["agents"]} == {DEFAULT_MODEL}


@pytest.mark.parametrize("tier", ["ephemeral", "extended"])
def test_create_with_retention_tier(api_client, workspace, tier):
    response = api_client.post(
        "/api/swarms",
        {"workspaceId": workspace.pk, "name": "Kept", "retentionTier": tier},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["retentionTier"] == tier
    assert Swarm.objects.get().retention_tier == tier


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"name": "x"}, ["workspaceId"]),
        ({}, ["name", "workspaceId"]),
        ({"name": ""}, ["name"]),
        ({"name": "   "}, ["name"]),
        ({"name": "x" * 201}, ["name"]),
        ({"name": ["x"]}, ["name"]),
        ({"name": True}, ["name"]),
        ({"name": "x", "description": None}, ["description"]),
        ({"name": "x", "instructions": {"a": 1}}, ["instructions"]),
        ({"name": "x", "models": "gpt-4o"}, ["models"]),
        ({"name": "x", "models": []}, ["models"]),
        ({"name": "x", "models": [f"m{i}" for i in range(11)]}, ["models"]),
        ({"name": "x", "models": ["m" * 101]}, ["models.0"]),
        ({"name": "x", "retentionTier": "forever"}, ["retentionTier"]),
        ({"name": "x", "runtimeUserId": "usr_x"}, ["runtimeUserId"]),
        ({"name": "x", "id": "swm_mine"}, ["id"]),
    ],
)
def test_invalid_create_is_400_naming_the_field_and_creates_nothing(
    api_client, workspace, payload, fields
):
    if "workspaceId" not in fields:
        payload = {"workspaceId": workspace.pk, **payload}
    body = assert_problem(
        api_client.post("/api/swarms", payload, format="json"), 400, "invalid_request"
    )
    assert field_names(body) == fields
    assert Swarm.objects.count() == 0
    assert SwarmVersion.objects.count() == 0


def test_ten_models_are_allowed(api_client, workspace):
    from billing.models import ModelPrice

    models = list(ModelPrice.objects.order_by("model").values_list("model", flat=True)[:10])
    assert len(models) == 10
    response = api_client.post(
        "/api/swarms", {"workspaceId": workspace.pk, "name": "x", "models": models}, format="json"
    )
    assert response.status_code == 201, response.content
    assert SwarmVersion.objects.get().model_names == models


def test_create_body_must_be_an_object(api_client):
    assert_problem(api_client.post("/api/swarms", [1, 2], format="json"), 400, "invalid_request")
    assert Swarm.objects.count() == 0


def test_viewer_cannot_create(client_for, member_of, workspace):
    client = client_for(member_of(workspace, Role.VIEWER))
    response = client.post("/api/swarms", {"workspaceId": workspace.pk, "name": "x"}, format="json")
    assert_problem(response, 403, "forbidden")
    assert Swarm.objects.count() == 0


def test_operator_can_create(client_for, member_of, workspace):
    operator = member_of(workspace, Role.OPERATOR)
    response = client_for(operator).post(
        "/api/swarms", {"workspaceId": workspace.pk, "name": "x"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["createdBy"] == operator.pk


@pytest.mark.parametrize("workspace_id", ["other", "wsp_01doesnotexist0000000000000"])
def test_create_in_a_foreign_or_unknown_workspace_is_404(api_client, other_workspace, workspace_id):
    workspace_id = other_workspace.pk if workspace_id == "other" else workspace_id
    response = api_client.post(
        "/api/swarms", {"workspaceId": workspace_id, "name": "x"}, format="json"
    )
    assert_problem(response, 404, "not_found")
    assert Swarm.objects.count() == 0


def test_api_key_creates_in_its_own_workspace_only(key_client, workspace, user, other_workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    response = client.post("/api/swarms", {"workspaceId": workspace.pk, "name": "k"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["createdBy"] == user.pk  # the key's creator

    # The key's creator is admin of a second workspace; the key still cannot reach it.
    second = workspace_create(name="Second", owner=user)
    for target in (second, other_workspace):
        response = client.post(
            "/api/swarms", {"workspaceId": target.pk, "name": "k"}, format="json"
        )
        assert_problem(response, 404, "not_found")
    assert list(Swarm.objects.values_list("workspace_id", flat=True)) == [workspace.pk]


def test_viewer_api_key_cannot_create(key_client, workspace):
    client, _, _ = key_client(workspace, Role.VIEWER)
    response = client.post("/api/swarms", {"workspaceId": workspace.pk, "name": "k"}, format="json")
    assert_problem(response, 403, "forbidden")
    assert Swarm.objects.count() == 0


def test_anonymous_is_401(anon_client, workspace):
    swarm = make_swarm(workspace)
    assert_problem(anon_client.get("/api/swarms"), 401, "unauthorized")
    assert_problem(anon_client.get(f"/api/swarms/{swarm.pk}"), 401, "unauthorized")
    response = anon_client.post(
        "/api/swarms", {"workspaceId": workspace.pk, "name": "x"}, format="json"
    )
    assert_problem(response, 401, "unauthorized")
    assert Swarm.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# Retrieve
# ---------------------------------------------------------------------------------------------
def test_get_answers_the_same_shape_as_create(api_client, workspace):
    created = api_client.post(
        "/api/swarms", {"workspaceId": workspace.pk, "name": "Same"}, format="json"
    ).json()
    response = api_client.get(f"/api/swarms/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_viewer_can_read(client_for, member_of, workspace):
    swarm = make_swarm(workspace)
    response = client_for(member_of(workspace, Role.VIEWER)).get(f"/api/swarms/{swarm.pk}")
    assert response.status_code == 200
    assert response.json()["id"] == swarm.pk


def test_get_foreign_or_unknown_is_404(api_client, other_workspace, other_user):
    foreign = make_swarm(other_workspace, created_by=other_user)
    assert_problem(api_client.get(f"/api/swarms/{foreign.pk}"), 404, "not_found")
    assert_problem(api_client.get("/api/swarms/swm_01doesnotexist0000000000000"), 404, "not_found")


def test_api_key_reads_only_its_workspace(key_client, workspace, user):
    second = workspace_create(name="Second", owner=user)
    mine, elsewhere = make_swarm(workspace), make_swarm(second)
    client, _, _ = key_client(workspace, Role.VIEWER)
    assert client.get(f"/api/swarms/{mine.pk}").status_code == 200
    assert_problem(client.get(f"/api/swarms/{elsewhere.pk}"), 404, "not_found")
    assert ids_of(client.get("/api/swarms")) == [mine.pk]


# ---------------------------------------------------------------------------------------------
# Update
# ---------------------------------------------------------------------------------------------
def test_patch_changes_only_the_given_fields(api_client, workspace):
    swarm = make_swarm(workspace, name="Old", description="keep me")
    Swarm.objects.filter(pk=swarm.pk).update(updated_at=timezone.now() - timedelta(days=1))
    response = api_client.patch(f"/api/swarms/{swarm.pk}", {"name": "New"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == SWARM_FIELDS
    assert body["name"] == "New" and body["description"] == "keep me"
    assert parse_datetime(body["updatedAt"]) > timezone.now() - timedelta(hours=1)
    swarm.refresh_from_db()
    assert (swarm.name, swarm.description) == ("New", "keep me")

    response = api_client.patch(
        f"/api/swarms/{swarm.pk}", {"description": "", "retentionTier": "extended"}, format="json"
    )
    assert response.status_code == 200, response.content
    swarm.refresh_from_db()
    assert (swarm.name, swarm.description, swarm.retention_tier) == ("New", "", "extended")


def test_empty_patch_changes_nothing(api_client, workspace):
    swarm = make_swarm(workspace, name="Same")
    stale = timezone.now() - timedelta(days=1)
    Swarm.objects.filter(pk=swarm.pk).update(updated_at=stale)
    response = api_client.patch(f"/api/swarms/{swarm.pk}", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Same"
    assert parse_datetime(response.json()["updatedAt"]) == stale
    assert Swarm.objects.get(pk=swarm.pk).updated_at == stale


def test_staff_creating_in_an_unknown_workspace_is_404(client_for, make_user):
    staff = client_for(make_user(is_staff=True))
    response = staff.post(
        "/api/swarms",
        {"workspaceId": "wsp_01doesnotexist0000000000000", "name": "x"},
        format="json",
    )
    assert_problem(response, 404, "not_found")
    assert Swarm.objects.count() == 0


def test_patch_runtime_user_must_be_a_member(api_client, workspace, member_of, other_user):
    swarm = make_swarm(workspace)
    member = member_of(workspace, Role.VIEWER)
    response = api_client.patch(
        f"/api/swarms/{swarm.pk}", {"runtimeUserId": member.pk}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["runtimeUserId"] == member.pk
    swarm.refresh_from_db()
    assert swarm.runtime_user_id == member.pk

    for stranger in (other_user.pk, "usr_01doesnotexist0000000000000"):
        body = assert_problem(
            api_client.patch(f"/api/swarms/{swarm.pk}", {"runtimeUserId": stranger}, format="json"),
            400,
            "invalid_request",
        )
        assert field_names(body) == ["runtimeUserId"]
        swarm.refresh_from_db()
        assert swarm.runtime_user_id == member.pk

    response = api_client.patch(f"/api/swarms/{swarm.pk}", {"runtimeUserId": None}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["runtimeUserId"] is None
    swarm.refresh_from_db()
    assert swarm.runtime_user_id is None


def test_patch_runtime_user_of_another_workspace_is_refused(
    api_client, workspace, user, other_workspace, other_user
):
    """other_user is a member of a workspace, just not of the swarm's."""
    Membership.objects.create(workspace=other_workspace, user=user, role=Role.ADMIN)
    swarm = make_swarm(workspace)
    body = assert_problem(
        api_client.patch(
            f"/api/swarms/{swarm.pk}", {"runtimeUserId": other_user.pk}, format="json"
        ),
        400,
        "invalid_request",
    )
    assert field_names(body) == ["runtimeUserId"]


def test_patch_default_version_must_belong_to_the_swarm(api_client, workspace, user):
    swarm = make_swarm(workspace, created_by=user)
    first = swarm.default_version_id
    second = services.swarm_version_create(swarm=swarm, created_by=user, instructions="v2")
    other = make_swarm(workspace, name="Other")

    response = api_client.patch(
        f"/api/swarms/{swarm.pk}", {"defaultVersionId": second.pk}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["defaultVersionId"] == second.pk

    for bad in (other.default_version_id, "swv_01doesnotexist0000000000000"):
        body = assert_problem(
            api_client.patch(f"/api/swarms/{swarm.pk}", {"defaultVersionId": bad}, format="json"),
            400,
            "invalid_request",
        )
        assert field_names(body) == ["defaultVersionId"]
    swarm.refresh_from_db()
    assert swarm.default_version_id == second.pk

    response = api_client.patch(
        f"/api/swarms/{swarm.pk}", {"defaultVersionId": first}, format="json"
    )
    assert response.json()["defaultVersionId"] == first


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"retentionTier": "forever"}, "retentionTier"),
        ({"defaultVersionId": None}, "defaultVersionId"),
        ({"workspaceId": "wsp_x"}, "workspaceId"),
        ({"deletedAt": None}, "deletedAt"),
        ({"instructions": "no"}, "instructions"),
    ],
)
def test_invalid_patch_is_400_and_changes_nothing(api_client, workspace, payload, field):
    swarm = make_swarm(workspace, name="Stable")
    body = assert_problem(
        api_client.patch(f"/api/swarms/{swarm.pk}", payload, format="json"), 400, "invalid_request"
    )
    assert field_names(body) == [field]
    after = Swarm.objects.get(pk=swarm.pk)
    assert (after.name, after.retention_tier, after.workspace_id, after.default_version_id) == (
        "Stable",
        "standard",
        workspace.pk,
        swarm.default_version_id,
    )


def test_patch_of_a_soft_deleted_swarm_is_409(api_client, workspace):
    swarm = services.swarm_soft_delete(swarm=make_swarm(workspace, name="Gone"))
    response = api_client.patch(f"/api/swarms/{swarm.pk}", {"name": "Back"}, format="json")
    assert_problem(response, 409, "conflict")
    assert Swarm.objects.get(pk=swarm.pk).name == "Gone"


def test_put_is_405(api_client, workspace):
    swarm = make_swarm(workspace, name="Stable")
    response = api_client.put(
        f"/api/swarms/{swarm.pk}", {"workspaceId": workspace.pk, "name": "Put"}, format="json"
    )
    assert_problem(response, 405, "method_not_allowed")
    assert Swarm.objects.get(pk=swarm.pk).name == "Stable"


def test_viewer_cannot_patch_operator_can(client_for, member_of, workspace):
    swarm = make_swarm(workspace, name="Stable")
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert_problem(
        viewer.patch(f"/api/swarms/{swarm.pk}", {"name": "V"}, format="json"), 403, "forbidden"
    )
    assert Swarm.objects.get(pk=swarm.pk).name == "Stable"
    operator = client_for(member_of(workspace, Role.OPERATOR))
    response = operator.patch(f"/api/swarms/{swarm.pk}", {"name": "O"}, format="json")
    assert response.status_code == 200
    assert Swarm.objects.get(pk=swarm.pk).name == "O"


def test_patch_foreign_is_404(api_client, other_workspace):
    swarm = make_swarm(other_workspace, name="Theirs")
    response = api_client.patch(f"/api/swarms/{swarm.pk}", {"name": "Mine"}, format="json")
    assert_problem(response, 404, "not_found")
    assert Swarm.objects.get(pk=swarm.pk).name == "Theirs"


# ---------------------------------------------------------------------------------------------
# Soft delete, restore, purge
# ---------------------------------------------------------------------------------------------
def test_delete_is_a_soft_delete_and_idempotent(api_client, workspace):
    swarm = make_swarm(workspace)
    response = api_client.delete(f"/api/swarms/{swarm.pk}")
    assert response.status_code == 200
    assert response.json() == {"success": True}
    swarm.refresh_from_db()
    assert swarm.deleted_at is not None
    assert SwarmVersion.objects.filter(swarm=swarm).count() == 1

    first = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    Swarm.objects.filter(pk=swarm.pk).update(deleted_at=first)
    response = api_client.delete(f"/api/swarms/{swarm.pk}")
    assert response.status_code == 200
    assert response.json() == {"success": True}
    swarm.refresh_from_db()
    assert swarm.deleted_at == first

    response = api_client.get(f"/api/swarms/{swarm.pk}")
    assert response.status_code == 200
    assert parse_datetime(response.json()["deletedAt"]) == first


def test_deleted_swarms_are_hidden_from_the_default_list(api_client, workspace):
    alive, dead = make_swarm(workspace, name="alive"), make_swarm(workspace, name="dead")
    assert api_client.delete(f"/api/swarms/{dead.pk}").status_code == 200
    assert ids_of(api_client.get("/api/swarms")) == [alive.pk]
    assert ids_of(api_client.get("/api/swarms?include_deleted=false")) == [alive.pk]
    assert set(ids_of(api_client.get("/api/swarms?include_deleted=true"))) == {alive.pk, dead.pk}
    assert ids_of(api_client.get("/api/swarms?include_deleted=only")) == [dead.pk]
    only = api_client.get("/api/swarms?include_deleted=only").json()
    assert only["data"][0]["deletedAt"] is not None
    assert only["pageInfo"]["total"] == 1


def test_restore_brings_a_swarm_back(api_client, workspace):
    swarm = make_swarm(workspace)
    api_client.delete(f"/api/swarms/{swarm.pk}")
    response = api_client.post(f"/api/swarms/{swarm.pk}/restore")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == SWARM_FIELDS
    assert body["id"] == swarm.pk and body["deletedAt"] is None
    swarm.refresh_from_db()
    assert swarm.deleted_at is None
    assert ids_of(api_client.get("/api/swarms")) == [swarm.pk]


def test_restore_of_an_active_swarm_is_409(api_client, workspace):
    swarm = make_swarm(workspace)
    assert_problem(api_client.post(f"/api/swarms/{swarm.pk}/restore"), 409, "conflict")
    swarm.refresh_from_db()
    assert swarm.deleted_at is None


def test_viewer_cannot_delete_or_restore(client_for, member_of, workspace):
    viewer = client_for(member_of(workspace, Role.VIEWER))
    alive = make_swarm(workspace)
    dead = services.swarm_soft_delete(swarm=make_swarm(workspace))
    assert_problem(viewer.delete(f"/api/swarms/{alive.pk}"), 403, "forbidden")
    assert_problem(viewer.post(f"/api/swarms/{dead.pk}/restore"), 403, "forbidden")
    alive.refresh_from_db()
    dead.refresh_from_db()
    assert alive.deleted_at is None and dead.deleted_at is not None


def test_operator_deletes_and_restores(client_for, member_of, workspace):
    operator = client_for(member_of(workspace, Role.OPERATOR))
    swarm = make_swarm(workspace)
    assert operator.delete(f"/api/swarms/{swarm.pk}").json() == {"success": True}
    assert Swarm.objects.get(pk=swarm.pk).deleted_at is not None
    assert operator.post(f"/api/swarms/{swarm.pk}/restore").status_code == 200
    assert Swarm.objects.get(pk=swarm.pk).deleted_at is None


def test_delete_and_restore_of_foreign_swarms_are_404(api_client, other_workspace):
    alive = make_swarm(other_workspace)
    dead = services.swarm_soft_delete(swarm=make_swarm(other_workspace))
    assert_problem(api_client.delete(f"/api/swarms/{alive.pk}"), 404, "not_found")
    assert_problem(api_client.post(f"/api/swarms/{dead.pk}/restore"), 404, "not_found")
    assert_problem(api_client.delete(f"/api/swarms/{dead.pk}/purge"), 404, "not_found")
    assert Swarm.objects.get(pk=alive.pk).deleted_at is None
    assert Swarm.objects.get(pk=dead.pk).deleted_at is not None


def test_purge_removes_a_soft_deleted_swarm_and_its_versions(api_client, workspace, user):
    swarm = make_swarm(workspace, created_by=user)
    services.swarm_version_create(swarm=swarm, created_by=user, set_default=True)
    keep = make_swarm(workspace, name="keep")
    api_client.delete(f"/api/swarms/{swarm.pk}")
    response = api_client.delete(f"/api/swarms/{swarm.pk}/purge")
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True}
    assert not Swarm.objects.filter(pk=swarm.pk).exists()
    assert not SwarmVersion.objects.filter(swarm_id=swarm.pk).exists()
    assert SwarmVersion.objects.filter(swarm=keep).count() == 1

    assert_problem(api_client.get(f"/api/swarms/{swarm.pk}"), 404, "not_found")
    assert_problem(api_client.post(f"/api/swarms/{swarm.pk}/restore"), 404, "not_found")
    assert_problem(api_client.delete(f"/api/swarms/{swarm.pk}/purge"), 404, "not_found")
    assert ids_of(api_client.get("/api/swarms?include_deleted=true")) == [keep.pk]


def test_purge_of_an_active_swarm_is_409(api_client, workspace):
    swarm = make_swarm(workspace)
    assert_problem(api_client.delete(f"/api/swarms/{swarm.pk}/purge"), 409, "conflict")
    assert Swarm.objects.filter(pk=swarm.pk, deleted_at__isnull=True).exists()
    assert SwarmVersion.objects.filter(swarm=swarm).count() == 1


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_purge_needs_admin(client_for, member_of, workspace, role):
    swarm = services.swarm_soft_delete(swarm=make_swarm(workspace))
    client = client_for(member_of(workspace, role))
    assert_problem(client.delete(f"/api/swarms/{swarm.pk}/purge"), 403, "forbidden")
    assert Swarm.objects.filter(pk=swarm.pk).exists()


def test_purge_with_api_keys_follows_their_role(key_client, workspace):
    swarm = services.swarm_soft_delete(swarm=make_swarm(workspace))
    operator, _, _ = key_client(workspace, Role.OPERATOR)
    assert_problem(operator.delete(f"/api/swarms/{swarm.pk}/purge"), 403, "forbidden")
    assert Swarm.objects.filter(pk=swarm.pk).exists()
    admin, _, _ = key_client(workspace, Role.ADMIN)
    assert admin.delete(f"/api/swarms/{swarm.pk}/purge").json() == {"success": True}
    assert not Swarm.objects.filter(pk=swarm.pk).exists()


def test_api_key_operator_deletes_and_restores(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    swarm = make_swarm(workspace)
    assert client.delete(f"/api/swarms/{swarm.pk}").json() == {"success": True}
    assert Swarm.objects.get(pk=swarm.pk).deleted_at is not None
    assert client.post(f"/api/swarms/{swarm.pk}/restore").json()["deletedAt"] is None


# ---------------------------------------------------------------------------------------------
# List
# ---------------------------------------------------------------------------------------------
def test_list_is_newest_first_across_my_workspaces(api_client, workspace, user, other_workspace):
    second = workspace_create(name="Second", owner=user)
    now = timezone.now()
    older = make_swarm(workspace, name="older")
    newest = make_swarm(second, name="newest")
    middle = make_swarm(workspace, name="middle")
    make_swarm(other_workspace, name="theirs")
    for swarm, age in ((older, 3), (middle, 2), (newest, 1)):
        Swarm.objects.filter(pk=swarm.pk).update(created_at=now - timedelta(minutes=age))

    response = api_client.get("/api/swarms")
    assert ids_of(response) == [newest.pk, middle.pk, older.pk]
    body = response.json()
    assert set(body["pageInfo"]) == PAGE_INFO_FIELDS
    assert body["pageInfo"]["total"] == 3
    assert body["pageInfo"]["hasNextPage"] is False
    assert all(set(item) == SWARM_FIELDS for item in body["data"])

    first = api_client.get("/api/swarms?limit=2").json()
    assert [item["id"] for item in first["data"]] == [newest.pk, middle.pk]
    assert first["pageInfo"]["hasNextPage"] is True
    after = first["pageInfo"]["endCursor"]
    assert ids_of(api_client.get(f"/api/swarms?limit=2&after={after}")) == [older.pk]


def test_list_workspace_id_narrows(api_client, workspace, user, other_workspace):
    second = workspace_create(name="Second", owner=user)
    here, there = make_swarm(workspace), make_swarm(second)
    assert ids_of(api_client.get(f"/api/swarms?workspace_id={workspace.pk}")) == [here.pk]
    assert ids_of(api_client.get(f"/api/swarms?workspace_id={second.pk}")) == [there.pk]
    assert_problem(
        api_client.get(f"/api/swarms?workspace_id={other_workspace.pk}"), 404, "not_found"
    )
    assert_problem(api_client.get("/api/swarms?workspace_id="), 400, "invalid_request")


def test_viewer_lists_their_workspace(client_for, member_of, workspace, other_workspace):
    swarm = make_swarm(workspace)
    make_swarm(other_workspace)
    client = client_for(member_of(workspace, Role.VIEWER))
    assert ids_of(client.get("/api/swarms")) == [swarm.pk]


def test_staff_see_every_workspace(client_for, make_user, workspace, other_workspace):
    staff = make_user(is_staff=True)
    swarms = {make_swarm(workspace).pk, make_swarm(other_workspace).pk}
    assert set(ids_of(client_for(staff).get("/api/swarms"))) == swarms


def test_user_without_workspaces_sees_nothing(client_for, make_user, workspace):
    make_swarm(workspace)
    assert ids_of(client_for(make_user()).get("/api/swarms")) == []


def test_list_name_is_a_case_insensitive_substring(api_client, workspace):
    research = make_swarm(workspace, name="Deep Research Team")
    make_swarm(workspace, name="Writers")
    assert ids_of(api_client.get("/api/swarms?name=research")) == [research.pk]
    assert ids_of(api_client.get("/api/swarms?name=EP RES")) == [research.pk]
    assert ids_of(api_client.get("/api/swarms?name=nomatch")) == []


def test_list_shorthand_equality_filters(api_client, workspace, user, member_of):
    operator = member_of(workspace, Role.OPERATOR)
    mine = make_swarm(workspace, name="mine", created_by=user)
    theirs = make_swarm(workspace, name="theirs", created_by=operator, retention_tier="extended")
    services.swarm_update(swarm=theirs, data={"runtime_user_id": operator.pk})

    assert ids_of(api_client.get(f"/api/swarms?created_by={user.pk}")) == [mine.pk]
    assert ids_of(api_client.get(f"/api/swarms?created_by={operator.pk}")) == [theirs.pk]
    assert ids_of(api_client.get(f"/api/swarms?runtime_user_id={operator.pk}")) == [theirs.pk]
    assert ids_of(api_client.get(f"/api/swarms?runtime_user_id={user.pk}")) == []
    assert ids_of(api_client.get("/api/swarms?retention_tier=extended")) == [theirs.pk]
    assert ids_of(api_client.get("/api/swarms?retention_tier=standard")) == [mine.pk]
    assert ids_of(api_client.get("/api/swarms?retention_tier=ephemeral")) == []
    url = f"/api/swarms?default_version_id={mine.default_version_id}"
    assert ids_of(api_client.get(url)) == [mine.pk]
    url = f"/api/swarms?created_by={user.pk}&retention_tier=extended"
    assert ids_of(api_client.get(url)) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [("retention_tier=forever", "retention_tier"), ("include_deleted=yes", "include_deleted")],
)
def test_list_bad_choice_is_400_naming_the_parameter(api_client, workspace, query, field):
    make_swarm(workspace)
    body = assert_problem(api_client.get(f"/api/swarms?{query}"), 400, "invalid_request")
    assert field_names(body) == [field]


def test_list_ids_never_reveal_other_workspaces(api_client, workspace, other_workspace):
    a, b, _c = make_swarm(workspace), make_swarm(workspace), make_swarm(workspace)
    foreign = make_swarm(other_workspace)
    assert set(ids_of(api_client.get(f"/api/swarms?ids={a.pk},{b.pk}"))) == {a.pk, b.pk}
    assert ids_of(api_client.get(f"/api/swarms?ids={a.pk}, {foreign.pk}")) == [a.pk]
    assert ids_of(api_client.get(f"/api/swarms?ids={foreign.pk}")) == []
    assert_problem(api_client.get("/api/swarms?ids=,"), 400, "invalid_request")


def test_list_ids_respect_include_deleted(api_client, workspace):
    alive = make_swarm(workspace)
    dead = services.swarm_soft_delete(swarm=make_swarm(workspace))
    assert ids_of(api_client.get(f"/api/swarms?ids={alive.pk},{dead.pk}")) == [alive.pk]
    url = f"/api/swarms?ids={alive.pk},{dead.pk}&include_deleted=only"
    assert ids_of(api_client.get(url)) == [dead.pk]


def test_list_filter_expression(api_client, workspace):
    make_swarm(workspace, name="alpha")
    beta = make_swarm(workspace, name="beta", retention_tier="ephemeral")
    url = '/api/swarms?filter={"retentionTier": {"eq": "ephemeral"}}'
    assert ids_of(api_client.get(url)) == [beta.pk]
    assert_problem(api_client.get('/api/swarms?filter={"nope": {"eq": 1}}'), 400, "invalid_request")


# ---------------------------------------------------------------------------------------------
# Query count
# ---------------------------------------------------------------------------------------------
LIST_QUERIES = 5  # memberships, user, installed publishers, count, page (JWT auth, SQLite/PG)


def _list_queries(client) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/swarms?limit=100")
    assert response.status_code == 200
    return len(queries), len(response.json()["data"])


def test_list_query_count_is_constant(
    api_client, workspace, user, member_of, django_assert_max_num_queries
):
    runtime = member_of(workspace, Role.OPERATOR)

    def add(count):
        for i in range(count):
            swarm = make_swarm(workspace, name=f"s{i}", created_by=user)
            services.swarm_update(swarm=swarm, data={"runtime_user_id": runtime.pk})

    add(5)
    few, rows = _list_queries(api_client)
    assert rows == 5
    add(25)
    many, rows = _list_queries(api_client)
    assert rows == 30
    assert many == few
    with django_assert_max_num_queries(LIST_QUERIES):
        assert len(api_client.get("/api/swarms").json()["data"]) == 30


def test_unknown_model_is_400_naming_its_position(api_client, workspace):
    response = api_client.post(
        "/api/swarms",
        {"workspaceId": workspace.pk, "name": "x", "models": ["gpt-4o", "gpt-9"]},
        format="json",
    )
    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"][0]["field"] == "models[1]"
    assert body["errors"][0]["pointer"] == "#/models/1"
    assert "gpt-9" in body["errors"][0]["detail"]
    assert not Swarm.objects.exists()
