"""Integrations: installing one makes the publisher workspace's swarms readable from the
installer, and only readable; `source` narrows the swarm list by where rows come from."""

import pytest

from accounts.models import Integration, Membership
from accounts.roles import Role
from accounts.services import integration_install, workspace_create
from sverm.api.ids import has_prefix
from swarms import services
from swarms.models import Swarm, SwarmVersion
from tests.conftest import assert_problem

pytestmark = pytest.mark.django_db

INTEGRATION_FIELDS = {"id", "workspaceId", "publisherWorkspaceId", "installedBy", "createdAt"}


def integrations_url(workspace) -> str:
    return f"/api/workspaces/{workspace.pk}/integrations"


def install(client, installer, publisher):
    return client.post(
        integrations_url(installer), {"publisherWorkspaceId": publisher.pk}, format="json"
    )


def ids_of(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["data"]}


@pytest.fixture
def publisher(other_workspace):
    """The workspace whose swarms get shared; `user` is not a member of it."""
    return other_workspace


@pytest.fixture
def installed(workspace, publisher, user, other_user) -> Integration:
    """`workspace` sees `publisher`'s swarms."""
    return integration_install(installer=workspace, publisher=publisher, installed_by=other_user)


@pytest.fixture
def shared(publisher, other_user) -> Swarm:
    return services.swarm_create(
        workspace=publisher, name="Shared", created_by=other_user, instructions="theirs"
    )


@pytest.fixture
def own(workspace, user) -> Swarm:
    return services.swarm_create(workspace=workspace, name="Own", created_by=user)


# ---------------------------------------------------------------------------------------------
# Installing, listing, removing
# ---------------------------------------------------------------------------------------------
def test_admin_of_both_installs(api_client, workspace, publisher, user):
    Membership.objects.create(workspace=publisher, user=user, role=Role.ADMIN)
    response = install(api_client, workspace, publisher)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == INTEGRATION_FIELDS
    assert has_prefix(body["id"], "int")
    assert body["workspaceId"] == workspace.pk
    assert body["publisherWorkspaceId"] == publisher.pk
    assert body["installedBy"] == user.pk
    integration = Integration.objects.get()
    assert (integration.pk, integration.installer_id, integration.publisher_id) == (
        body["id"],
        workspace.pk,
        publisher.pk,
    )


@pytest.mark.parametrize("publisher_role", [Role.VIEWER, Role.OPERATOR])
def test_installing_needs_admin_of_the_publisher(
    api_client, workspace, publisher, user, publisher_role
):
    Membership.objects.create(workspace=publisher, user=user, role=publisher_role)
    assert_problem(install(api_client, workspace, publisher), 403, "forbidden")
    assert Integration.objects.count() == 0


def test_installing_from_a_workspace_i_am_not_in_is_404(api_client, workspace, publisher):
    assert_problem(install(api_client, workspace, publisher), 404, "not_found")
    response = api_client.post(
        integrations_url(workspace),
        {"publisherWorkspaceId": "wsp_01doesnotexist0000000000000"},
        format="json",
    )
    assert_problem(response, 404, "not_found")
    assert Integration.objects.count() == 0


@pytest.mark.parametrize("installer_role", [Role.VIEWER, Role.OPERATOR])
def test_installing_needs_admin_of_the_installer(
    client_for, member_of, workspace, publisher, installer_role
):
    member = member_of(workspace, installer_role)
    Membership.objects.create(workspace=publisher, user=member, role=Role.ADMIN)
    assert_problem(install(client_for(member), workspace, publisher), 403, "forbidden")
    assert Integration.objects.count() == 0


def test_installing_into_a_workspace_i_am_not_in_is_404(client_for, publisher, other_user, user):
    mine = workspace_create(name="Mine", owner=other_user)
    target = workspace_create(name="Target", owner=user)
    response = install(client_for(other_user), target, mine)
    assert_problem(response, 404, "not_found")
    assert Integration.objects.count() == 0


def test_installing_twice_is_409(api_client, workspace, publisher, user, installed):
    Membership.objects.create(workspace=publisher, user=user, role=Role.ADMIN)
    assert_problem(install(api_client, workspace, publisher), 409, "conflict")
    assert Integration.objects.count() == 1


def test_installing_itself_is_400(api_client, workspace):
    body = assert_problem(install(api_client, workspace, workspace), 400, "invalid_request")
    assert [e["field"] for e in body["errors"]] == ["publisherWorkspaceId"]
    assert Integration.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "publisherWorkspaceId"), ({"publisherWorkspaceId": "x", "extra": 1}, "extra")],
)
def test_invalid_install_is_400(api_client, workspace, payload, field):
    response = api_client.post(integrations_url(workspace), payload, format="json")
    body = assert_problem(response, 400, "invalid_request")
    assert [e["field"] for e in body["errors"]] == [field]
    assert Integration.objects.count() == 0


