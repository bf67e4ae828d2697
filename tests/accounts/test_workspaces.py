"""/api/workspaces: list, create, get, patch, scoped to the caller."""

import pytest

from accounts.models import Membership, Plan, Workspace
from accounts.roles import Role
from tests.conftest import assert_problem

pytestmark = pytest.mark.django_db


def test_list_shows_only_my_workspaces_with_my_role(api_client, workspace, other_workspace):
    response = api_client.get("/api/workspaces")
    assert response.status_code == 200
    body = response.json()
    assert [w["id"] for w in body["data"]] == [workspace.pk]
    item = body["data"][0]
    assert set(item) == {"id", "name", "plan", "role", "createdAt", "updatedAt"}
    assert item["role"] == "admin" and item["plan"] == "free"
    assert body["pageInfo"] == {
        "total": 1,
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": body["pageInfo"]["startCursor"],
        "endCursor": body["pageInfo"]["endCursor"],
    }


def test_create_makes_the_caller_admin(api_client, user):
    response = api_client.post("/api/workspaces", {"name": "New"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("wsp_") and body["plan"] == "free" and body["role"] == "admin"
    assert Membership.objects.get(workspace_id=body["id"], user=user).role == Role.ADMIN


# --- plans: only platform staff choose one ---------------------------------------------------
def test_a_user_may_ask_for_the_free_plan(api_client):
    response = api_client.post("/api/workspaces", {"name": "New", "plan": "free"}, format="json")
    assert response.status_code == 201
    assert Workspace.objects.get(pk=response.json()["id"]).plan == Plan.FREE


@pytest.mark.parametrize("plan", [Plan.PRO, Plan.TEAM])
def test_a_user_asking_for_a_paid_plan_is_403_and_gets_no_workspace(api_client, plan):
    response = api_client.post("/api/workspaces", {"name": "Mine", "plan": plan}, format="json")
    body = assert_problem(response, 403, "forbidden")
    assert "platform staff" in body["detail"]
    assert Workspace.objects.count() == 0


@pytest.mark.parametrize("plan", [Plan.FREE, Plan.PRO, Plan.TEAM])
def test_staff_create_a_workspace_on_any_plan(client_for, make_user, plan):
    staff = make_user(is_staff=True)
    response = client_for(staff).post(
        "/api/workspaces", {"name": "Paid", "plan": plan}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["plan"] == plan
    assert Workspace.objects.get(pk=response.json()["id"]).plan == plan


@pytest.mark.parametrize("plan", [Plan.PRO, Plan.TEAM])
def test_a_workspace_admin_cannot_change_its_plan(api_client, workspace, plan):
    response = api_client.patch(
        f"/api/workspaces/{workspace.pk}", {"name": "Renamed", "plan": plan}, format="json"
    )
    assert_problem(response, 403, "forbidden")
    workspace.refresh_from_db()
    assert (workspace.plan, workspace.name) == (Plan.FREE, "Acme")


def test_a_workspace_admin_cannot_leave_a_paid_plan_either(api_client, workspace):
    Workspace.objects.filter(pk=workspace.pk).update(plan=Plan.TEAM)
    response = api_client.patch(f"/api/workspaces/{workspace.pk}", {"plan": "free"}, format="json")
    body = assert_problem(response, 403, "forbidden")
    assert "'team'" in body["detail"]
    workspace.refresh_from_db()
    assert workspace.plan == Plan.TEAM


def test_naming_the_current_plan_is_no_change(api_client, workspace):
    response = api_client.patch(
        f"/api/workspaces/{workspace.pk}", {"name": "Renamed", "plan": "free"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["plan"] == "free" and response.json()["name"] == "Renamed"


def test_staff_change_any_workspaces_plan(client_for, make_user, workspace):
    staff = make_user(is_staff=True)
    response = client_for(staff).patch(
        f"/api/workspaces/{workspace.pk}", {"plan": "team"}, format="json"
    )
    assert response.status_code == 200, response.content
    workspace.refresh_from_db()
    assert workspace.plan == Plan.TEAM


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "plan": "gold"}, "plan"),
        ({"name": "x", "owner": "me"}, "owner"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_invalid_create_is_400_and_creates_nothing(api_client, payload, field):
    body = assert_problem(
        api_client.post("/api/workspaces", payload, format="json"), 400, "invalid_request"
    )
    assert [e["field"] for e in body["errors"]] == [field]
    assert Workspace.objects.count() == 0


def test_api_key_cannot_create_workspaces(key_client, workspace):
    client, _, _ = key_client(workspace, Role.ADMIN)
    assert_problem(client.post("/api/workspaces", {"name": "x"}, format="json"), 403, "forbidden")
    assert Workspace.objects.count() == 1


def test_get_mine_and_404_for_others_and_unknown(api_client, workspace, other_workspace):
    assert api_client.get(f"/api/workspaces/{workspace.pk}").json()["name"] == "Acme"
    assert_problem(api_client.get(f"/api/workspaces/{other_workspace.pk}"), 404, "not_found")
    assert_problem(api_client.get("/api/workspaces/wsp_doesnotexist"), 404, "not_found")


def test_patch_as_admin_changes_only_given_fields(api_client, workspace):
    response = api_client.patch(
        f"/api/workspaces/{workspace.pk}", {"name": "Acme 2"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["plan"] == "free" and response.json()["name"] == "Acme 2"
    workspace.refresh_from_db()
    assert workspace.name == "Acme 2"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_patch_below_admin_is_403_and_changes_nothing(client_for, member_of, workspace, role):
    client = client_for(member_of(workspace, role))
    assert client.get(f"/api/workspaces/{workspace.pk}").status_code == 200
    response = client.patch(f"/api/workspaces/{workspace.pk}", {"name": "Hacked"}, format="json")
    assert_problem(response, 403, "forbidden")
    workspace.refresh_from_db()
    assert workspace.name == "Acme"


def test_patch_other_workspace_is_404(api_client, other_workspace):
    response = api_client.patch(
        f"/api/workspaces/{other_workspace.pk}", {"name": "x"}, format="json"
    )
    assert_problem(response, 404, "not_found")


def test_put_and_delete_are_405(api_client, workspace):
    for method in ("put", "delete"):
        response = getattr(api_client, method)(f"/api/workspaces/{workspace.pk}", {}, format="json")
        assert_problem(response, 405, "method_not_allowed")
    assert Workspace.objects.filter(pk=workspace.pk).exists()


def test_staff_see_every_workspace(client_for, make_user, workspace, other_workspace):
    staff = make_user(is_staff=True)
    body = client_for(staff).get("/api/workspaces").json()
    assert {w["id"] for w in body["data"]} == {workspace.pk, other_workspace.pk}
    assert client_for(staff).get(f"/api/workspaces/{other_workspace.pk}").status_code == 200
