"""/api/api-keys: creation shown once, hashing, revocation, roles, and using a key."""

import hashlib

import pytest

from accounts.models import ApiKey
from accounts.roles import Role
from tests.conftest import assert_problem

pytestmark = pytest.mark.django_db


def create_key(client, workspace, **extra):
    return client.post(
        "/api/api-keys",
        {"workspaceId": workspace.pk, "name": "ci", **extra},
        format="json",
    )


def test_create_returns_the_secret_once_and_stores_only_its_hash(api_client, workspace, user):
    response = create_key(api_client, workspace, role="viewer")
    assert response.status_code == 201
    body = response.json()
    raw = body["key"]
    assert raw.startswith("sk-sverm-") and len(raw) == len("sk-sverm-") + 40
    assert body["id"].startswith("key_")
    assert body["workspaceId"] == workspace.pk
    assert body["role"] == "viewer"
    assert body["createdBy"] == user.pk
    assert body["prefix"] == raw[:17]
    assert body["revokedAt"] is None and body["lastUsedAt"] is None

    stored = ApiKey.objects.get(pk=body["id"])
    assert stored.hashed_key == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {getattr(stored, f.attname) for f in ApiKey._meta.concrete_fields}

    for listed in (
        api_client.get("/api/api-keys").json()["data"][0],
        api_client.get(f"/api/api-keys/{body['id']}").json(),
    ):
        assert "key" not in listed
        assert listed["prefix"] == raw[:17]


def test_key_authenticates_within_its_workspace_only(key_client, workspace, other_workspace):
    client, api_key, _ = key_client(workspace, Role.VIEWER)
    listed = client.get("/api/workspaces")
    assert listed.status_code == 200
    assert [w["id"] for w in listed.json()["data"]] == [workspace.pk]
    assert listed.json()["data"][0]["role"] == "viewer"
    assert_problem(client.get(f"/api/workspaces/{other_workspace.pk}"), 404, "not_found")
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_revoked_key_is_401_and_revocation_is_idempotent(api_client, key_client, workspace):
    client, api_key, _ = key_client(workspace)
    assert client.get("/api/workspaces").status_code == 200

    response = api_client.delete(f"/api/api-keys/{api_key.pk}")
    assert response.status_code == 200
    assert response.json() == {"success": True}
    body = assert_problem(client.get("/api/workspaces"), 401, "unauthorized")
    assert "revoked" in body["detail"]

    api_key.refresh_from_db()
    first = api_key.revoked_at
    assert first is not None
    assert api_client.delete(f"/api/api-keys/{api_key.pk}").status_code == 200
    api_key.refresh_from_db()
    assert api_key.revoked_at == first
    assert api_client.get(f"/api/api-keys/{api_key.pk}").json()["revokedAt"] is not None


def test_tampered_key_with_a_valid_prefix_is_401(key_client, workspace, anon_client):
    _, _, raw = key_client(workspace)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw[:-1]}{'A' if raw[-1] != 'A' else 'B'}")
    assert_problem(anon_client.get("/api/workspaces"), 401, "unauthorized")


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_non_admins_cannot_manage_keys(client_for, member_of, workspace, key_client, role):
    client = client_for(member_of(workspace, role))
    assert_problem(create_key(client, workspace), 403, "forbidden")
    assert_problem(client.get(f"/api/api-keys?workspace_id={workspace.pk}"), 403, "forbidden")
    # Without a workspace filter the list holds only keys of workspaces they administer.
    key_client(workspace)
    assert client.get("/api/api-keys").json()["data"] == []
    _, api_key, _ = key_client(workspace)
    assert_problem(client.get(f"/api/api-keys/{api_key.pk}"), 403, "forbidden")
    assert_problem(client.delete(f"/api/api-keys/{api_key.pk}"), 403, "forbidden")
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None


def test_admin_key_can_create_keys_but_operator_key_cannot(key_client, workspace):
    admin, _, _ = key_client(workspace, Role.ADMIN)
    assert create_key(admin, workspace).status_code == 201
    operator, _, _ = key_client(workspace, Role.OPERATOR)
    assert_problem(create_key(operator, workspace), 403, "forbidden")


def test_keys_of_other_workspaces_are_404(api_client, other_workspace, other_user):
    from accounts.services import api_key_create

    api_key, _ = api_key_create(
        workspace=other_workspace, name="x", role=Role.ADMIN, created_by=other_user
    )
    assert_problem(api_client.get(f"/api/api-keys/{api_key.pk}"), 404, "not_found")
    assert_problem(api_client.delete(f"/api/api-keys/{api_key.pk}"), 404, "not_found")
    assert_problem(create_key(api_client, other_workspace), 404, "not_found")
    assert_problem(
        api_client.get(f"/api/api-keys?workspace_id={other_workspace.pk}"), 404, "not_found"
    )
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None
    assert ApiKey.objects.filter(workspace=other_workspace).count() == 1


def test_list_filters_by_workspace_id(api_client, user, workspace):
    from accounts.services import workspace_create

    second = workspace_create(name="Second", owner=user)
    create_key(api_client, workspace)
    create_key(api_client, second)
    all_keys = api_client.get("/api/api-keys").json()
    assert all_keys["pageInfo"]["total"] == 2
    only = api_client.get(f"/api/api-keys?workspace_id={second.pk}").json()["data"]
    assert [k["workspaceId"] for k in only] == [second.pk]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"workspaceId": None, "name": "x"}, "workspaceId"),
        ({"name": None}, "name"),
        ({"name": "x", "role": "owner"}, "role"),
        ({"name": "x", "secret": "y"}, "secret"),
    ],
)
def test_invalid_create_names_the_field_and_creates_nothing(api_client, workspace, payload, field):
    body = {"workspaceId": workspace.pk, **payload}
    body = {key: value for key, value in body.items() if value is not None}
    response = api_client.post("/api/api-keys", body, format="json")
    body = assert_problem(response, 400, "invalid_request")
    assert field in {e["field"] for e in body["errors"]}
    assert ApiKey.objects.count() == 0
