"""Routes of `/api/workspaces/{workspace_id}/mcp-servers` and `/api/workspaces/{id}/tools`."""

from django.urls import path

from tools import views

servers = views.McpServerViewSet.as_view({"get": "list", "post": "create"})
server = views.McpServerViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)
refresh = views.McpServerViewSet.as_view({"post": "refresh"})
tools = views.WorkspaceToolViewSet.as_view({"get": "index"})

urlpatterns = [
    path("workspaces/<str:workspace_id>/mcp-servers", servers, name="mcp-servers"),
    path("workspaces/<str:workspace_id>/mcp-servers/<str:pk>", server, name="mcp-server"),
    path(
        "workspaces/<str:workspace_id>/mcp-servers/<str:pk>/refresh",
        refresh,
        name="mcp-server-refresh",
    ),
    path("workspaces/<str:workspace_id>/tools", tools, name="workspace-tools"),
]
