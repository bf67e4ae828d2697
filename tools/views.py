"""`/api/workspaces/{workspace_id}/mcp-servers` (register, change, refresh and remove a
workspace's MCP servers: admin) and `/api/workspaces/{workspace_id}/tools` (what its agents may
list, and whether its allowlist allows each)."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Workspace
from accounts.roles import Role
from accounts.viewsets import WorkspaceScopedViewSet
from sverm.api.listing import BOOLEAN, DATETIME, FieldSpec, ListSpec
from sverm.api.serializers import SuccessSerializer
from tools import selectors, services
from tools.models import McpServer
from tools.serializers import (
    McpServerCreateSerializer,
    McpServerSerializer,
    McpServerUpdateSerializer,
    ToolListSerializer,
)

MCP_SERVER_LIST = ListSpec(
    name="McpServer",
    fields={
        "id": FieldSpec("id"),
        "name": FieldSpec("name"),
        "url": FieldSpec("url"),
        "enabled": FieldSpec("enabled", BOOLEAN),
        "toolsFetchedAt": FieldSpec("tools_fetched_at", DATETIME, nullable=True),
        "createdAt": FieldSpec("created_at", DATETIME),
    },
)


@extend_schema(tags=["tools"])
class McpServerViewSet(WorkspaceScopedViewSet):
    """A workspace's MCP servers: their tools are offered to agents that list them (as
    `<server>__<tool>`) when the workspace allowlist allows them."""

    queryset = McpServer.objects.all()
    serializer_class = McpServerSerializer
    list_spec = MCP_SERVER_LIST
    workspace_url_kwarg = "workspace_id"
    action_roles = {
        "create": Role.ADMIN,
        "partial_update": Role.ADMIN,
        "destroy": Role.ADMIN,
        "refresh": Role.ADMIN,
    }
    error_statuses = ["409"]

    @extend_schema(summary="List the workspace's MCP servers")
    def list(self, request, workspace_id=None):
        return self.list_response()

    @extend_schema(
        summary="Register an MCP server; its tools are listed there and then (admin)",
        request=McpServerCreateSerializer,
        responses={201: McpServerSerializer},
    )
    def create(self, request, workspace_id=None):
        data = McpServerCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        server = services.mcp_server_create(
            workspace=Workspace.objects.get(pk=workspace_id),
            name=data.validated_data["name"],
            url=data.validated_data["url"],
            headers=data.validated_data["headers"],
            created_by=request.user if request.user.is_authenticated else None,
            requires_approval=data.validated_data["requiresApproval"],
            price_per_call_usd=data.validated_data["pricePerCallUsd"],
        )
        return Response(self.get_serializer(server).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Get an MCP server (never its headers' values)")
    def retrieve(self, request, workspace_id=None, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Change its address or headers (its tools are listed again), or turn it off",
        request=McpServerUpdateSerializer,
        responses={200: McpServerSerializer},
    )
    def partial_update(self, request, workspace_id=None, pk=None):
        server = self.get_object()
        data = McpServerUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        server = services.mcp_server_update(
            server=server,
            url=fields.get("url"),
            headers=fields.get("headers"),
            enabled=fields.get("enabled"),
            requires_approval=fields.get("requiresApproval"),
            price_per_call_usd=fields.get("pricePerCallUsd"),
        )
        return Response(self.get_serializer(server).data)

    @extend_schema(summary="Remove an MCP server (admin)", responses={200: SuccessSerializer})
    def destroy(self, request, workspace_id=None, pk=None):
        services.mcp_server_delete(server=self.get_object())
        return Response({"success": True})

    @extend_schema(
        summary="List its tools again (when it cannot be asked, the last list stays and "
        "`lastError` says why)",
        request=None,
        responses={200: McpServerSerializer},
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request, workspace_id=None, pk=None):
        server = services.mcp_server_refresh(server=self.get_object())
        return Response(self.get_serializer(server).data)


@extend_schema(tags=["tools"])
class WorkspaceToolViewSet(WorkspaceScopedViewSet):
    """`/api/workspaces/{workspace_id}/tools`: every tool agents of the workspace may list."""

    queryset = McpServer.objects.all()
    serializer_class = ToolListSerializer
    workspace_url_kwarg = "workspace_id"
    pagination_class = None

    # Not `list`: one object (the tools and the allowlist), not a page of rows.
    @extend_schema(
        summary="The workspace's tools: built-in and its MCP servers'",
        responses={200: ToolListSerializer},
    )
    def index(self, request, workspace_id=None):
        patterns = selectors.workspace_tool_allowlist(workspace_id=workspace_id)
        tools = selectors.workspace_tool_list(workspace_id=workspace_id)
        data = [
            {**tool, "allowed": selectors.tool_allowed(patterns, tool["name"])} for tool in tools
        ]
        return Response(ToolListSerializer({"data": data, "allowedTools": patterns}).data)
