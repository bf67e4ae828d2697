"""/api/workspaces/{id}/members: list, add by email, change role, remove; the last admin stays."""

import pytest

from accounts.models import Membership
from accounts.roles import Role
from tests.conftest import assert_problem

pytestmark = pytest.mark.django_db


def members_url(workspace, user_id=None):
    base = f"/api/workspaces/{workspace.pk}/members"
    return f"{base}/{user_id}" if user_id else base


def test_list_members(client_for, member_of, workspace, user):
    viewer = member_of(workspace, Role.VIEWER)
    body = client_for(viewer).get(members_url(workspace)).json()
    assert {(m["userId"], m["role"]) for m in body["data"]} == {
        (user.pk, "admin"),
        (viewer.pk, "viewer"),
    }
    assert set(body["data"][0]) == {
        "userId",
        "email",
        "name",
        "workspaceId",
        "role",
        "createdAt",
        "updatedAt",
    }
    assert body["pageInfo"]["total"] == 2


def test_add_by_email_change_role_and_remove(api_client, make_user, workspace):
    newcomer = make_user(email="new@example.com")
    response = api_client.post(
        members_url(workspace), {"email": "NEW@example.com", "role": "operator"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["userId"] == newcomer.pk and response.json()["role"] == "operator"

    response = api_client.patch(
        members_url(workspace, newcomer.pk), {"role": "admin"}, format="json"
    )
    assert response.status_code == 200 and response.json()["role"] == "admin"
    assert api_client.get(members_url(workspace, newcomer.pk)).json()["role"] == "admin"

    response = api_client.delete(members_url(workspace, newcomer.pk))
    assert response.status_code == 200 and response.json() == {"success": True}
    assert not Membership.objects.filter(workspace=workspace, user=newcomer).exists()
    assert_problem(api_client.get(members_url(workspace, newcomer.pk)), 404, "not_found")


def test_add_defaults_to_viewer(api_client, make_user, workspace):
    make_user(email="quiet@example.com")
    response = api_client.post(
        members_url(workspace), {"email": "quiet@example.com"}, format="json"
    )
    assert response.json()["role"] == "viewer"


def test_add_unknown_email_is_400_on_email(api_client, workspace):
    body = assert_problem(
        api_client.post(members_url(workspace), {"email": "ghost@example.com"}, format="json"),
        400,
        "invalid_request",
    )
    assert body["errors"][0]["field"] == "email"
    assert Membership.objects.filter(workspace=workspace).count() == 1


def test_add_existing_member_is_409(api_client, workspace, user):
    response = api_client.post(members_url(workspace), {"email": user.email}, format="json")
    assert_problem(response, 409, "conflict")


def test_last_admin_cannot_be_demoted_or_removed(api_client, workspace, user, member_of):
    member_of(workspace, Role.OPERATOR)
    patch = api_client.patch(members_url(workspace, user.pk), {"role": "viewer"}, format="json")
    assert_problem(patch, 409, "conflict")
    assert_problem(api_client.delete(members_url(workspace, user.pk)), 409, "conflict")
    assert Membership.objects.get(workspace=workspace, user=user).role == Role.ADMIN


def test_admin_can_step_down_when_another_admin_remains(api_client, workspace, user, member_of):
    member_of(workspace, Role.ADMIN)
    response = api_client.patch(members_url(workspace, user.pk), {"role": "viewer"}, format="json")
    assert response.status_code == 200
    assert Membership.objects.get(workspace=workspace, user=user).role == Role.VIEWER


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_non_admins_cannot_change_members(client_for, member_of, make_user, workspace, user, role):
    client = client_for(member_of(workspace, role))
    make_user(email="x@example.com")
    assert_problem(
        client.post(members_url(workspace), {"email": "x@example.com"}, format="json"),
        403,
        "forbidden",
    )
    assert_problem(
        client.patch(members_url(workspace, user.pk), {"role": "viewer"}, format="json"),
        403,
        "forbidden",
    )
    assert_problem(client.delete(members_url(workspace, user.pk)), 403, "forbidden")
    assert Membership.objects.filter(workspace=workspace).count() == 2


def test_outsiders_get_404_for_everything(api_client, other_workspace, other_user):
    assert_problem(api_client.get(members_url(other_workspace)), 404, "not_found")
    assert_problem(api_client.get(members_url(other_workspace, other_user.pk)), 404, "not_found")
    assert_problem(
        api_client.post(members_url(other_workspace), {"email": "a@b.co"}, format="json"),
        404,
        "not_found",
    )
    assert_problem(api_client.delete(members_url(other_workspace, other_user.pk)), 404, "not_found")
    assert Membership.objects.filter(workspace=other_workspace).count() == 1


def test_invalid_role_is_400(api_client, workspace, user):
    response = api_client.patch(members_url(workspace, user.pk), {"role": "owner"}, format="json")
    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"][0]["field"] == "role"
