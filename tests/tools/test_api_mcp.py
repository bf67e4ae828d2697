"""MCP servers over `/api` against a real MCP server: an admin registers one (its tools listed
there and then, its credentials sealed and never shown), lists the workspace's tools with what
the allowlist allows, turns a server off, refreshes one that is down; other roles and other
workspaces cannot."""

import pytest

from accounts.roles import Role
from accounts.services import workspace_create
from tests.mcp_server import TOKEN, McpTestServer
from tools.models import McpServer
from tools.selectors import mcp_endpoint

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def mcp():
    with McpTestServer() as server:
        yield server


@pytest.fixture(autouse=True)
def allowed(settings):
    settings.SVERM_MCP_ALLOWED_HOSTS = ["127.0.0.1"]


def register(client, workspace, url, name="docs", headers=AUTH):
    return client.post(
        f"/api/workspaces/{workspace.pk}/mcp-servers",
        {"name": name, "url": url, "headers": headers},
        format="json",
    )


def test_an_admin_registers_a_server_and_its_tools_are_listed(api_client, workspace, mcp):
    response = register(api_client, workspace, mcp.url)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("mcp_") and body["workspaceId"] == workspace.pk
    assert sorted(body["tools"]) == ["docs__broken", "docs__echo", "docs__huge", "docs__slow"]
    assert body["headerNames"] == ["Authorization"] and body["lastError"] == ""
    assert TOKEN not in response.content.decode()
    server = McpServer.objects.get(pk=body["id"])
    assert server.headers_sealed and TOKEN not in server.headers_sealed  # sealed at rest
    assert (
        TOKEN not in api_client.get(f"/api/workspaces/{workspace.pk}/mcp-servers").content.decode()
    )

    tools = api_client.get(f"/api/workspaces/{workspace.pk}/tools").json()
    by_name = {tool["name"]: tool for tool in tools["data"]}
    assert by_name["http_fetch"]["source"] == "builtin" and by_name["http_fetch"]["allowed"]
    assert by_name["docs__echo"]["source"] == body["id"]
    assert by_name["docs__echo"]["parameters"]["required"] == ["text"]
    assert by_name["docs__echo"]["allowed"] is False  # MCP tools are allowed one by one
    assert tools["allowedTools"] == ["http_fetch"]
    workspace.allowed_tools = ["http_fetch", "docs__*"]
    workspace.save()
    tools = api_client.get(f"/api/workspaces/{workspace.pk}/tools").json()
    assert all(tool["allowed"] for tool in tools["data"])


def test_a_server_that_cannot_be_asked_is_refused_with_the_reason(api_client, workspace, mcp):
    response = register(api_client, workspace, mcp.url, headers={})
    assert response.status_code == 400
    assert "answered HTTP 401 Unauthorized" in response.json()["detail"]
    response = register(api_client, workspace, mcp.garbage_url, name="junk")
    assert response.status_code == 400 and "MCP server" in response.json()["detail"]
    response = register(api_client, workspace, "http://169.254.169.254/mcp", name="meta")
    assert response.status_code == 400 and "link-local" in response.json()["detail"]
    response = register(api_client, workspace, mcp.url, headers={"Bad\nName": "x"})
    assert response.status_code == 400
    assert not McpServer.objects.exists()

    assert register(api_client, workspace, mcp.url).status_code == 201
    again = register(api_client, workspace, mcp.url)
    assert again.status_code == 409 and McpServer.objects.count() == 1


def test_only_admins_manage_servers_and_only_members_see_them(
    api_client, workspace, mcp, key_client, make_user, client_for
):
    operator, _, _ = key_client(workspace, Role.OPERATOR)
    assert register(operator, workspace, mcp.url).status_code == 403
    created = register(api_client, workspace, mcp.url).json()
    viewer, _, _ = key_client(workspace, Role.VIEWER)
    assert viewer.get(f"/api/workspaces/{workspace.pk}/mcp-servers").status_code == 200
    url = f"/api/workspaces/{workspace.pk}/mcp-servers/{created['id']}"
    assert viewer.patch(url, {"enabled": False}, format="json").status_code == 403
    assert operator.delete(url).status_code == 403
    assert operator.post(f"{url}/refresh").status_code == 403

    stranger = make_user(email="other@example.com")
    elsewhere = workspace_create(name="Elsewhere", owner=stranger)
    outsider = client_for(stranger)
    assert outsider.get(f"/api/workspaces/{workspace.pk}/mcp-servers").status_code == 404
    assert outsider.get(url).status_code == 404
    assert (
        outsider.get(f"/api/workspaces/{elsewhere.pk}/mcp-servers/{created['id']}").status_code
        == 404
    )


def test_turning_off_refreshing_and_removing(api_client, workspace, mcp):
    created = register(api_client, workspace, mcp.url).json()
    url = f"/api/workspaces/{workspace.pk}/mcp-servers/{created['id']}"
    tools_url = f"/api/workspaces/{workspace.pk}/tools"

    off = api_client.patch(url, {"enabled": False}, format="json")
    assert off.status_code == 200 and off.json()["enabled"] is False
    names = {tool["name"] for tool in api_client.get(tools_url).json()["data"]}
    assert names == {"http_fetch"}
    assert api_client.patch(url, {"enabled": True}, format="json").status_code == 200

    # Down (the address changed under it): the last list stays, lastError says why.
    McpServer.objects.filter(pk=created["id"]).update(url=mcp.garbage_url)
    refreshed = api_client.post(f"{url}/refresh")
    assert refreshed.status_code == 200
    assert refreshed.json()["lastError"].startswith("refresh failed at")
    assert len(refreshed.json()["tools"]) == 4

    bad = api_client.patch(url, {"headers": {"Authorization": "Bearer wrong"}}, format="json")
    assert bad.status_code == 400
    moved = api_client.patch(url, {"url": mcp.url}, format="json")
    assert moved.status_code == 200 and moved.json()["lastError"] == ""
    # The headers were kept through the move (the listing with them succeeded), sealed.
    assert mcp_endpoint(McpServer.objects.get(pk=created["id"])).headers == AUTH

    assert api_client.delete(url).json() == {"success": True}
    assert not McpServer.objects.exists()