def test_list_and_get(client_for, member_of, api_client, workspace, installed, publisher):
    viewer = client_for(member_of(workspace, Role.VIEWER))
    for client in (api_client, viewer):
        response = client.get(integrations_url(workspace))
        assert response.status_code == 200, response.content
        body = response.json()
        assert [i["id"] for i in body["data"]] == [installed.pk]
        assert body["pageInfo"]["total"] == 1
        item = body["data"][0]
        assert set(item) == INTEGRATION_FIELDS
        assert item["publisherWorkspaceId"] == publisher.pk
        assert client.get(f"{integrations_url(workspace)}/{installed.pk}").json() == item


def test_integrations_of_other_workspaces_are_404(client_for, other_user, workspace, installed):
    """other_user administers the publisher, not the installer the integration lives in."""
    client = client_for(other_user)
    assert_problem(client.get(integrations_url(workspace)), 404, "not_found")
    url = f"{integrations_url(workspace)}/{installed.pk}"
    assert_problem(client.get(url), 404, "not_found")
    assert_problem(client.delete(url), 404, "not_found")
    assert Integration.objects.filter(pk=installed.pk).exists()


def test_integration_through_another_workspaces_path_is_404(api_client, user, workspace, installed):
    second = workspace_create(name="Second", owner=user)
    assert_problem(api_client.get(f"{integrations_url(second)}/{installed.pk}"), 404, "not_found")
    assert ids_of(api_client.get(integrations_url(second))) == set()


def test_remove_needs_admin(client_for, member_of, workspace, installed):
    operator = client_for(member_of(workspace, Role.OPERATOR))
    url = f"{integrations_url(workspace)}/{installed.pk}"
    assert_problem(operator.delete(url), 403, "forbidden")
    assert Integration.objects.filter(pk=installed.pk).exists()


def test_remove(api_client, workspace, installed):
    url = f"{integrations_url(workspace)}/{installed.pk}"
    response = api_client.delete(url)
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True}
    assert not Integration.objects.filter(pk=installed.pk).exists()
    assert_problem(api_client.get(url), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# What the installer's members see
# ---------------------------------------------------------------------------------------------
def test_installer_members_see_published_swarms(
    client_for, member_of, workspace, installed, own, shared
):
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert ids_of(viewer.get("/api/swarms")) == {own.pk, shared.pk}
    assert ids_of(viewer.get("/api/swarms?source=integration")) == {shared.pk}
    assert ids_of(viewer.get("/api/swarms?source=workspace")) == {own.pk}
    assert_problem(viewer.get("/api/swarms?source=bogus"), 400, "invalid_request")


def test_installer_workspace_id_with_source(api_client, workspace, installed, own, shared):
    base = f"/api/swarms?workspace_id={workspace.pk}"
    assert ids_of(api_client.get(base)) == {own.pk, shared.pk}
    assert ids_of(api_client.get(f"{base}&source=integration")) == {shared.pk}
    assert ids_of(api_client.get(f"{base}&source=workspace")) == {own.pk}
    assert_problem(api_client.get(f"{base}&source=bogus"), 400, "invalid_request")


def test_publisher_workspace_id_stays_404_for_installer_members(
    api_client, publisher, installed, shared
):
    assert_problem(api_client.get(f"/api/swarms?workspace_id={publisher.pk}"), 404, "not_found")


def test_no_integration_means_no_foreign_rows(api_client, own, shared):
    assert ids_of(api_client.get("/api/swarms")) == {own.pk}
    assert ids_of(api_client.get("/api/swarms?source=integration")) == set()
    assert_problem(api_client.get(f"/api/swarms/{shared.pk}"), 404, "not_found")


def test_integrations_are_one_way(client_for, other_user, installed, own, shared):
    """The publisher's members do not see the installer's swarms."""
    client = client_for(other_user)
    assert ids_of(client.get("/api/swarms")) == {shared.pk}
    assert ids_of(client.get("/api/swarms?source=integration")) == set()
    assert_problem(client.get(f"/api/swarms/{own.pk}"), 404, "not_found")


def test_outsiders_see_nothing(client_for, make_user, installed, own, shared):
    outsider = client_for(make_user())
    assert ids_of(outsider.get("/api/swarms")) == set()
    assert ids_of(outsider.get("/api/swarms?source=integration")) == set()
    assert_problem(outsider.get(f"/api/swarms/{shared.pk}"), 404, "not_found")
    assert_problem(outsider.get(f"/api/swarms/{shared.pk}/versions"), 404, "not_found")


def test_integration_filters_compose_with_shorthands(api_client, installed, own, shared):
    services.swarm_soft_delete(swarm=shared)
    assert ids_of(api_client.get("/api/swarms")) == {own.pk}
    assert ids_of(api_client.get("/api/swarms?include_deleted=only")) == {shared.pk}
    assert ids_of(api_client.get("/api/swarms?name=shar&include_deleted=true")) == {shared.pk}
    url = f"/api/swarms?ids={own.pk},{shared.pk}&include_deleted=true&source=integration"
    assert ids_of(api_client.get(url)) == {shared.pk}


def test_api_key_of_the_installer_sees_published_swarms(key_client, workspace, installed, shared):
    client, _, _ = key_client(workspace, Role.VIEWER)
    assert ids_of(client.get("/api/swarms?source=integration")) == {shared.pk}
    assert client.get(f"/api/swarms/{shared.pk}").json()["workspaceId"] == shared.workspace_id


def test_published_swarms_are_readable(api_client, installed, shared, other_user):
    response = api_client.get(f"/api/swarms/{shared.pk}")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == shared.pk
    assert response.json()["workspaceId"] == shared.workspace_id

    v2 = services.swarm_version_create(swarm=shared, created_by=other_user)
    response = api_client.get(f"/api/swarms/{shared.pk}/versions")
    assert ids_of(response) == {shared.default_version_id, v2.pk}
    response = api_client.get(f"/api/swarms/{shared.pk}/versions/{v2.pk}")
    assert response.status_code == 200, response.content
    assert response.json()["instructions"] == "theirs"


def test_published_swarms_are_read_only(api_client, key_client, workspace, installed, shared):
    """Even the installer's admin (and an admin key) cannot change a swarm it only sees."""
    key, _, _ = key_client(workspace, Role.ADMIN)
    for client in (api_client, key):
        url = f"/api/swarms/{shared.pk}"
        assert_problem(client.patch(url, {"name": "Mine now"}, format="json"), 403, "forbidden")
        assert_problem(client.delete(url), 403, "forbidden")
        assert_problem(client.post(f"{url}/restore"), 403, "forbidden")
        assert_problem(client.delete(f"{url}/purge"), 403, "forbidden")
        assert_problem(client.post(f"{url}/versions", {}, format="json"), 403, "forbidden")
    stored = Swarm.objects.get(pk=shared.pk)
    assert (stored.name, stored.deleted_at) == ("Shared", None)
    assert SwarmVersion.objects.filter(swarm=shared).count() == 1


def test_deleted_published_swarm_cannot_be_restored_or_purged_by_installer(
    api_client, installed, shared
):
    services.swarm_soft_delete(swarm=shared)
    assert api_client.get(f"/api/swarms/{shared.pk}").json()["deletedAt"] is not None
    assert_problem(api_client.post(f"/api/swarms/{shared.pk}/restore"), 403, "forbidden")
    assert_problem(api_client.delete(f"/api/swarms/{shared.pk}/purge"), 403, "forbidden")
    assert Swarm.objects.get(pk=shared.pk).deleted_at is not None


def test_removing_the_integration_hides_the_swarms_again(
    api_client, workspace, installed, own, shared
):
    assert api_client.get(f"/api/swarms/{shared.pk}").status_code == 200
    url = f"{integrations_url(workspace)}/{installed.pk}"
    assert api_client.delete(url).json() == {"success": True}
    assert ids_of(api_client.get("/api/swarms")) == {own.pk}
    assert ids_of(api_client.get("/api/swarms?source=integration")) == set()
    assert_problem(api_client.get(f"/api/swarms/{shared.pk}"), 404, "not_found")
    assert_problem(api_client.get(f"/api/swarms/{shared.pk}/versions"), 404, "not_found")
    url = f"/api/swarms/{shared.pk}/versions/{shared.default_version_id}"
    assert_problem(api_client.get(url), 404, "not_found")


def test_member_of_both_sees_publisher_swarms_as_own(
    api_client, user, publisher, installed, own, shared
):
    """A member of the publisher too sees its swarms as their own rows, with their own role."""
    Membership.objects.create(workspace=publisher, user=user, role=Role.VIEWER)
    assert ids_of(api_client.get("/api/swarms?source=workspace")) == {own.pk, shared.pk}
    assert ids_of(api_client.get("/api/swarms?source=integration")) == set()
    url = f"/api/swarms/{shared.pk}"
    assert_problem(api_client.patch(url, {"name": "x"}, format="json"), 403, "forbidden")
